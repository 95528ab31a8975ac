"""Event source mapping parts that need no container: filters, records, settings, moto fixes."""

from __future__ import annotations

import base64
import datetime
import json
import math
from types import SimpleNamespace
from typing import Any

import pytest
import trio

from lambdasim.errors import (
    InvalidParameterValueException,
    TooManyRequestsException,
    ValidationException,
)
from lambdasim.pollers.filters import FilterCriteria, pattern_matches
from lambdasim.pollers.poller import Poller, failed_item_ids
from lambdasim.pollers.settings import EventSource, MappingSettings, SourceKind
from lambdasim.pollers.sqs import filter_view
from lambdasim.pollers.streams import ShardCheckpoint
from lambdasim.services import configure_moto_environment

ACCOUNT, REGION = "000000000000", "us-east-1"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders"
STREAM_ARN = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/clicks"


@pytest.fixture(scope="module")
def moto_patched() -> None:
    configure_moto_environment(ACCOUNT)
    from lambdasim.moto_patches import apply_moto_patches

    apply_moto_patches()


# Filters ------------------------------------------------------------------------------

EVENT = {
    "name": "Alice",
    "city": "Seattle",
    "count": 300,
    "ratio": 0.5,
    "flag": True,
    "nothing": None,
    "tags": ["red", "blue"],
    "nested": {"inner": {"id": "x-1"}},
}


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ({"name": ["Alice"]}, True),
        ({"name": ["Bob", "Alice"]}, True),
        ({"name": ["alice"]}, False),
        ({"name": [{"equals-ignore-case": "alice"}]}, True),
        ({"city": [{"prefix": "Sea"}]}, True),
        ({"city": [{"suffix": "tle"}]}, True),
        ({"city": [{"prefix": "sea"}]}, False),
        ({"count": [300]}, True),
        ({"count": [300.0]}, False),
        ({"count": ["300"]}, False),
        ({"count": [{"numeric": [">", 100, "<=", 300]}]}, True),
        ({"count": [{"numeric": ["<", 300]}]}, False),
        ({"ratio": [{"numeric": ["=", 0.5]}]}, True),
        ({"name": [{"numeric": [">", 0]}]}, False),
        ({"flag": [True]}, True),
        ({"flag": [1]}, False),
        ({"nothing": [None]}, True),
        ({"missing": [None]}, False),
        ({"name": [{"exists": True}]}, True),
        ({"missing": [{"exists": False}]}, True),
        ({"name": [{"exists": False}]}, False),
        ({"name": [{"anything-but": "Bob"}]}, True),
        ({"name": [{"anything-but": ["Alice", "Bob"]}]}, False),
        ({"name": [{"anything-but": {"prefix": "Al"}}]}, False),
        ({"missing": [{"anything-but": "Bob"}]}, False),
        ({"tags": ["blue"]}, True),
        ({"tags": ["green"]}, False),
        ({"nested": {"inner": {"id": [{"prefix": "x-"}]}}}, True),
        ({"nested": {"inner": {"id": ["y"]}}}, False),
        ({"name": ["Alice"], "city": ["Portland"]}, False),
        ({"absent": {"deeper": [{"exists": False}]}}, True),
        ({"city": {"inner": ["x"]}}, False),
    ],
)
def test_pattern_rules(pattern: dict[str, Any], matches: bool) -> None:
    assert pattern_matches(pattern, EVENT) is matches


@pytest.mark.parametrize(
    "filters",
    [
        [{"Pattern": "not json"}],
        [{"Pattern": "[1, 2]"}],
        [{"Pattern": "{}"}],
        [{"Pattern": '{"a": []}'}],
        [{"Pattern": '{"a": "x"}'}],
        [{"Pattern": '{"a": [{"wildcard": "x*"}]}'}],
        [{"Pattern": '{"a": [{"numeric": [">"]}]}'}],
        [{"Pattern": '{"a": [{"exists": "yes"}]}'}],
        [{"Pattern": '{"a": [{"prefix": 1}]}'}],
        [{"NotPattern": "{}"}],
    ],
)
def test_invalid_filters_rejected(filters: list[dict[str, Any]]) -> None:
    with pytest.raises(InvalidParameterValueException, match="Invalid filter pattern definition"):
        FilterCriteria.parse({"Filters": filters})


