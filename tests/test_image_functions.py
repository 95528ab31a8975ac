"""Container-image functions: pushed to the endpoint's registry, pinned, and run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from conftest import EXECUTION_ROLE, client, unique_name

pytestmark = pytest.mark.docker

DOCKERFILE = """\
FROM public.ecr.aws/lambda/python:3.12
COPY app.py /var/task/app.py
CMD ["app.handler"]
"""


def _app(tag: str) -> str:
    return (
        "import os\n"
        "def handler(event, context):\n"
        f"    return {{'tag': '{tag}', 'cwd': os.getcwd(), 'handler': os.environ.get('_HANDLER')}}\n"
        "def other(event, context):\n"
        f"    return {{'tag': '{tag}-other'}}\n"
    )


@pytest.fixture
def engine() -> Iterator[docker.DockerClient]:
    client_ = docker.from_env()
    yield client_
    client_.close()


def _push(
    engine: docker.DockerClient, tmp_path: Path, endpoint: str, repository: str, tag: str
) -> str:
    """Build an image whose handler returns `tag`, push it, and return its local reference."""
    context = tmp_path / tag
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "app.py").write_text(_app(tag))
    address = endpoint.removeprefix("http://")
    reference = f"{address}/000000000000/{repository}:latest"
    engine.images.build(path=str(context), tag=reference, network_mode="host", rm=True)
    for line in engine.images.push(reference, stream=True, decode=True):
        assert "error" not in line, line
    return reference


def _invoke(lam, name: str) -> dict:  # type: ignore[no-untyped-def]
    response = lam.invoke(FunctionName=name, Payload=b"{}")
    body = response["Payload"].read()
    assert "FunctionError" not in response, body
    return json.loads(body)


def test_image_function_runs_pinned(engine, tmp_path: Path, endpoint: str, lam) -> None:  # type: ignore[no-untyped-def]
    repository = unique_name("my-function")
    ecr = client("ecr", endpoint)
    ecr.create_repository(repositoryName=repository)
    pushed = _push(engine, tmp_path, endpoint, repository, "first")
    image_uri = f"000000000000.dkr.ecr.us-east-1.amazonaws.com/{repository}:latest"
    name = unique_name("image-fn")
    try:
        created = lam.create_function(
            FunctionName=name,
            Role=EXECUTION_ROLE,
            PackageType="Image",
            Code={"ImageUri": image_uri},
        )
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1})
        digest = ecr.describe_images(repositoryName=repository)["imageDetails"][0]["imageDigest"]

        assert created["PackageType"] == "Image"
        assert "Runtime" not in created
        assert created["CodeSha256"] == digest.removeprefix("sha256:")
        code = lam.get_function(FunctionName=name)["Code"]
        assert code["RepositoryType"] == "ECR"
        assert code["ImageUri"] == image_uri
        assert code["ResolvedImageUri"] == (
            f"000000000000.dkr.ecr.us-east-1.amazonaws.com/{repository}@{digest}"
        )
        first = _invoke(lam, name)
        assert first["tag"] == "first"
        assert first["handler"] == "app.handler"

        # A new push of the same tag does not change the function until its code is updated.
        _push(engine, tmp_path, endpoint, repository, "second")
        lam.get_function(FunctionName=name)
        assert _invoke(lam, name)["tag"] == "first"
        lam.update_function_code(FunctionName=name, ImageUri=image_uri)
        lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1})
        assert _invoke(lam, name)["tag"] == "second"

        lam.update_function_configuration(
            FunctionName=name,
            ImageConfig={"Command": ["app.other"], "WorkingDirectory": "/tmp"},
        )
        assert _invoke(lam, name) == {"tag": "second-other"}
        configuration = lam.get_function_configuration(FunctionName=name)
        assert configuration["ImageConfigResponse"]["ImageConfig"] == {
            "Command": ["app.other"],
            "WorkingDirectory": "/tmp",
        }
    finally:
        for reference in (pushed, f"{pushed.rsplit(':', 1)[0]}:latest"):
            try:
                engine.images.remove(reference, force=True)
            except docker.errors.ImageNotFound:
                pass


def test_missing_image_fails_function(endpoint: str, lam) -> None:  # type: ignore[no-untyped-def]
    repository = unique_name("empty-repo")
    client("ecr", endpoint).create_repository(repositoryName=repository)
    name = unique_name("missing-image")

    lam.create_function(
        FunctionName=name,
        Role=EXECUTION_ROLE,
        PackageType="Image",
        Code={"ImageUri": f"000000000000.dkr.ecr.us-east-1.amazonaws.com/{repository}:latest"},
    )

    configuration = lam.get_function_configuration(FunctionName=name)
    assert configuration["State"] == "Failed"
    assert configuration["StateReasonCode"] == "ImageDeleted"
    assert "docker push" in configuration["StateReason"]
    with pytest.raises(lam.exceptions.ResourceConflictException) as raised:
        lam.invoke(FunctionName=name, Payload=b"{}")
    assert raised.value.response["Error"]["Message"].endswith("following state: Failed")


def test_image_uri_not_ecr(lam) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.create_function(
            FunctionName=unique_name("bad-uri"),
            Role=EXECUTION_ROLE,
            PackageType="Image",
            Code={"ImageUri": "docker.io/library/python:3.12"},
        )
