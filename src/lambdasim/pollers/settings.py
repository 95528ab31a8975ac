"""The settings of an event source mapping: request members, defaults and validation.

Requests use the member names of the Lambda API (`BatchSize`,
`MaximumBatchingWindowInSeconds`, ...), as boto3 and the wire do. Errors carry
AWS's types: a value outside the API model (wrong type, enum or range) is a
`ValidationException`, and a value the model allows but the source does not is an
`InvalidParameterValueException`.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Mapping
from typing import Any

import attrs

from ..errors import InvalidParameterValueException, ValidationException
from .filters import FilterCriteria

STARTING_POSITIONS = ("LATEST", "AT_TIMESTAMP", "TRIM_HORIZON")
REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"
#: Largest SQS batch that needs no batching window (one ReceiveMessage call).
SQS_BATCH_WITHOUT_WINDOW = 10


class SourceKind(enum.Enum):
    """The services an event source mapping can read."""

    SQS = "sqs"
    KINESIS = "kinesis"
    DYNAMODB_STREAMS = "dynamodb"

    @property
    def is_stream(self) -> bool:
        return self is not SourceKind.SQS

    @property
    def data_key(self) -> str:
        """The record field that event filtering decodes."""
        return {"sqs": "body", "kinesis": "data", "dynamodb": "dynamodb"}[self.value]


_SOURCE_ARNS = {
    SourceKind.SQS: re.compile(
        r"arn:aws[a-zA-Z-]*:sqs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<name>[\w.-]+)"
    ),
    SourceKind.KINESIS: re.compile(
        r"arn:aws[a-zA-Z-]*:kinesis:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
        r"stream/(?P<name>[\w.-]+)"
    ),
    SourceKind.DYNAMODB_STREAMS: re.compile(
        r"arn:aws[a-zA-Z-]*:dynamodb:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
        r"table/(?P<name>[\w.-]+)/stream/(?P<label>[^/]+)"
    ),
}


@attrs.frozen
class EventSource:
    """A queue or stream named by its ARN."""

    kind: SourceKind
    arn: str
    region: str
    account_id: str
    #: The queue name, the Kinesis stream name, or the DynamoDB table name.
    name: str

    @classmethod
    def parse(cls, arn: Any) -> EventSource:
        """Parse an `EventSourceArn`; raise InvalidParameterValueException for other services."""
        if not isinstance(arn, str):
            raise InvalidParameterValueException(f"Unrecognized event source, got {arn!r}.")
        for kind, pattern in _SOURCE_ARNS.items():
            match = pattern.fullmatch(arn)
            if match is not None:
                return cls(kind, arn, match["region"], match["account"], match["name"])
        raise InvalidParameterValueException(
            f"Unrecognized event source: {arn}. lambdasim reads SQS queues, Kinesis streams "
            "and DynamoDB streams."
        )


def _member(key: str) -> str:
    return key[0].lower() + key[1:]


def _validation_error(key: str, value: Any, constraint: str) -> ValidationException:
    shown = "null" if value is None else f"'{value}'"
    return ValidationException(
        f"1 validation error detected: Value {shown} at '{_member(key)}' failed to satisfy "
        f"constraint: {constraint}"
    )


def _integer(request: Mapping[str, Any], key: str, minimum: int, maximum: int) -> int | None:
    value = request.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _validation_error(key, value, "Member must be an integer")
    if value < minimum:
        raise _validation_error(
            key, value, f"Member must have value greater than or equal to {minimum}"
        )
    if value > maximum:
        raise _validation_error(
            key, value, f"Member must have value less than or equal to {maximum}"
        )
    return value


def _boolean(request: Mapping[str, Any], key: str) -> bool | None:
    value = request.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _validation_error(key, value, "Member must be a boolean")
    return value


def _timestamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise _validation_error("StartingPositionTimestamp", value, "Member must be a timestamp")


def _function_response_types(request: Mapping[str, Any]) -> tuple[str, ...] | None:
    value = request.get("FunctionResponseTypes")
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > 1
        or any(item != REPORT_BATCH_ITEM_FAILURES for item in value)
    ):
        raise _validation_error(
            "FunctionResponseTypes",
            value,
            "Member must satisfy constraint: [Member must satisfy enum value set: "
            f"[{REPORT_BATCH_ITEM_FAILURES}]]",
        )
    return tuple(value)


def _maximum_concurrency(request: Mapping[str, Any]) -> int | None:
    scaling = request.get("ScalingConfig")
    if scaling is None:
        return None
    if not isinstance(scaling, dict):
        raise _validation_error("ScalingConfig", scaling, "Member must be a structure")
    return _integer(scaling, "MaximumConcurrency", 2, 1000)


def _on_failure_destination(request: Mapping[str, Any]) -> str | None:
    config = request.get("DestinationConfig")
    if config is None:
        return None
    if not isinstance(config, dict):
        raise _validation_error("DestinationConfig", config, "Member must be a structure")
    on_failure = config.get("OnFailure") or {}
    destination = on_failure.get("Destination") if isinstance(on_failure, dict) else None
    if destination in (None, ""):
        return ""
    if not isinstance(destination, str) or not re.fullmatch(
        r"arn:aws[a-zA-Z-]*:(sqs|sns):[a-z0-9-]+:\d{12}:[\w.-]+", destination
    ):
        raise InvalidParameterValueException(
            f"The provided destination config DestinationConfig(onSuccess=null, "
            f"onFailure=OnFailure(destination={destination})) is invalid. lambdasim sends "
            "records of failed batches to SQS queues and SNS topics."
        )
    return destination


#: Request members that only stream sources accept.
_STREAM_ONLY = (
    "StartingPosition",
    "StartingPositionTimestamp",
    "ParallelizationFactor",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
    "BisectBatchOnFunctionError",
    "TumblingWindowInSeconds",
    "DestinationConfig",
)


@attrs.frozen
class MappingSettings:
    """The complete, validated settings of one mapping, defaults filled in."""

    kind: SourceKind
    enabled: bool = True
    batch_size: int = 10
    maximum_batching_window: int = 0
    function_response_types: tuple[str, ...] = ()
    filter_criteria: FilterCriteria | None = None
    #: `ScalingConfig.MaximumConcurrency` (SQS); None leaves scaling to lambdasim.
    maximum_concurrency: int | None = None
    starting_position: str | None = None
    #: Seconds since the epoch, for `AT_TIMESTAMP`.
    starting_position_timestamp: float | None = None
    parallelization_factor: int = 1
    #: -1 retries until the records expire.
    maximum_retry_attempts: int = -1
    #: -1 keeps records until the stream's retention ends them.
    maximum_record_age: int = -1
    bisect_batch_on_function_error: bool = False
    tumbling_window: int = 0
    #: The ARN of the SQS queue or SNS topic for failed batches; "" when unset.
    on_failure_destination: str = ""

    @property
    def reports_batch_item_failures(self) -> bool:
        return REPORT_BATCH_ITEM_FAILURES in self.function_response_types

    @classmethod
    def from_request(
        cls, kind: SourceKind, request: Mapping[str, Any], current: MappingSettings | None = None
    ) -> MappingSettings:
        """Validate the settings members of a create or update request.

        `current` is the mapping's settings for an update, whose unnamed members
        keep their values; a create starts from AWS's defaults for `kind`.
        """
        changes = _parse_members(kind, request, creating=current is None)
        if current is None:
            base = cls(kind=kind, batch_size=10 if kind is SourceKind.SQS else 100)
        else:
            base = current
        settings = attrs.evolve(base, **changes)
        settings._check(creating=current is None, request=request)
        return settings

    def _check(self, *, creating: bool, request: Mapping[str, Any]) -> None:
        if self.kind is SourceKind.SQS:
            if self.batch_size > SQS_BATCH_WITHOUT_WINDOW and self.maximum_batching_window == 0:
                raise InvalidParameterValueException(
                    "Maximum batch window in seconds must be greater than 0 if maximum batch "
                    "size is greater than 10"
                )
            return
        if creating and self.starting_position is None:
            raise InvalidParameterValueException(
                "1 validation error detected: Value null at 'startingPosition' failed to "
                "satisfy constraint: Member must not be null."
            )
        if self.starting_position == "AT_TIMESTAMP":
            if self.kind is SourceKind.DYNAMODB_STREAMS:
                raise InvalidParameterValueException(
                    "Unsupported starting position for DynamoDB Streams: AT_TIMESTAMP. Use "
                    "LATEST or TRIM_HORIZON."
                )
            if self.starting_position_timestamp is None:
                raise InvalidParameterValueException(
                    "StartingPositionTimestamp must be set when StartingPosition is AT_TIMESTAMP."
                )
        if 0 <= self.maximum_record_age < 60:
            raise InvalidParameterValueException(
                f"MaximumRecordAgeInSeconds must be -1 or between 60 and 604800, got "
                f"{self.maximum_record_age}."
            )


def _parse_members(
    kind: SourceKind, request: Mapping[str, Any], *, creating: bool
) -> dict[str, Any]:
    if kind is SourceKind.SQS:
        for key in _STREAM_ONLY:
            if request.get(key) is not None:
                raise InvalidParameterValueException(
                    f"Unsupported {key} parameter for the given event source mapping type: "
                    "SQS queues do not accept it."
                )
    elif request.get("ScalingConfig") is not None:
        raise InvalidParameterValueException(
            "Unsupported ScalingConfig parameter for the given event source mapping type: "
            "only SQS queues accept it."
        )
    if not creating:
        for key in ("StartingPosition", "StartingPositionTimestamp"):
            if request.get(key) is not None:
                raise InvalidParameterValueException(
                    f"{key} cannot be changed; delete the mapping and create a new one."
                )

    position = request.get("StartingPosition")
    if position is not None and position not in STARTING_POSITIONS:
        raise _validation_error(
            "StartingPosition",
            position,
            f"Member must satisfy enum value set: [{', '.join(STARTING_POSITIONS)}]",
        )
    candidates: dict[str, Any] = {
        "enabled": _boolean(request, "Enabled"),
        "batch_size": _integer(request, "BatchSize", 1, 10000),
        "maximum_batching_window": _integer(request, "MaximumBatchingWindowInSeconds", 0, 300),
        "function_response_types": _function_response_types(request),
        "starting_position": position,
        "starting_position_timestamp": _timestamp(request.get("StartingPositionTimestamp")),
        "parallelization_factor": _integer(request, "ParallelizationFactor", 1, 10),
        "maximum_retry_attempts": _integer(request, "MaximumRetryAttempts", -1, 10000),
        "maximum_record_age": _integer(request, "MaximumRecordAgeInSeconds", -1, 604800),
        "bisect_batch_on_function_error": _boolean(request, "BisectBatchOnFunctionError"),
        "tumbling_window": _integer(request, "TumblingWindowInSeconds", 0, 900),
        "on_failure_destination": _on_failure_destination(request),
    }
    changes = {field: value for field, value in candidates.items() if value is not None}
    if request.get("ScalingConfig") is not None:
        # A ScalingConfig without MaximumConcurrency removes the maximum.
        changes["maximum_concurrency"] = _maximum_concurrency(request)
    if "FilterCriteria" in request:
        data_key = kind.data_key if kind.is_stream else None
        # An empty FilterCriteria in an update removes the filters.
        changes["filter_criteria"] = FilterCriteria.parse(
            request["FilterCriteria"], data_key=data_key
        )
    return changes
