"""Invocation requests and results."""

from __future__ import annotations

import json

import attrs

from .errors import InvalidRequestContentException, RequestTooLargeException

#: Largest request payload of a synchronous invocation (6 MB, as AWS).
MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024


@attrs.frozen
class InvocationResult:
    """The outcome of a synchronous invocation, as the Invoke API reports it.

    A function error is a result, not an exception: `function_error` is
    `"Unhandled"` and `payload` contains the error document.
    """

    request_id: str
    payload: bytes = attrs.field(repr=False)
    executed_version: str
    function_error: str | None = None
    #: The runtime's error type for failed invocations, such as `Sandbox.Timedout`.
    error_type: str | None = None
    status_code: int = 200
    #: Base64 of the log's last 4 KB, when the caller asked for the tail.
    log_result: str | None = None

    def response_context(self) -> dict[str, object]:
        """Return the `responseContext` of AWS's invocation records for this result."""
        context: dict[str, object] = {
            "statusCode": self.status_code,
            "executedVersion": self.executed_version,
        }
        if self.function_error:
            context["functionError"] = self.function_error
        return context

    def json(self) -> object:
        """Return the payload decoded as JSON."""
        return json.loads(self.payload)


def _parse_error_detail(error: ValueError, payload: bytes) -> str:
    if isinstance(error, UnicodeDecodeError):
        byte = payload[error.start]
        return f"Invalid UTF-8 start byte 0x{byte:02x}"
    return str(error)


def normalize_payload(payload: bytes | None) -> bytes:
    """Return the payload to hand to the runtime, or raise AWS's error for it.

    An empty payload becomes `{}`. Anything that is not JSON in UTF-8 is rejected
    before it reaches a container, because runtimes crash on it.
    """
    if payload is None or payload.strip() == b"":
        return b"{}"
    if len(payload) > MAX_SYNC_PAYLOAD_BYTES:
        raise RequestTooLargeException(
            f"Request must be smaller than {MAX_SYNC_PAYLOAD_BYTES} bytes for the "
            "InvokeFunction operation"
        )
    try:
        json.loads(payload.decode("utf-8"))
    except ValueError as exc:
        raise InvalidRequestContentException(
            "Could not parse request body into json: Could not parse payload into json: "
            f"{_parse_error_detail(exc, payload)}"
        ) from None
    return payload
