"""Shared fixtures: a real lambdasim server, boto3 clients and zip helpers.

Tests marked `docker` need a Docker engine and the stand-in runtime images. They
are skipped when either is missing, unless LAMBDASIM_REQUIRE_DOCKER=1 (set by
`.ci/run`), in which case they fail: in CI a skipped Docker test is a failure.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.config
import pytest

from lambdasim.testing import make_zip

#: Fixtures shared by the event source mapping tests.
pytest_plugins = ["event_sources_support"]

PYTHON_IMAGE = "public.ecr.aws/lambda/python:3.12"
EXECUTION_ROLE = "arn:aws:iam::000000000000:role/lambda-exec"
LAMBDA_TRUST_POLICY = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
    '"Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}'
)
_READY = re.compile(r"lambdasim ready on (http://\S+)")
_SERVER_START_TIMEOUT = 60.0


def docker_required() -> bool:
    return os.environ.get("LAMBDASIM_REQUIRE_DOCKER") == "1"


def _docker_problem() -> str | None:
    """Return why Docker tests cannot run here, or None when they can."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:
        return f"no reachable Docker engine ({exc})"
    try:
        client.images.get(PYTHON_IMAGE)
    except Exception:
        return f"image {PYTHON_IMAGE} is missing; build it with scripts/build-images"
    finally:
        client.close()
    return None


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skip (or fail, when Docker is required) unless Docker tests can run."""
    problem = _docker_problem()
    if problem is None:
        return
    if docker_required():
        pytest.fail(f"LAMBDASIM_REQUIRE_DOCKER=1 but {problem}")
    pytest.skip(problem)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("docker") is not None:
            item.fixturenames.insert(0, "docker_engine")


class ServerProcess:
    """A `lambdasim serve` process on a free port, with its log."""

    def __init__(self, data_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None):
        self.log_path = log_path
        env = dict(os.environ)
        env.update(
            {
                "LAMBDASIM_DATA_DIR": str(data_dir),
                "LAMBDASIM_PORT": "0",
                "LAMBDASIM_HOST": "127.0.0.1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra_env or {})
        self._log = open(log_path, "w+b")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lambdasim", "serve"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        self.endpoint = self._wait_ready()

    def _wait_ready(self) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + _SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            line = self.process.stdout.readline().decode()
            if not line:
                break
            match = _READY.search(line)
            if match:
                return match.group(1)
        self.stop()
        raise RuntimeError(f"lambdasim did not become ready; log:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()
        return self.process.returncode


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One lambdasim server shared by the tests of a session."""
    root = tmp_path_factory.mktemp("lambdasim")
    process = ServerProcess(root / "data", root / "server.log")
    yield process
    process.stop()


@pytest.fixture(scope="session")
def endpoint(server: ServerProcess) -> str:
    return server.endpoint


def client(service: str, endpoint: str, **config: object):  # type: ignore[no-untyped-def]
    """Return a boto3 client for `service` at `endpoint`, with dummy credentials."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=botocore.config.Config(
            retries={"total_max_attempts": 1},
            read_timeout=120,
            **config,  # type: ignore[arg-type]
        ),
    )


@pytest.fixture(scope="session")
def lam(endpoint: str):  # type: ignore[no-untyped-def]
    return client("lambda", endpoint)


@pytest.fixture(scope="session")
def execution_role(endpoint: str) -> str:
    """The role `lambda-exec`, trusted by Lambda, with S3 and DynamoDB access."""
    iam = client("iam", endpoint)
    try:
        iam.create_role(RoleName="lambda-exec", AssumeRolePolicyDocument=LAMBDA_TRUST_POLICY)
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    for policy in ("AmazonDynamoDBFullAccess", "AmazonS3FullAccess"):
        iam.attach_role_policy(
            RoleName="lambda-exec", PolicyArn=f"arn:aws:iam::aws:policy/{policy}"
        )
    return EXECUTION_ROLE


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_python_function(
    lam,  # type: ignore[no-untyped-def]
    source: str,
    *,
    name: str | None = None,
    role: str = EXECUTION_ROLE,
    **kwargs: object,
) -> str:
    """Create a python3.12 function whose `app.py` is `source`; return its name."""
    name = name or unique_name("fn")
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler=kwargs.pop("Handler", "app.handler"),
        Code={"ZipFile": make_zip({"app.py": source})},
        **kwargs,
    )
    return name
