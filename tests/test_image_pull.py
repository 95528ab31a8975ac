"""A runtime image that can be neither found nor pulled fails the function clearly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import ServerProcess, client, create_python_function

pytestmark = pytest.mark.docker


def test_pull_failure_reported(tmp_path: Path) -> None:
    # Nothing listens on port 9 of loopback, so the pull fails at once.
    registry = "127.0.0.1:9/lambda"
    process = ServerProcess(
        tmp_path / "data", tmp_path / "server.log", {"LAMBDASIM_LAMBDA_IMAGE_REGISTRY": registry}
    )
    try:
        lam = client("lambda", process.endpoint)
        name = create_python_function(lam, "def handler(e, c):\n    return 1\n")
        deadline = time.monotonic() + 60
        configuration = lam.get_function_configuration(FunctionName=name)
        while configuration["State"] == "Pending" and time.monotonic() < deadline:
            time.sleep(0.3)
            configuration = lam.get_function_configuration(FunctionName=name)

        assert configuration["State"] == "Failed"
        reason = configuration["StateReason"]
        assert f"{registry}/python:3.12" in reason
        assert "scripts/build-images" in reason
        assert "LAMBDASIM_LAMBDA_IMAGE_REGISTRY" in reason
        with pytest.raises(lam.exceptions.ResourceConflictException):
            lam.invoke(FunctionName=name, Payload=b"{}")
        assert f"pulling image {registry}/python:3.12" in process.log()
    finally:
        process.stop()
