"""Every operation of the botocore Lambda model gets an AWS-shaped response.

Each operation is called through boto3 with only its required parameters,
filled with dummy values (function name `cov-nope`, which does not exist). The
response must be a 2xx response or a 4xx error whose `x-amzn-ErrorType` is one
of the operation's error shapes or a generic Lambda error, with a JSON body.
Operations without a handler must return UnsupportedOperationException with a
message that names the operation. Run with `-s` to see how many operations are implemented.
"""

from __future__ import annotations

import datetime
import importlib
import json
import pkgutil
from collections.abc import Iterator
from typing import Any

import botocore.model
import botocore.session
import pytest
from botocore.exceptions import ClientError

import lambdasim.server

pytestmark = pytest.mark.docker

DUMMY_NAME = "cov-nope"
#: Error types any operation may return besides the ones its model lists.
GENERIC_ERRORS = frozenset(
    {
        "UnsupportedOperationException",
        "ResourceNotFoundException",
        "ValidationException",
        "InvalidParameterValueException",
    }
)

SERVICE_MODEL = botocore.session.get_session().get_service_model("lambda")
OPERATIONS = sorted(SERVICE_MODEL.operation_names)


def _handler_tables() -> Iterator[dict[str, Any]]:
    """Yield the `HANDLERS` table of every module of the server shell."""
    for module_info in pkgutil.iter_modules(lambdasim.server.__path__):
        module = importlib.import_module(f"lambdasim.server.{module_info.name}")
        table = getattr(module, "HANDLERS", None)
        if isinstance(table, dict):
            yield table


IMPLEMENTED = frozenset(name for table in _handler_tables() for name in table)


def dummy_value(shape: botocore.model.Shape) -> Any:
    """Return the smallest value that boto3's client-side validation accepts for `shape`."""
    minimum = shape.metadata.get("min", 0)
    if shape.type_name == "string":
        if shape.enum:
            return shape.enum[0]
        return DUMMY_NAME.ljust(int(minimum), "x")
    if shape.type_name in ("integer", "long"):
        return max(int(minimum), 1)
    if shape.type_name in ("float", "double"):
        return max(float(minimum), 1.0)
    if shape.type_name == "boolean":
        return False
    if shape.type_name == "blob":
        return b"{}"
    if shape.type_name == "timestamp":
        return datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    if shape.type_name == "list":
        assert isinstance(shape, botocore.model.ListShape)
        return [dummy_value(shape.member)]
    if shape.type_name == "map":
        assert isinstance(shape, botocore.model.MapShape)
        return {"cov": dummy_value(shape.value)}
    if shape.type_name == "structure":
        assert isinstance(shape, botocore.model.StructureShape)
        return {name: dummy_value(shape.members[name]) for name in shape.required_members}
    raise AssertionError(f"no dummy value for shape type {shape.type_name}")


def minimal_parameters(operation: botocore.model.OperationModel) -> dict[str, Any]:
    if operation.input_shape is None:
        return {}
    return dummy_value(operation.input_shape)


def _has_payload(operation: botocore.model.OperationModel) -> bool:
    output = operation.output_shape
    return output is not None and "payload" in output.serialization


def call_raw(lam, operation_name: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Call an operation with minimal parameters; return its raw HTTP response."""
    operation = SERVICE_MODEL.operation_model(operation_name)
    captured: dict[str, Any] = {}

    def capture(response_dict: dict[str, Any], **kwargs: Any) -> None:
        captured.update(response_dict)

    event = f"before-parse.lambda.{operation_name}"
    lam.meta.events.register(event, capture)
    try:
        method = getattr(lam, botocore.xform_name(operation_name))
        method(**minimal_parameters(operation))
    except ClientError:
        pass
    finally:
        lam.meta.events.unregister(event, capture)
    assert captured, f"{operation_name}: no HTTP response was received"
    return captured


@pytest.mark.parametrize("operation_name", OPERATIONS)
def test_operation_response_shape(lam, operation_name: str) -> None:  # type: ignore[no-untyped-def]
    operation = SERVICE_MODEL.operation_model(operation_name)
    response = call_raw(lam, operation_name)
    status = response["status_code"]
    body = response["body"]

    assert status < 500, f"{operation_name}: HTTP {status}, body {body!r}"
    if status < 300:
        assert operation_name in IMPLEMENTED, f"{operation_name}: {status} without a handler"
        if isinstance(body, bytes) and body and not _has_payload(operation):
            assert isinstance(json.loads(body), dict), f"{operation_name}: body {body!r}"
        return

    error_type = response["headers"].get("x-amzn-ErrorType", "").split(":")[0]
    allowed = GENERIC_ERRORS | {error.name for error in operation.error_shapes}
    assert error_type in allowed, f"{operation_name}: error type {error_type!r}, body {body!r}"
    error_body = json.loads(body)
    assert isinstance(error_body, dict), f"{operation_name}: body {body!r}"
    message = error_body.get("message") or error_body.get("Message")
    assert message, f"{operation_name}: error body without a message: {error_body!r}"

    unsupported = error_type == "UnsupportedOperationException" and (
        f"The {operation_name} operation is not supported" in message
    )
    if operation_name in IMPLEMENTED:
        assert not unsupported, f"{operation_name} has a handler but returns {message!r}"
    else:
        assert error_type == "UnsupportedOperationException", (
            f"{operation_name} has no handler but returns {error_type}: {message!r}"
        )
        assert operation_name in message, f"{operation_name}: message {message!r}"


def test_coverage_summary() -> None:
    implemented = [name for name in OPERATIONS if name in IMPLEMENTED]
    unsupported = [name for name in OPERATIONS if name not in IMPLEMENTED]
    print(
        f"\nLambda API coverage: {len(implemented)} of {len(OPERATIONS)} operations implemented, "
        f"{len(unsupported)} not supported"
    )
    print("not supported: " + ", ".join(unsupported))
    assert len(OPERATIONS) > 0
    assert not IMPLEMENTED - set(OPERATIONS), (
        f"handlers for operations the model lacks: {sorted(IMPLEMENTED - set(OPERATIONS))}"
    )
