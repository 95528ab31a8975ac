"""Node.js and custom (provided) runtimes, and runtime images from a mirror registry."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import (
    EXECUTION_ROLE,
    ServerProcess,
    client,
    docker_required,
    make_zip,
    unique_name,
)

pytestmark = pytest.mark.docker

NODEJS_IMAGE = "public.ecr.aws/lambda/nodejs:20"
PROVIDED_IMAGE = "public.ecr.aws/lambda/provided:al2023"
PYTHON_IMAGE = "public.ecr.aws/lambda/python:3.12"

NODEJS_SOURCE = "export const handler = async (e) => ({ e })\n"
MIRRORED_SOURCE = "def handler(event, context):\n    return {'mirrored': event}\n"

# A custom runtime in busybox sh: the stand-in provided image has busybox and no
# other tools. `wget -S` prints the response headers to stderr, which is where the
# request id comes from.
BOOTSTRAP = """\
#!/bin/sh
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation"
work=$(mktemp -d)
while true; do
    if ! busybox wget -q -S -O "$work/event" "$api/next" 2> "$work/headers"; then
        sleep 1
        continue
    fi
    request_id=$(grep -i 'lambda-runtime-aws-request-id:' "$work/headers" \\
        | sed 's/^[^:]*: *//' | busybox tr -d '\\r')
    printf '{"handler": "%s", "requestId": "%s", "event": %s}' \\
        "$_HANDLER" "$request_id" "$(cat "$work/event")" > "$work/response"
    busybox wget -q -O /dev/null --post-file "$work/response" \\
        "$api/$request_id/response"
