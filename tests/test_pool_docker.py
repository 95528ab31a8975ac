"""The container pool with real containers, through the HTTP API."""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from conftest import ServerProcess, client, create_python_function

from lambdasim.testing import make_zip

pytestmark = pytest.mark.docker

# Returns what identifies the environment: its container id (from the cgroup path;
# containers share the host's hostname on the host network) and its log stream.
IDENTITY_SOURCE = """\
import os, time
def _container_id():
    with open("/proc/self/cgroup") as cgroup:
        for line in cgroup:
            if "docker" in line:
                return line.strip().rsplit("/", 1)[-1]
    return "unknown"
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"container": _container_id(), "stream": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"],
            "key": os.environ["AWS_ACCESS_KEY_ID"], "version": "v1"}
"""


def _invoke(lam, name: str, payload: dict | None = None) -> dict:  # type: ignore[no-untyped-def]
    response = lam.invoke(FunctionName=name, Payload=json.dumps(payload or {}).encode())
    body = response["Payload"].read()
    assert "FunctionError" not in response, body
    return json.loads(body)


def _get_json(endpoint: str, path: str, method: str = "GET") -> dict:
    request = urllib.request.Request(
        endpoint + path, method=method, data=b"" if method == "POST" else None
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _containers(**labels: str) -> list:
    engine = docker.from_env()
    try:
        selectors = [f"{key}={value}" for key, value in labels.items()] or ["io.lambdasim.managed"]
        filters = {"label": selectors}
        return engine.containers.list(all=True, filters=filters)
    finally:
        engine.close()


def _wait_until(condition, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.fixture(scope="module")
def short_keep_alive_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("keep-alive")
    process = ServerProcess(
        root / "data", root / "server.log", {"LAMBDASIM_LAMBDA_KEEP_ALIVE": "2"}
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def short_session_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("session")
    process = ServerProcess(
        root / "data", root / "server.log", {"LAMBDASIM_ROLE_SESSION_SECONDS": "305"}
    )
    yield process
    process.stop()


def test_concurrent_invokes_separate_containers(lam, execution_role: str) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, IDENTITY_SOURCE, Timeout=30)
    results: list[dict] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(_invoke(lam, name, {"sleep": 1}))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    elapsed = time.monotonic() - started

    assert errors == []
    assert len({r["container"] for r in results}) == 10
    assert len({r["stream"] for r in results}) == 10
    # Ten 1 s invocations in parallel, not one after another.
    assert elapsed < 8
    again = _invoke(lam, name)
    assert again["container"] in {r["container"] for r in results}


def test_reserved_concurrency_throttles_second(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, IDENTITY_SOURCE, Timeout=30)
    assert (
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)[
            "ReservedConcurrentExecutions"
        ]
        == 1
    )
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 1
    outcomes: list[object] = []

    def one() -> None:
        try:
            outcomes.append(_invoke(lam, name, {"sleep": 3}))
        except lam.exceptions.TooManyRequestsException as exc:
            outcomes.append(exc.response)

    first = threading.Thread(target=one)
    first.start()
    time.sleep(1.5)
    one()
    first.join(60)

    throttled = [o for o in outcomes if isinstance(o, dict) and "Error" in o]
    assert len(outcomes) == 2
    assert len(throttled) == 1
    assert throttled[0]["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert throttled[0]["Error"]["Message"] == "Rate Exceeded."
    assert throttled[0]["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"

    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(lam.exceptions.TooManyRequestsException):
        lam.invoke(FunctionName=name, Payload=b"{}")
    lam.delete_function_concurrency(FunctionName=name)
    assert (
        lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions") is None
    )
    assert _invoke(lam, name)["version"] == "v1"


def test_concurrency_validation(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, IDENTITY_SOURCE)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as raised:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=901)
    assert raised.value.response["Error"]["Message"] == (
        "Specified ReservedConcurrentExecutions for function decreases account's "
        "UnreservedConcurrentExecution below its minimum value of [100]."
    )
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as qualified:
        lam.put_function_concurrency(
            FunctionName=f"arn:aws:lambda:us-east-1:000000000000:function:{name}:$LATEST",
            ReservedConcurrentExecutions=1,
        )
    assert (
        "Aliases and versions do not support this operation"
        in qualified.value.response["Error"]["Message"]
    )
    settings = lam.get_account_settings()
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert settings["AccountUsage"]["FunctionCount"] >= 1


def test_update_code_reaches_next_invoke(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, IDENTITY_SOURCE)
    created = lam.get_function(FunctionName=name)["Configuration"]
    before = _invoke(lam, name)
    updated = lam.update_function_code(
        FunctionName=name, ZipFile=make_zip({"app.py": IDENTITY_SOURCE.replace('"v1"', '"v2"')})
    )
    after = _invoke(lam, name)

    assert before["version"] == "v1"
    assert after["version"] == "v2"
    assert after["container"] != before["container"]
    assert updated["CodeSha256"] != created["CodeSha256"]
    assert updated["RevisionId"] != created["RevisionId"]
    # The old environment's container is removed, not left idle.
    assert _wait_until(lambda: before["container"] not in {c.id for c in _containers()})


def test_update_configuration_retires_environment(lam) -> None:  # type: ignore[no-untyped-def]
    source = "import os\ndef handler(e, c):\n    return os.environ.get('COLOR')\n"
    name = create_python_function(lam, source, Environment={"Variables": {"COLOR": "red"}})
    assert _invoke_raw(lam, name) == "red"

    lam.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"COLOR": "blue"}}
    )

    assert _invoke_raw(lam, name) == "blue"


