"""Errors that carry their AWS mapping.

Every error a caller of the Lambda API can cause derives from `LambdaError`, which
carries the AWS error type, the HTTP status and the key AWS uses for the message in
the JSON body. The server shell turns them into responses without knowing any of
the cases. Function errors (a raising handler, a timeout) are not exceptions: they
are results, see `lambdasim.invoke.InvocationResult`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LambdaError(Exception):
    """An error the Lambda API reports to its caller."""

    error_type: ClassVar[str] = "ServiceException"
    status: ClassVar[int] = 500
    #: AWS writes `Message` in ResourceNotFoundException bodies and `message` elsewhere.
    message_key: ClassVar[str] = "message"
    #: `Type` in the body: "User" for caller errors, "Service" for ours.
    fault: ClassVar[str] = "User"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def to_body(self) -> dict[str, Any]:
        """Return the JSON body AWS sends for this error."""
        body: dict[str, Any] = {"Type": self.fault, self.message_key: self.message}
        body.update(self.fields)
        return body


class ResourceNotFoundException(LambdaError):
    error_type = "ResourceNotFoundException"
    status = 404
    message_key = "Message"


class InvalidParameterValueException(LambdaError):
    error_type = "InvalidParameterValueException"
    status = 400


class ValidationException(LambdaError):
    error_type = "ValidationException"
    status = 400


class InvalidRequestContentException(LambdaError):
    error_type = "InvalidRequestContentException"
    status = 400


class RequestTooLargeException(LambdaError):
    error_type = "RequestTooLargeException"
    status = 413


class ResourceConflictException(LambdaError):
    error_type = "ResourceConflictException"
    status = 409


class PreconditionFailedException(LambdaError):
    """A request's `RevisionId` differs from the resource's current one."""

    error_type = "PreconditionFailedException"
    status = 412


class PolicyLengthExceededException(LambdaError):
    error_type = "PolicyLengthExceededException"
    status = 400


class ResourceNotReadyException(LambdaError):
    error_type = "ResourceNotReadyException"
    status = 502


class ResourceInUseException(LambdaError):
    """A change to a resource that another operation is still changing."""

    error_type = "ResourceInUseException"
    status = 400


class TooManyRequestsException(LambdaError):
    error_type = "TooManyRequestsException"
    status = 429


class UnsupportedOperationException(LambdaError):
    """An operation of the Lambda API that lambdasim does not implement yet."""

    error_type = "UnsupportedOperationException"
    status = 400


class ServiceException(LambdaError):
    """A failure inside lambdasim or the container engine, not the caller's fault."""

    error_type = "ServiceException"
    status = 500
    fault = "Service"
    message_key = "Message"


class ImageNotAvailableError(ServiceException):
    """The runtime image is neither present in the engine nor pullable."""