def test_filter_limits_and_data_key() -> None:
    six = [{"Pattern": '{"a": [1]}'}] * 6

    with pytest.raises(InvalidParameterValueException, match="more than the maximum of 5"):
        FilterCriteria.parse({"Filters": six})
    with pytest.raises(InvalidParameterValueException, match="'data' must be a JSON object"):
        FilterCriteria.parse({"Filters": [{"Pattern": '{"data": ["x"]}'}]}, data_key="data")
    assert FilterCriteria.parse({"Filters": []}) is None
    assert FilterCriteria.parse({}) is None


def test_sqs_body_format_must_match_pattern() -> None:
    json_criteria = FilterCriteria.parse({"Filters": [{"Pattern": '{"body": {"a": [1]}}'}]})
    text_criteria = FilterCriteria.parse({"Filters": [{"Pattern": '{"body": ["a"]}'}]})
    assert json_criteria is not None and text_criteria is not None

    def view(body: str) -> dict[str, Any]:
        return filter_view({"body": body, "messageId": "m"})

    assert json_criteria.matches(view('{"a": 1}'))
    assert not json_criteria.matches(view("a"))
    assert text_criteria.matches(view("a"))
    assert not text_criteria.matches(view('{"a": 1}'))
    assert json_criteria.to_request() == {"Filters": [{"Pattern": '{"body": {"a": [1]}}'}]}


# Batch item failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"null", set()),
        (b'""', set()),
        (b"", set()),
        (b"{}", set()),
        (b'{"batchItemFailures": []}', set()),
        (b'{"batchItemFailures": null}', set()),
        (b'{"batchItemFailures": [{"itemIdentifier": "m2"}]}', {"m2"}),
        (
            b'{"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}]}',
            {"m1", "m3"},
        ),
        (b'{"batchItemFailures": [{"itemIdentifier": ""}]}', None),
        (b'{"batchItemFailures": [{"itemIdentifier": null}]}', None),
        (b'{"batchItemFailures": [{"foo": "x"}]}', None),
        (b'{"batchItemFailures": [{"itemIdentifier": "m9"}]}', None),
        (b'{"batchItemFailures": "m2"}', None),
        (b'"done"', None),
        (b"[1]", None),
    ],
)
def test_batch_item_failure_responses(payload: bytes, expected: set[str] | None) -> None:
    assert failed_item_ids(payload, {"m1", "m2", "m3"}) == expected


# Settings ------------------------------------------------------------------------------


def test_settings_defaults_per_source() -> None:
    sqs = MappingSettings.from_request(SourceKind.SQS, {})
    stream = MappingSettings.from_request(SourceKind.KINESIS, {"StartingPosition": "LATEST"})

    assert (sqs.batch_size, sqs.maximum_batching_window, sqs.function_response_types) == (10, 0, ())
    assert stream.batch_size == 100
    assert stream.maximum_retry_attempts == -1
    assert stream.maximum_record_age == -1
    assert stream.parallelization_factor == 1
    assert stream.bisect_batch_on_function_error is False
    assert stream.on_failure_destination == ""


def test_settings_update_keeps_unnamed_members() -> None:
    current = MappingSettings.from_request(
        SourceKind.KINESIS, {"StartingPosition": "TRIM_HORIZON", "BatchSize": 7}
    )

    updated = MappingSettings.from_request(SourceKind.KINESIS, {"MaximumRetryAttempts": 2}, current)

    assert updated.batch_size == 7
    assert updated.maximum_retry_attempts == 2
    assert updated.starting_position == "TRIM_HORIZON"


