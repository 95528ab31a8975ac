"""The definition of a Lambda function, validated as AWS validates it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import attrs

from .arns import validate_function_name
from .errors import InvalidParameterValueException, ValidationException
from .runtimes import lookup_runtime

#: Variables the Lambda service sets itself; a function may not define them.
RESERVED_ENVIRONMENT_VARIABLES = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)

#: AWS measures the compact JSON form of the variables against this many bytes.
MAX_ENVIRONMENT_BYTES = 4096

_ROLE_ARN = re.compile(r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")
_HANDLER = re.compile(r"[^\s]+")
_ENV_KEY = re.compile(r"[a-zA-Z]([a-zA-Z0-9_])*")


def _validation_error(value: object, member: str, constraint: str) -> ValidationException:
    return ValidationException(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: {constraint}"
    )


def check_environment(variables: Mapping[str, str]) -> None:
    """Raise AWS's error if `variables` use reserved names or exceed 4 KB."""
    for key, value in variables.items():
        if not isinstance(key, str) or not _ENV_KEY.fullmatch(key):
            raise _validation_error(
                key,
                "environment.variables",
                "Map keys must satisfy constraint: "
                "[Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]",
            )
        if not isinstance(value, str):
            raise InvalidParameterValueException(
                f"Environment variable {key} must be a string, got {value!r}"
            )
    reserved = sorted(RESERVED_ENVIRONMENT_VARIABLES.intersection(variables))
    if reserved:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the "
            "environment variables you have provided contains reserved keys that are "
            "currently not supported for modification. Reserved keys used in this "
            f"request: {', '.join(reserved)}"
        )
    measured = json.dumps(dict(variables), separators=(",", ":"), ensure_ascii=False)
    if len(measured.encode()) > MAX_ENVIRONMENT_BYTES:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the "
            "environment variables you have provided exceeded the 4KB limit. "
            f"String measured: {measured}"
        )


def _check_role(instance: Function, attribute: attrs.Attribute[str], value: str) -> None:
    if not _ROLE_ARN.fullmatch(value):
        raise _validation_error(
            value,
            "role",
            "Member must satisfy regular expression pattern: "
            r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+",
        )


def _check_range(low: int, high: int, member: str):  # type: ignore[no-untyped-def]
    def check(instance: Function, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _validation_error(
                value, member, f"Member must have value between {low} and {high}, inclusive"
            )

    return check


@attrs.frozen
class ImageConfig:
    """Overrides of an image function's ENTRYPOINT, CMD and WORKDIR."""

    entry_point: tuple[str, ...] | None = attrs.field(
        default=None, converter=lambda value: None if value is None else tuple(value)
    )
    command: tuple[str, ...] | None = attrs.field(
        default=None, converter=lambda value: None if value is None else tuple(value)
    )
    working_directory: str | None = None


@attrs.frozen
class Function:
    """A function's configuration and its deployment package.

    Creating one validates every field the way CreateFunction does, so an invalid
    definition never reaches the simulator. A zip function has a runtime, a
    handler and `code`, the zip archive's bytes. An image function
    (`package_type="Image"`) has an `image_uri` and optionally an `image_config`
    instead.
    """

    name: str = attrs.field()
    runtime: str | None = attrs.field()
    handler: str | None = attrs.field()
    role: str = attrs.field(validator=_check_role)
    code: bytes = attrs.field(default=b"", repr=False, kw_only=True)
    package_type: str = attrs.field(default="Zip", kw_only=True)
    #: The ECR image URI as given, for image functions.
    image_uri: str | None = attrs.field(default=None, kw_only=True)
    image_config: ImageConfig | None = attrs.field(default=None, kw_only=True)
    #: Layer version ARNs, in the order their contents are merged at `/opt`.
    layers: tuple[str, ...] = attrs.field(default=(), kw_only=True, converter=tuple)
    timeout: int = attrs.field(default=3, kw_only=True, validator=_check_range(1, 900, "timeout"))
    memory_size: int = attrs.field(
        default=128, kw_only=True, validator=_check_range(128, 10240, "memorySize")
    )
    environment: Mapping[str, str] = attrs.field(
        factory=dict, kw_only=True, converter=lambda value: dict(value or {})
    )
    description: str = attrs.field(default="", kw_only=True)
    architectures: tuple[str, ...] = attrs.field(default=("x86_64",), kw_only=True, converter=tuple)
    #: ARN of the SQS queue or SNS topic for events that failed asynchronously.
    dead_letter_target: str | None = attrs.field(default=None, kw_only=True)
    ephemeral_storage: int = attrs.field(
        default=512, kw_only=True, validator=_check_range(512, 10240, "ephemeralStorage.size")
    )

    @name.validator
    def _check_name(self, attribute: attrs.Attribute[str], value: str) -> None:
        validate_function_name(value)

    @package_type.validator
    def _check_package_type(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in ("Zip", "Image"):
            raise _validation_error(
                value, "packageType", "Member must satisfy enum value set: [Image, Zip]"
            )
        if value == "Zip" and (not self.runtime or not self.handler):
            raise InvalidParameterValueException(
                "Runtime and Handler are mandatory parameters for functions created with "
                "deployment packages."
            )
        if value == "Image" and not self.image_uri:
            raise InvalidParameterValueException(
                "ImageUri is a mandatory parameter for functions created with PackageType Image."
            )

    @runtime.validator
    def _check_runtime(self, attribute: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None:
            lookup_runtime(value)

    @handler.validator
    def _check_handler(self, attribute: attrs.Attribute[str | None], value: str | None) -> None:
        if value is None:
            return
        if not value or len(value) > 128 or not _HANDLER.fullmatch(value):
            raise _validation_error(
                value, "handler", r"Member must satisfy regular expression pattern: [^\s]+"
            )

    @environment.validator
    def _check_environment(
        self, attribute: attrs.Attribute[Mapping[str, str]], value: Mapping[str, str]
    ) -> None:
        check_environment(value)

    @description.validator
    def _check_description(self, attribute: attrs.Attribute[str], value: str) -> None:
        if len(value) > 256:
            raise _validation_error(
                value, "description", "Member must have length less than or equal to 256"
            )

    @dead_letter_target.validator
    def _check_dead_letter_target(
        self, attribute: attrs.Attribute[str | None], value: str | None
    ) -> None:
        if value and not re.fullmatch(r"arn:aws[a-zA-Z-]*:(sqs|sns):[a-z0-9-]+:\d{12}:.+", value):
            raise InvalidParameterValueException(
                f"The dead-letter target {value} is invalid: give the ARN of an SQS queue or "
                "an SNS topic."
            )

    @architectures.validator
    def _check_architectures(
        self, attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]
    ) -> None:
        if len(value) != 1 or value[0] not in ("x86_64", "arm64"):
            raise _validation_error(
                list(value),
                "architectures",
                "Member must have length less than or equal to 1, and each member must "
                "satisfy enum value set: [x86_64, arm64]",
            )
