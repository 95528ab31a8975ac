"""Layers in running functions: merged at /opt in order (real containers)."""

from __future__ import annotations

import json

import pytest
from conftest import EXECUTION_ROLE, create_python_function, unique_name

from lambdasim.testing import make_zip

pytestmark = pytest.mark.docker

APP = """\
import os, shared
def handler(event, context):
    return {"who": shared.WHO, "a": os.path.exists("/opt/conf/a.txt"),
            "task": sorted(os.listdir("/var/task"))}
"""


def _publish(lam, name: str, files: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    response = lam.publish_layer_version(
        LayerName=name, Content={"ZipFile": make_zip(files)}, CompatibleRuntimes=["python3.12"]
    )
    return response["LayerVersionArn"]


@pytest.fixture(scope="module")
def layer_pair(lam) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    first = _publish(lam, unique_name("la"), {"python/shared.py": 'WHO = "A"\n', "conf/a.txt": "a"})
    second = _publish(lam, unique_name("lb"), {"python/shared.py": 'WHO = "B"\n'})
    return first, second


def _invoke(lam, name: str) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    response = lam.invoke(FunctionName=name, Payload=b"{}")
    return response, json.loads(response["Payload"].read())


def test_later_layer_wins(lam, layer_pair: tuple[str, str]) -> None:  # type: ignore[no-untyped-def]
    first, second = layer_pair
    name = create_python_function(lam, APP, Layers=[first, second])

    response, body = _invoke(lam, name)

    assert "FunctionError" not in response, body
    assert body == {"who": "B", "a": True, "task": ["app.py"]}
    configured = lam.get_function_configuration(FunctionName=name)["Layers"]
    assert [layer["Arn"] for layer in configured] == [first, second]
    assert all(layer["CodeSize"] > 0 for layer in configured)


def test_order_reversed(lam, layer_pair: tuple[str, str]) -> None:  # type: ignore[no-untyped-def]
    first, second = layer_pair
    name = create_python_function(lam, APP, Layers=[second, first])

    assert _invoke(lam, name)[1]["who"] == "A"


def test_removing_layers_retires_environment(lam, layer_pair: tuple[str, str]) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, APP, Layers=list(layer_pair))
    assert _invoke(lam, name)[1]["who"] == "B"

    lam.update_function_configuration(FunctionName=name, Layers=[])
    response, body = _invoke(lam, name)

    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ImportModuleError"
    assert "shared" in body["errorMessage"]


def test_layer_limits(lam, layer_pair: tuple[str, str]) -> None:  # type: ignore[no-untyped-def]
    first, _ = layer_pair
    base = first.rsplit(":", 1)[0]
    second_version = _publish(lam, base.rsplit(":", 1)[1], {"python/shared.py": 'WHO = "A2"\n'})
    cases = [
        ([first] * 6, "InvalidParameterValueException", "Cannot reference more than 5 layers."),
        (
            [first, second_version],
            "InvalidParameterValueException",
            "Two different versions of the same layer are not allowed to be referenced in the "
            f"same function. {first} and {second_version} are versions of the same layer.",
        ),
        (
            [f"{base}:9"],
            "InvalidParameterValueException",
            f"Layer version {base}:9 does not exist.",
        ),
        ([base], "ValidationException", None),
    ]
    for layers, error_type, message in cases:
        name = unique_name("layer-limits")
        with pytest.raises(lam.exceptions.ClientError) as raised:
            lam.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=EXECUTION_ROLE,
                Handler="app.handler",
                Code={"ZipFile": make_zip({"app.py": APP})},
                Layers=layers,
            )
        error = raised.value.response["Error"]
        assert error["Code"] == error_type, layers
        if message is not None:
            assert error["Message"] == message
        with pytest.raises(lam.exceptions.ResourceNotFoundException):
            lam.get_function(FunctionName=name)