def _invoke_raw(lam, name: str) -> object:  # type: ignore[no-untyped-def]
    return json.loads(lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())


def test_introspection_and_cold_start(lam, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, IDENTITY_SOURCE)
    first = _invoke(lam, name)

    listed = _get_json(endpoint, "/_lambdasim/environments")["Environments"]
    mine = [e for e in listed if e["FunctionName"] == name]
    assert len(mine) == 1
    assert mine[0]["State"] == "idle"
    assert mine[0]["Invocations"] == 1
    assert first["container"] == mine[0]["ContainerId"]
    assert mine[0]["CredentialExpiry"]
    assert mine[0]["Version"] == "$LATEST"

    stopped = _get_json(endpoint, f"/_lambdasim/functions/{name}/stop-environments", "POST")
    assert stopped == {"Stopped": 1}
    second = _invoke(lam, name)
    assert second["container"] != first["container"]

    listed = _get_json(endpoint, "/_lambdasim/environments")["Environments"]
    (current,) = [e for e in listed if e["FunctionName"] == name]
    _get_json(endpoint, f"/_lambdasim/environments/{current['Id']}/expire-credentials", "POST")
    third = _invoke(lam, name)
    assert third["container"] != second["container"]
    assert third["key"] != second["key"]


def test_keep_alive_stops_containers(short_keep_alive_server: ServerProcess) -> None:
    lam = client("lambda", short_keep_alive_server.endpoint)
    name = create_python_function(lam, IDENTITY_SOURCE, role="arn:aws:iam::000000000000:role/none")
    _invoke(lam, name)
    pid = str(short_keep_alive_server.process.pid)
    assert len(_containers(**{"io.lambdasim.function": name, "io.lambdasim.owner-pid": pid})) == 1

    gone = _wait_until(
        lambda: not _containers(**{"io.lambdasim.function": name, "io.lambdasim.owner-pid": pid}),
        timeout=15,
    )

    assert gone
    assert "keep-alive expired" in short_keep_alive_server.log()


def test_credentials_recycled_in_use(short_session_server: ServerProcess) -> None:
    endpoint = short_session_server.endpoint
    iam = client("iam", endpoint)
    iam.create_role(
        RoleName="recycle-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    lam = client("lambda", endpoint)
    name = create_python_function(
        lam, IDENTITY_SOURCE, role="arn:aws:iam::000000000000:role/recycle-role"
    )
    keys = []
    for _ in range(9):  # one invocation a second, across the 5 s recycle point
        keys.append(_invoke(lam, name)["key"])
        time.sleep(1)

    assert len(set(keys)) == 2
    assert keys[0] == keys[1]
    assert keys[-1] != keys[0]
    assert "credentials expiring" in short_session_server.log()


def test_clean_stop_removes_containers(tmp_path: Path) -> None:
    process = ServerProcess(tmp_path / "data", tmp_path / "server.log")
    pid = str(process.process.pid)
    try:
        lam = client("lambda", process.endpoint)
        name = create_python_function(
            lam, IDENTITY_SOURCE, role="arn:aws:iam::000000000000:role/none"
        )
        _invoke(lam, name)
        assert len(_containers(**{"io.lambdasim.owner-pid": pid})) == 1
    finally:
        status = process.stop(signal.SIGTERM)

    assert status == 0
    assert _containers(**{"io.lambdasim.owner-pid": pid}) == []


def test_restart_after_kill_removes_leftovers(tmp_path: Path) -> None:
    first = ServerProcess(tmp_path / "data", tmp_path / "first.log")
    pid = str(first.process.pid)
    lam = client("lambda", first.endpoint)
    name = create_python_function(lam, IDENTITY_SOURCE, role="arn:aws:iam::000000000000:role/none")
    _invoke(lam, name)
    first.stop(signal.SIGKILL)
    leftovers = _containers(**{"io.lambdasim.owner-pid": pid})
    assert len(leftovers) == 1

    second = ServerProcess(tmp_path / "data", tmp_path / "second.log")
    try:
        assert _containers(**{"io.lambdasim.owner-pid": pid}) == []
        assert "removed 1 containers left by an earlier lambdasim process" in second.log()
        assert leftovers[0].name in second.log()
    finally:
        second.stop()


def test_many_containers_keep_logs_flowing(lam) -> None:  # type: ignore[no-untyped-def]
    # More running containers than trio's default thread limiter has tokens (40):
    # each container's output thread must not starve the log tail's cgroup read.
    # The invocations last long enough for all 45 containers to start (about 10 a
    # second) before the first one is free again.
    name = create_python_function(lam, IDENTITY_SOURCE, Timeout=60)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            _invoke(lam, name, {"sleep": 8})
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(45)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    response = lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")

    assert errors == []
    assert "REPORT RequestId" in base64.b64decode(response["LogResult"]).decode()
    stopped = _get_json(
        lam.meta.endpoint_url, f"/_lambdasim/functions/{name}/stop-environments", "POST"
    )
    assert stopped["Stopped"] >= 40
