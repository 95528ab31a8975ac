"""The library used in-process, without the HTTP server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from conftest import make_zip

import lambdasim

pytestmark = pytest.mark.docker

SOURCE = """\
import os
def handler(event, context):
    return {"doubled": event["n"] * 2, "function": os.environ["AWS_LAMBDA_FUNCTION_NAME"]}
"""


async def test_create_and_invoke_in_process(tmp_path: Path) -> None:
    config = lambdasim.Config.from_env({}, data_dir=tmp_path)
    function = lambdasim.Function(
        "in-process",
        "python3.12",
        "app.handler",
        "arn:aws:iam::000000000000:role/anything",
        code=make_zip({"app.py": SOURCE}),
    )

    async with lambdasim.open_simulator(config) as sim:
        deployed = await sim.create_function(function)
        first = await sim.invoke("in-process", b'{"n": 21}')
        second = await sim.invoke(deployed.arn, json.dumps({"n": 2}).encode())
        environments = sim.pool.environments

    assert first.function_error is None
    assert first.json() == {"doubled": 42, "function": "in-process"}
    assert second.json() == {"doubled": 4, "function": "in-process"}
    assert first.executed_version == "$LATEST"
    # The warm environment served the second invocation.
    assert len(environments) == 1
    assert environments[0].invocations == 2


async def test_leaving_removes_containers(tmp_path: Path) -> None:
    import docker

    config = lambdasim.Config.from_env({}, data_dir=tmp_path)
    function = lambdasim.Function(
        "short-lived",
        "python3.12",
        "app.handler",
        "arn:aws:iam::000000000000:role/anything",
        code=make_zip({"app.py": SOURCE}),
    )
    async with lambdasim.open_simulator(config) as sim:
        await sim.create_function(function)
        await sim.invoke("short-lived", b'{"n": 1}')
        instance = sim.instance_id

    client = docker.from_env()
    try:
        left = await trio.to_thread.run_sync(
            lambda: client.containers.list(
                all=True, filters={"label": f"io.lambdasim.instance={instance}"}
            )
        )
    finally:
        client.close()
    assert left == []


async def test_invalid_function_rejected() -> None:
    with pytest.raises(lambdasim.ValidationException) as raised:
        lambdasim.Function(
            "bad name!",
            "python3.12",
            "app.handler",
            "arn:aws:iam::000000000000:role/anything",
            code=b"",
        )
    assert "bad name!" in str(raised.value)