@pytest.mark.parametrize(
    ("kind", "request_members", "error", "message"),
    [
        (
            SourceKind.KINESIS,
            {},
            InvalidParameterValueException,
            "Value null at 'startingPosition'",
        ),
        (SourceKind.KINESIS, {"StartingPosition": "NOW"}, ValidationException, "enum value set"),
        (
            SourceKind.DYNAMODB_STREAMS,
            {"StartingPosition": "AT_TIMESTAMP"},
            InvalidParameterValueException,
            "AT_TIMESTAMP",
        ),
        (
            SourceKind.KINESIS,
            {"StartingPosition": "AT_TIMESTAMP"},
            InvalidParameterValueException,
            "StartingPositionTimestamp",
        ),
        (
            SourceKind.KINESIS,
            {"StartingPosition": "LATEST", "MaximumRecordAgeInSeconds": 30},
            InvalidParameterValueException,
            "between 60 and 604800",
        ),
        (
            SourceKind.KINESIS,
            {"StartingPosition": "LATEST", "ParallelizationFactor": 11},
            ValidationException,
            "less than or equal to 10",
        ),
        (
            SourceKind.KINESIS,
            {"StartingPosition": "LATEST", "ScalingConfig": {"MaximumConcurrency": 5}},
            InvalidParameterValueException,
            "ScalingConfig",
        ),
        (
            SourceKind.SQS,
            {"MaximumRetryAttempts": 1},
            InvalidParameterValueException,
            "MaximumRetryAttempts",
        ),
        (
            SourceKind.SQS,
            {"ScalingConfig": {"MaximumConcurrency": 1}},
            ValidationException,
            "greater than or equal to 2",
        ),
        (
            SourceKind.SQS,
            {"FunctionResponseTypes": ["Other"]},
            ValidationException,
            "ReportBatchItemFailures",
        ),
        (SourceKind.SQS, {"BatchSize": "10"}, ValidationException, "must be an integer"),
        (
            SourceKind.KINESIS,
            {
                "StartingPosition": "LATEST",
                "DestinationConfig": {"OnFailure": {"Destination": "arn:aws:s3:::bucket"}},
            },
            InvalidParameterValueException,
            "destination",
        ),
    ],
)
def test_settings_errors(
    kind: SourceKind, request_members: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        MappingSettings.from_request(kind, request_members)


def test_event_source_arns() -> None:
    table = EventSource.parse(
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/t/stream/2024-01-01T00:00:00.000"
    )

    assert EventSource.parse(QUEUE_ARN).kind is SourceKind.SQS
    assert EventSource.parse(STREAM_ARN).name == "clicks"
    assert (table.kind, table.name) == (SourceKind.DYNAMODB_STREAMS, "t")
    with pytest.raises(InvalidParameterValueException, match="Unrecognized event source"):
        EventSource.parse("arn:aws:s3:::bucket")


# Checkpoints ---------------------------------------------------------------------------


def test_checkpoint_waits_for_earlier_records() -> None:
    checkpoint = ShardCheckpoint(0)
    for sequence in (1, 2, 3, 4):
        checkpoint.dispatch(sequence)

    checkpoint.complete(2)
    checkpoint.complete(4)
    assert checkpoint.position == 0
    checkpoint.complete(1)
    assert checkpoint.position == 2
    checkpoint.complete(3)
    assert checkpoint.position == 4


# Records -------------------------------------------------------------------------------


def test_sqs_record_shape(moto_patched: None) -> None:
    from moto.sqs.models import sqs_backends

    from lambdasim.pollers.sqs import sqs_record

    backend = sqs_backends[ACCOUNT][REGION]
    backend.create_queue("record-shape")
    backend.send_message(
        "record-shape",
        "hello",
        message_attributes={
            "Color": {"DataType": "String", "StringValue": "red"},
            "Blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    backend.send_message("record-shape", "plain")
    first, second = backend.receive_message("record-shape", 10, 0, 30, ["All"])
    source = EventSource.parse(f"arn:aws:sqs:{REGION}:{ACCOUNT}:record-shape")

    record = sqs_record(first, source)
    plain = sqs_record(second, source)

    assert list(record) == [
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfMessageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    ]
    assert record["messageAttributes"] == {
        "Color": {
            "stringValue": "red",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        },
        "Blob": {
            "binaryValue": "AAE=",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
    }
    assert record["md5OfMessageAttributes"] == first.attribute_md5
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert all(isinstance(value, str) for value in record["attributes"].values())
    assert plain["messageAttributes"] == {}
    assert plain["md5OfMessageAttributes"] is None
    assert plain["eventSourceARN"] == source.arn


def test_kinesis_record_and_filter_view(moto_patched: None) -> None:
    from moto.kinesis.models import Record

    from lambdasim.pollers.kinesis import kinesis_filter_view, kinesis_record

    moto_record = Record("pk-1", b'{"level": "error"}', 7, "")
    moto_record.created_at = datetime.datetime(2024, 1, 2, 3, 4, 5, 678901)
    source = EventSource.parse(STREAM_ARN)

    record = kinesis_record(
        source, "shardId-000000000000", moto_record, "arn:aws:iam::000000000000:role/r"
    )
    view = kinesis_filter_view(record)

    assert record["kinesis"]["data"] == base64.b64encode(b'{"level": "error"}').decode()
    assert record["kinesis"]["approximateArrivalTimestamp"] == 1704164645.679
    assert record["eventID"] == "shardId-000000000000:7"
    assert view["partitionKey"] == "pk-1"
    assert view["data"] == {"level": "error"}
    assert view["eventSourceARN"] == STREAM_ARN


# moto fixes ----------------------------------------------------------------------------


class _CountingList(list):  # type: ignore[type-arg]
    """A list that counts how often it is iterated."""

    iterations = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        type(self).iterations += 1
        return super().__iter__()


def test_send_cost_does_not_grow_with_depth(moto_patched: None) -> None:
    from moto.sqs.models import sqs_backends

    backend = sqs_backends[ACCOUNT][REGION]
    queue = backend.create_queue("deep-queue")
    for index in range(1000):
        backend.send_message("deep-queue", f"filler {index}")
    queue._messages = _CountingList(queue._messages)
    _CountingList.iterations = 0

    for index in range(50):
        backend.send_message("deep-queue", f"more {index}")
    messages = backend.receive_message("deep-queue", 10, 0, 30)
    for message in messages:
        backend.delete_message("deep-queue", message.receipt_handle)

    # Sending scans no messages; the receive stops after the ten it returns.
    assert _CountingList.iterations == 1
    assert len(queue._messages) == 1040
    assert backend.get_queue_attributes("deep-queue", ["ApproximateNumberOfMessages"]) == {
        "ApproximateNumberOfMessages": 1040
    }


def test_patched_queue_keeps_moto_semantics(moto_patched: None) -> None:
    from moto.sqs.exceptions import ReceiptHandleIsInvalid
    from moto.sqs.models import sqs_backends

    backend = sqs_backends[ACCOUNT][REGION]
    dlq = backend.create_queue("semantics-dlq")
    redrive = json.dumps({"deadLetterTargetArn": dlq.queue_arn, "maxReceiveCount": 1})
    backend.create_queue("semantics", RedrivePolicy=redrive, VisibilityTimeout=0)
    backend.send_message("semantics", "kept")
    backend.send_message("semantics", "deleted")

    first = backend.receive_message("semantics", 10, 0, 0)
    handles = {message.body: message.receipt_handle for message in first}
    backend.delete_message("semantics", handles["deleted"])
    backend.delete_message("semantics", handles["deleted"])
    # The second receive moves "kept", received once already, to the dead-letter queue.
    assert backend.receive_message("semantics", 10, 0, 0) == []
    with pytest.raises(ReceiptHandleIsInvalid):
        backend.delete_message("semantics", handles["kept"])
    with pytest.raises(ReceiptHandleIsInvalid):
        backend.delete_message("semantics", "no-such-handle")

    attributes = backend.get_queue_attributes("semantics", ["All"])
    assert isinstance(attributes, dict)
    assert attributes["RedrivePolicy"] == json.dumps(
        {"deadLetterTargetArn": dlq.queue_arn, "maxReceiveCount": 1}
    )
    assert attributes["ApproximateNumberOfMessages"] == 0
    assert attributes["SqsManagedSseEnabled"] == "true"
    assert [m.body for m in dlq._messages] == ["kept"]


def test_kinesis_positions(moto_patched: None) -> None:
    from moto.kinesis.models import kinesis_backends

    from lambdasim.pollers.kinesis import KinesisReader

    backend = kinesis_backends[ACCOUNT][REGION]
    stream = backend.create_stream("positions", 1)
    shard = next(iter(stream.shards.values()))
    for index in range(4):
        stream.put_record(f"k{index}", "", f"r{index}".encode())
    for sequence, record in shard.records.items():
        record.created_at = datetime.datetime(2024, 1, 1, 0, 0, sequence)
    reader = KinesisReader(EventSource.parse(stream.arn))
    moment = datetime.datetime(2024, 1, 1, 0, 0, 3, tzinfo=datetime.UTC).timestamp()

    assert reader.trim_horizon(shard.shard_id) == 0
    assert reader.latest(shard.shard_id) == 4
    assert reader.at_timestamp(shard.shard_id, moment) == 2
    records, closed = reader.read(shard.shard_id, 2, 10, "role")
    assert [r.sequence for r in records] == [3, 4]
    assert closed is False
    assert reader.read(shard.shard_id, 4, 10, "role") == ([], False)


# Invoke retries -----------------------------------------------------------------------


class ThrottledSimulator:
    """Throttles every invoke until trio time `lifted_at`, then returns "result"."""

    def __init__(self, lifted_at: float) -> None:
        self.lifted_at = lifted_at
        self.tries: list[float] = []

    async def invoke(self, function_arn: str, payload: bytes) -> str:
        await trio.lowlevel.checkpoint()
        self.tries.append(trio.current_time())
        if trio.current_time() < self.lifted_at:
            raise TooManyRequestsException(
                "Rate Exceeded.", Reason="ReservedFunctionConcurrentInvocationLimitExceeded"
            )
        return "result"


def _poller(simulator: ThrottledSimulator) -> Poller:
    mapping = SimpleNamespace(
        uuid="mapping-1",
        function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn",
        last_processing_result=None,
    )
    return Poller(mapping, simulator)  # type: ignore[arg-type]


async def test_throttle_lifted_before_give_up(autojump_clock: Any) -> None:
    start = trio.current_time()
    simulator = ThrottledSimulator(lifted_at=start + 9.5)

    result = await _poller(simulator).invoke(b"{}", give_up_at=start + 10.0)

    # Pauses of 0.1, 0.2, 0.4, 0.8, 1.6 and then 2 s reach 9.1 s. The last pause is
    # cut to end at the give-up time, where the lifted limit lets the try through.
    assert result == "result"
    assert trio.current_time() - start == pytest.approx(10.0)
    assert len(simulator.tries) == 10


async def test_throttle_gives_up_at_deadline(autojump_clock: Any) -> None:
    start = trio.current_time()
    simulator = ThrottledSimulator(lifted_at=math.inf)

    result = await _poller(simulator).invoke(b"{}", give_up_at=start + 10.0)

    assert result is None
    assert simulator.tries[-1] - start == pytest.approx(10.0)
    assert trio.current_time() - start == pytest.approx(10.0)