done
"""


def _require_image(image: str) -> None:
    import docker
    import docker.errors

    engine = docker.from_env(timeout=30)
    try:
        engine.images.get(image)
    except docker.errors.ImageNotFound:
        message = f"image {image} is missing; build it with scripts/build-images"
        if docker_required():
            pytest.fail(message)
        pytest.skip(message)
    finally:
        engine.close()


def _wait_active(lam, name: str) -> None:  # type: ignore[no-untyped-def]
    """Wait until `name` leaves Pending (lambdasim pulls a missing image first)."""
    lam.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 300}
    )


def _invoke(lam, name: str, payload: bytes | None = None) -> tuple[dict, Any]:  # type: ignore[no-untyped-def]
    """Invoke `name` (without a payload when `payload` is None); return the response and payload."""
    arguments: dict[str, Any] = {"FunctionName": name}
    if payload is not None:
        arguments["Payload"] = payload
    response = lam.invoke(**arguments)
    return response, json.loads(response["Payload"].read())


# Node.js -------------------------------------------------------------------------


def test_nodejs_function_returns_event(lam) -> None:  # type: ignore[no-untyped-def]
    _require_image(NODEJS_IMAGE)
    name = unique_name("node")
    lam.create_function(
        FunctionName=name,
        Runtime="nodejs20.x",
        Role=EXECUTION_ROLE,
        Handler="index.handler",
        Code={"ZipFile": make_zip({"index.mjs": NODEJS_SOURCE})},
    )
    _wait_active(lam, name)

    response, body = _invoke(lam, name, json.dumps({"greeting": "hello", "n": [1, 2]}).encode())
    empty_response, empty_body = _invoke(lam, name)

    assert response["StatusCode"] == 200
    assert "FunctionError" not in response, body
    assert body == {"e": {"greeting": "hello", "n": [1, 2]}}
    assert "FunctionError" not in empty_response, empty_body
    assert empty_body == {"e": {}}


# provided.al2023 -------------------------------------------------------------------


def test_provided_bootstrap_runs_runtime_loop(lam) -> None:  # type: ignore[no-untyped-def]
    _require_image(PROVIDED_IMAGE)
    name = unique_name("provided")
    lam.create_function(
        FunctionName=name,
        Runtime="provided.al2023",
        Role=EXECUTION_ROLE,
        Handler="function.handler",
        Code={"ZipFile": make_zip({"bootstrap": BOOTSTRAP}, modes={"bootstrap": 0o755})},
    )
    _wait_active(lam, name)

    first, first_body = _invoke(lam, name, b'{"n": 1}')
    second, second_body = _invoke(lam, name, b"")

    assert "FunctionError" not in first, first_body
    assert first_body == {
        "handler": "function.handler",
        "requestId": first["ResponseMetadata"]["RequestId"],
        "event": {"n": 1},
    }
    # The second invocation reaches the same loop, which read its own request id.
    assert "FunctionError" not in second, second_body
    assert second_body["event"] == {}
    assert second_body["requestId"] == second["ResponseMetadata"]["RequestId"]


def test_bootstrap_without_exec_bit(lam) -> None:  # type: ignore[no-untyped-def]
    _require_image(PROVIDED_IMAGE)
    name = unique_name("no-exec")
    lam.create_function(
        FunctionName=name,
        Runtime="provided.al2023",
        Role=EXECUTION_ROLE,
        Handler="function.handler",
        Code={"ZipFile": make_zip({"bootstrap": BOOTSTRAP}, modes={"bootstrap": 0o644})},
    )
    _wait_active(lam, name)

    response, body = _invoke(lam, name, b"{}")

    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.InvalidEntrypoint"


# Runtime images from a mirror registry ----------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_registry(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"docker-registry exited with {process.returncode}: {log.read_text()}"
            )
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"docker-registry did not respond at {url} within 30 s: {log.read_text()}")


@pytest.fixture
def mirror_registry(tmp_path: Path) -> Iterator[str]:
    """Debian's docker-registry on a free loopback port, with storage in a temporary folder.

    Yields its `host:port`. The configuration is written here, never the
    packaged one, which listens on every interface and turns on htpasswd auth.
    """
    program = shutil.which("docker-registry")
    if program is None:
        message = "docker-registry is not installed (apt-get install docker-registry)"
        if docker_required():
            pytest.fail(message)
        pytest.skip(message)
    address = f"127.0.0.1:{_free_port()}"
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n"
        "  level: warn\n"
        "storage:\n"
        "  filesystem:\n"
        f"    rootdirectory: {tmp_path / 'storage'}\n"
        "http:\n"
        f"  addr: {address}\n"
    )
    log = tmp_path / "registry.log"
    # REGISTRY_* variables override the configuration file, so none are passed on.
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")
    }
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [program, "serve", str(config)], stdout=output, stderr=output, env=environment
        )
    try:
        _wait_for_registry(f"http://{address}/v2/", process, log)
        yield address
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _remove_references(engine, prefix: str) -> None:  # type: ignore[no-untyped-def]
    """Remove the tags and digest references under `prefix` from the python image only."""
    import docker.errors

    image = engine.images.get(PYTHON_IMAGE)
    image.reload()
    references = [*image.tags, *image.attrs.get("RepoDigests", [])]
    for reference in references:
        if reference.startswith(prefix):
            try:
                engine.images.remove(reference)
            except docker.errors.ImageNotFound:
                pass


def test_runtime_image_from_mirror(mirror_registry: str, tmp_path: Path) -> None:
    import docker

    _require_image(PYTHON_IMAGE)
    engine = docker.from_env(timeout=300)
    mirror_prefix = f"{mirror_registry}/lambda/"
    mirrored = f"{mirror_prefix}python:3.12"
    try:
        engine.images.get(PYTHON_IMAGE).tag(mirrored)
        for progress in engine.api.push(
            f"{mirror_prefix}python", tag="3.12", stream=True, decode=True
        ):
            assert "error" not in progress, progress
        # lambdasim must pull the image itself: only the public tags stay.
        _remove_references(engine, mirror_prefix)

        server = ServerProcess(
            tmp_path / "data",
            tmp_path / "server.log",
            {"LAMBDASIM_LAMBDA_IMAGE_REGISTRY": f"{mirror_registry}/lambda"},
        )
        try:
            lam = client("lambda", server.endpoint)
            name = unique_name("mirrored")
            created = lam.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=EXECUTION_ROLE,
                Handler="app.handler",
                Code={"ZipFile": make_zip({"app.py": MIRRORED_SOURCE})},
            )
            _wait_active(lam, name)
            response = lam.invoke(FunctionName=name, Payload=b'{"n": 3}')
            body = json.loads(response["Payload"].read())
            configuration = lam.get_function(FunctionName=name)["Configuration"]
        finally:
            server.stop()

        # The image was missing, so the function stayed Pending until the pull finished.
        assert created["State"] == "Pending"
        assert "FunctionError" not in response, body
        assert body == {"mirrored": {"n": 3}}
        assert configuration["Runtime"] == "python3.12"
        assert f"pulling image {mirrored}" in server.log()
        assert mirrored in engine.images.get(PYTHON_IMAGE).tags
    finally:
        _remove_references(engine, mirror_prefix)
        engine.close()


def test_arm64_needs_its_platform(lam) -> None:  # type: ignore[no-untyped-def]
    # The stand-in images are built for this machine only (linux/amd64), so an arm64
    # function requests linux/arm64 and its error names the image it lacks.
    name = unique_name("arm")
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=EXECUTION_ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 1\n"})},
        Architectures=["arm64"],
    )
    assert lam.get_function_configuration(FunctionName=name)["Architectures"] == ["arm64"]

    with pytest.raises(lam.exceptions.ServiceException) as raised:
        lam.invoke(FunctionName=name, Payload=b"{}")

    assert "for platform linux/arm64 is not available" in raised.value.response["Error"]["Message"]
