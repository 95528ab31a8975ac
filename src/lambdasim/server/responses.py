"""JSON responses and request bodies in the shapes of AWS's REST-JSON APIs."""

from __future__ import annotations

import json
import uuid
from typing import Any

from quart import Response, request

from ..errors import InvalidRequestContentException, LambdaError, ValidationException


def error_response(error: LambdaError) -> Response:
    """Return the HTTP response AWS sends for `error`."""
    response = Response(
        json.dumps(error.to_body()), status=error.status, content_type="application/json"
    )
    response.headers["x-amzn-ErrorType"] = error.error_type
    response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return response


def json_response(body: Any, status: int = 200) -> Response:
    response = Response(json.dumps(body), status=status, content_type="application/json")
    response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return response


def empty_response() -> Response:
    response = Response(b"", status=204)
    response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return response


async def json_body() -> dict[str, Any]:
    raw = await request.get_data()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequestContentException(
            f"Could not parse request body into json: {exc}"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequestContentException(
            "Could not parse request body into json: the body must be a JSON object"
        )
    return body


def required(body: dict[str, Any], key: str, member: str) -> Any:
    value = body.get(key)
    if value is None:
        raise ValidationException(
            f"1 validation error detected: Value null at '{member}' failed to satisfy "
            "constraint: Member must not be null"
        )
    return value
