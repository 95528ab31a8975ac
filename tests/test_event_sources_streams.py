"""Kinesis and DynamoDB stream event source mappings with real containers, through boto3."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import client, create_python_function, unique_name
from event_sources_support import (
    CAPTURE_SOURCE,
    ESM_ROLE,
    Capture,
    create_queue,
    receive_all,
    wait_for,
    wait_state,
)

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def kinesis(endpoint: str):  # type: ignore[no-untyped-def]
    return client("kinesis", endpoint)


@pytest.fixture(scope="module")
def sns(endpoint: str):  # type: ignore[no-untyped-def]
    return client("sns", endpoint)


@pytest.fixture(scope="module")
def dynamodb(endpoint: str):  # type: ignore[no-untyped-def]
    return client("dynamodb", endpoint)


def _capture_function(lam, sqs, role: str, source: str = CAPTURE_SOURCE, **kwargs: Any):  # type: ignore[no-untyped-def]
    capture_url, _ = create_queue(sqs, unique_name("capture"))
    name = create_python_function(
        lam,
        source,
        role=role,
        Environment={"Variables": {"CAPTURE_URL": capture_url}},
        Timeout=10,
        **kwargs,
    )
    return name, Capture(sqs, capture_url)


def _stream(kinesis, shards: int = 1) -> str:  # type: ignore[no-untyped-def]
    name = unique_name("kin-s")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]


def test_kinesis_defaults_and_record_shape(lam, sqs, kinesis, role: str) -> None:  # type: ignore[no-untyped-def]
    name, capture = _capture_function(lam, sqs, role)
    stream_arn = _stream(kinesis)

    created = lam.create_event_source_mapping(
        EventSourceArn=stream_arn, FunctionName=name, StartingPosition="LATEST"
    )

    assert created["ResponseMetadata"]["HTTPStatusCode"] == 202
    expected = {
        "BatchSize": 100,
        "MaximumBatchingWindowInSeconds": 0,
        "MaximumRetryAttempts": -1,
        "MaximumRecordAgeInSeconds": -1,
        "BisectBatchOnFunctionError": False,
        "ParallelizationFactor": 1,
        "TumblingWindowInSeconds": 0,
        "DestinationConfig": {"OnFailure": {}},
        "StartingPosition": "LATEST",
        "State": "Creating",
        "StateTransitionReason": "User action",
        "LastProcessingResult": "No records processed",
        "FunctionResponseTypes": [],
        "EventSourceArn": stream_arn,
    }
    for key, value in expected.items():
        assert created[key] == value, key
    wait_state(lam, created["UUID"], "Enabled")

    put = kinesis.put_record(StreamARN=stream_arn, Data=b"hello", PartitionKey="pk-1")
    (record,) = capture.wait_records(1, timeout=60)

    sequence = put["SequenceNumber"]
    assert re.fullmatch(r"\d+", record["kinesis"]["sequenceNumber"])
    assert record["kinesis"]["sequenceNumber"] == sequence
    timestamp = record["kinesis"]["approximateArrivalTimestamp"]
    assert isinstance(timestamp, float)
    assert 1e9 < timestamp < 1e10
    assert record == {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "pk-1",
            "sequenceNumber": sequence,
            "data": "aGVsbG8=",
            "approximateArrivalTimestamp": timestamp,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{put['ShardId']}:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": ESM_ROLE,
        "awsRegion": "us-east-1",
        "eventSourceARN": stream_arn,
    }
    wait_for(
        lambda: lam.get_event_source_mapping(UUID=created["UUID"])["LastProcessingResult"] == "OK",
        timeout=10,
        what="LastProcessingResult OK",
    )


def test_kinesis_starting_position_validation(lam, sqs, kinesis, role: str) -> None:  # type: ignore[no-untyped-def]
    name, _ = _capture_function(lam, sqs, role)
    stream_arn = _stream(kinesis)

    with pytest.raises(ClientError) as missing:
        lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=name)
    with pytest.raises(ClientError) as invalid:
        lam.create_event_source_mapping(
            EventSourceArn=stream_arn, FunctionName=name, StartingPosition="invalid"
        )

    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert missing.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert missing.value.response["Error"]["Message"] == (
        "1 validation error detected: Value null at 'startingPosition' failed to satisfy "
        "constraint: Member must not be null."
    )
    assert invalid.value.response["Error"]["Code"] == "ValidationException"
    assert invalid.value.response["Error"]["Message"].endswith(
        "Member must satisfy enum value set: [LATEST, AT_TIMESTAMP, TRIM_HORIZON]"
    )


ORDER_SOURCE = """\
import base64, json, os, time, boto3
sqs = boto3.client("sqs")
def handler(event, context):
    time.sleep(0.05)
    sqs.send_message(QueueUrl=os.environ["CAPTURE_URL"], MessageBody=json.dumps(event))
"""


def test_kinesis_parallelization_keeps_key_order(lam, sqs, kinesis, role: str) -> None:  # type: ignore[no-untyped-def]
    name, capture = _capture_function(lam, sqs, role, ORDER_SOURCE)
    stream_arn = _stream(kinesis)
    uuid = lam.create_event_source_mapping(
        EventSourceArn=stream_arn,
        FunctionName=name,
        StartingPosition="TRIM_HORIZON",
        ParallelizationFactor=4,
        BatchSize=5,
    )["UUID"]
    wait_state(lam, uuid, "Enabled")

    keys = [f"key-{index}" for index in range(8)]
    for counter in range(20):
        records = [
            {"Data": json.dumps({"key": key, "n": counter}).encode(), "PartitionKey": key}
            for key in keys
        ]
        kinesis.put_records(StreamARN=stream_arn, Records=records)
    delivered = capture.wait_records(160, timeout=90)

    by_key: dict[str, list[int]] = {}
    for record in delivered:
        data = json.loads(base64.b64decode(record["kinesis"]["data"]))
        by_key.setdefault(data["key"], []).append(data["n"])
    assert sorted(by_key) == sorted(keys)
    for key, counters in by_key.items():
        assert counters == list(range(20)), key
    batch_keys = [
        {r["kinesis"]["partitionKey"] for r in event["Records"]} for event in capture.events
    ]
    # The lanes split the keys between them: no batch mixes keys of every lane.
    assert all(len(keys_in_batch) < len(keys) for keys_in_batch in batch_keys)


BAD_RECORD_SOURCE = """\
import base64, json, os, boto3
sqs = boto3.client("sqs")
def handler(event, context):
    if any(base64.b64decode(r["kinesis"]["data"]) == b"bad" for r in event["Records"]):
        raise ValueError("bad record in the batch")
    sqs.send_message(QueueUrl=os.environ["CAPTURE_URL"], MessageBody=json.dumps(event))
"""


def test_bisect_isolates_bad_record(lam, sqs, kinesis, role: str) -> None:  # type: ignore[no-untyped-def]
    name, capture = _capture_function(lam, sqs, role, BAD_RECORD_SOURCE)
    failures_url, failures_arn = create_queue(sqs, unique_name("on-failure"))
    stream_arn = _stream(kinesis)
    sequences = {}
    for data in (b"r0", b"r1", b"r2", b"bad", b"r4", b"r5", b"r6", b"r7"):
        put = kinesis.put_record(StreamARN=stream_arn, Data=data, PartitionKey="one-key")
        sequences[data] = put["SequenceNumber"]
        shard_id = put["ShardId"]

    lam.create_event_source_mapping(
        EventSourceArn=stream_arn,
        FunctionName=name,
        StartingPosition="TRIM_HORIZON",
        BisectBatchOnFunctionError=True,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": failures_arn}},
    )
    failures = wait_for(lambda: receive_all(sqs, failures_url), timeout=60, what="a failure record")
    capture.wait_records(7, timeout=30)

    assert len(failures) == 1
    document = json.loads(failures[0]["Body"])
    assert document["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert document["requestContext"]["functionArn"].endswith(f":function:{name}")
    assert document["requestContext"]["approximateInvokeCount"] == 1
    assert document["responseContext"]["functionError"] == "Unhandled"
    assert document["version"] == "1.0"
    info = document["KinesisBatchInfo"]
    assert info["shardId"] == shard_id
    assert info["startSequenceNumber"] == sequences[b"bad"]
    assert info["endSequenceNumber"] == sequences[b"bad"]
    assert info["batchSize"] == 1
    assert info["streamArn"] == stream_arn
    good = sorted(
        base64.b64decode(r["kinesis"]["data"]) for r in capture.poll() for r in r["Records"]
    )
    assert good == [b"r0", b"r1", b"r2", b"r4", b"r5", b"r6", b"r7"]


def test_kinesis_filter_on_decoded_data(lam, sqs, kinesis, role: str) -> None:  # type: ignore[no-untyped-def]
    name, capture = _capture_function(lam, sqs, role)
    stream_arn = _stream(kinesis)
    pattern = {"partitionKey": ["keep"], "data": {"level": [{"anything-but": "debug"}]}}
    uuid = lam.create_event_source_mapping(
        EventSourceArn=stream_arn,
        FunctionName=name,
        StartingPosition="LATEST",
        FilterCriteria={"Filters": [{"Pattern": json.dumps(pattern)}]},
    )["UUID"]
    wait_state(lam, uuid, "Enabled")

    entries = [
        ({"level": "error", "n": 1}, "keep"),
        ({"level": "debug", "n": 2}, "keep"),
        ({"level": "error", "n": 3}, "other"),
        ("not json", "keep"),
        ({"level": "info", "n": 5}, "keep"),
    ]
    for data, key in entries:
        raw = data.encode() if isinstance(data, str) else json.dumps(data).encode()
        kinesis.put_record(StreamARN=stream_arn, Data=raw, PartitionKey=key)
    capture.wait_records(2, timeout=30)
    wait_for(
        lambda: lam.get_event_source_mapping(UUID=uuid)["LastProcessingResult"] == "OK",
        timeout=10,
        what="the batch to finish",
    )
    capture.poll()

    delivered = [json.loads(base64.b64decode(r["kinesis"]["data"]))["n"] for r in capture.records]
    assert delivered == [1, 5]


def test_kinesis_new_shards_picked_up(lam, sqs, kinesis, role: str) -> None:  # type: ignore[no-untyped-def]
    name, capture = _capture_function(lam, sqs, role)
    stream_arn = _stream(kinesis)
    uuid = lam.create_event_source_mapping(
        EventSourceArn=stream_arn, FunctionName=name, StartingPosition="LATEST"
    )["UUID"]
    wait_state(lam, uuid, "Enabled")

    kinesis.update_shard_count(
        StreamARN=stream_arn, TargetShardCount=2, ScalingType="UNIFORM_SCALING"
    )
    shards = kinesis.list_shards(StreamARN=stream_arn)["Shards"]
    open_shards = [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    for index in range(20):
        kinesis.put_record(StreamARN=stream_arn, Data=str(index).encode(), PartitionKey=f"k{index}")
    delivered = capture.wait_records(20, timeout=60)

    assert len(open_shards) == 2
    shard_ids = {record["eventID"].split(":")[0] for record in delivered}
    assert shard_ids == {s["ShardId"] for s in open_shards}
    assert sorted(int(base64.b64decode(r["kinesis"]["data"])) for r in delivered) == list(range(20))


def _table(dynamodb) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    name = unique_name("ddb")
    description = dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    return name, description["LatestStreamArn"]


def test_dynamodb_insert_modify_remove(lam, sqs, dynamodb, role: str) -> None:  # type: ignore[no-untyped-def]
    name, capture = _capture_function(lam, sqs, role)
    table, stream_arn = _table(dynamodb)
    created = lam.create_event_source_mapping(
        EventSourceArn=stream_arn, FunctionName=name, StartingPosition="LATEST"
    )
    assert created["BatchSize"] == 100
    assert created["StartingPosition"] == "LATEST"
    assert created["MaximumRetryAttempts"] == -1
    wait_state(lam, created["UUID"], "Enabled")

    dynamodb.put_item(TableName=table, Item={"id": {"S": "a"}, "color": {"S": "red"}})
    dynamodb.update_item(
        TableName=table,
        Key={"id": {"S": "a"}},
        UpdateExpression="SET color = :c",
        ExpressionAttributeValues={":c": {"S": "blue"}},
    )
    dynamodb.delete_item(TableName=table, Key={"id": {"S": "a"}})
    records = capture.wait_records(3, timeout=60)

    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    for record in records:
        assert record["eventSource"] == "aws:dynamodb"
        assert record["eventVersion"] == "1.1"
        assert record["awsRegion"] == "us-east-1"
        assert record["eventSourceARN"] == stream_arn
        assert re.fullmatch(r"[0-9a-f]{32}", record["eventID"])
        change = record["dynamodb"]
        assert change["Keys"] == {"id": {"S": "a"}}
        assert change["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert re.fullmatch(r"\d+", change["SequenceNumber"])
        assert isinstance(change["SizeBytes"], int)
        assert isinstance(change["ApproximateCreationDateTime"], float)
    insert, modify, remove = (r["dynamodb"] for r in records)
    assert insert["NewImage"] == {"id": {"S": "a"}, "color": {"S": "red"}}
    assert "OldImage" not in insert
    assert modify["OldImage"] == {"id": {"S": "a"}, "color": {"S": "red"}}
    assert modify["NewImage"] == {"id": {"S": "a"}, "color": {"S": "blue"}}
    assert remove["OldImage"] == {"id": {"S": "a"}, "color": {"S": "blue"}}
    assert "NewImage" not in remove
    sequence_numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequence_numbers == sorted(sequence_numbers)


def test_dynamodb_report_batch_item_failures_checkpoint(lam, sqs, dynamodb, role: str) -> None:  # type: ignore[no-untyped-def]
    source = """\
import json, os, boto3
sqs = boto3.client("sqs")
def handler(event, context):
    sqs.send_message(QueueUrl=os.environ["CAPTURE_URL"], MessageBody=json.dumps(event))
    keys = {r["dynamodb"]["Keys"]["id"]["S"]: r for r in event["Records"]}
    if "a" in keys:
        failed = keys["b"]["dynamodb"]["SequenceNumber"]
        return {"batchItemFailures": [{"itemIdentifier": failed}]}
    return {"batchItemFailures": []}
"""
    name, capture = _capture_function(lam, sqs, role, source)
    table, stream_arn = _table(dynamodb)
    for key in ("a", "b", "c"):
        dynamodb.put_item(TableName=table, Item={"id": {"S": key}})
    lam.create_event_source_mapping(
        EventSourceArn=stream_arn,
        FunctionName=name,
        StartingPosition="TRIM_HORIZON",
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    capture.wait_records(5, timeout=60)
    capture.poll()

    batches = [[r["dynamodb"]["Keys"]["id"]["S"] for r in e["Records"]] for e in capture.events]
    # The retry starts at the reported record and leaves out the one before it.
    assert batches == [["a", "b", "c"], ["b", "c"]]


WINDOW_SOURCE = """\
import json, os, boto3
sqs = boto3.client("sqs")
def handler(event, context):
    state = dict(event["state"])
    if not event["isFinalInvokeForWindow"]:
        state["count"] = state.get("count", 0) + len(event["Records"])
    summary = {key: event[key] for key in ("window", "isFinalInvokeForWindow", "shardId",
                                           "eventSourceARN", "isWindowTerminatedEarly")}
    summary.update(state=state, records=len(event["Records"]), given=event["state"])
    sqs.send_message(QueueUrl=os.environ["CAPTURE_URL"], MessageBody=json.dumps(summary))
    return {"state": state}
"""


def test_kinesis_tumbling_window_state(lam, sqs, kinesis, role: str) -> None:  # type: ignore[no-untyped-def]
    name, capture = _capture_function(lam, sqs, role, WINDOW_SOURCE)
    stream_arn = _stream(kinesis)
    for index in range(6):
        kinesis.put_record(StreamARN=stream_arn, Data=str(index).encode(), PartitionKey="k")
    lam.create_event_source_mapping(
        EventSourceArn=stream_arn,
        FunctionName=name,
        StartingPosition="TRIM_HORIZON",
        TumblingWindowInSeconds=2,
        BatchSize=2,
    )

    def windows_closed() -> list[dict[str, Any]] | None:
        capture.poll()
        finals = [e for e in capture.events if e["isFinalInvokeForWindow"]]
        counted = sum(e["state"].get("count", 0) for e in finals)
        return finals if counted == 6 else None

    finals = wait_for(windows_closed, timeout=30, what="the windows to close")

    for event in capture.events:
        assert event["eventSourceARN"] == stream_arn
        assert event["shardId"] == "shardId-000000000000"
        assert event["isWindowTerminatedEarly"] is False
    for final in finals:
        assert final["records"] == 0
        assert final["state"] == final["given"]
    batches = [e for e in capture.events if not e["isFinalInvokeForWindow"]]
    assert sum(e["records"] for e in batches) == 6
    assert all(e["records"] <= 2 for e in batches)
    first = batches[0]
    start = first["window"]["start"]
    assert first["given"] == {}
    assert first["window"]["end"] > start


#: Handler that copies its request id and the data of its records to $CAPTURE_URL, then fails.
FAILING_SOURCE = """\
import base64, json, os, boto3
sqs = boto3.client("sqs")
def handler(event, context):
    data = [base64.b64decode(r["kinesis"]["data"]).decode() for r in event["Records"]]
    body = {"requestId": context.aws_request_id, "data": data}
    sqs.send_message(QueueUrl=os.environ["CAPTURE_URL"], MessageBody=json.dumps(body))
    raise ValueError("this function always fails")
"""

ISO_MILLIS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def test_kinesis_on_failure_to_sns(lam, sqs, sns, kinesis, role: str) -> None:  # type: ignore[no-untyped-def]
    name, capture = _capture_function(lam, sqs, role, FAILING_SOURCE)
    function_arn = lam.get_function_configuration(FunctionName=name)["FunctionArn"]
    topic_arn = sns.create_topic(Name=unique_name("on-failure"))["TopicArn"]
    subscriber_url, subscriber_arn = create_queue(sqs, unique_name("subscriber"))
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=subscriber_arn)
    stream_arn = _stream(kinesis)
    puts = [
        kinesis.put_record(StreamARN=stream_arn, Data=data, PartitionKey="one-key")
        for data in (b"a", b"b", b"c")
    ]

    lam.create_event_source_mapping(
        EventSourceArn=stream_arn,
        FunctionName=name,
        StartingPosition="TRIM_HORIZON",
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": topic_arn}},
    )
    messages = wait_for(
        lambda: receive_all(sqs, subscriber_url), timeout=60, what="a failure record"
    )
    capture.poll()

    assert len(messages) == 1
    notification = json.loads(messages[0]["Body"])
    assert notification["Type"] == "Notification"
    assert notification["TopicArn"] == topic_arn
    # The first invocation and one retry, each with the whole batch.
    assert [event["data"] for event in capture.events] == [["a", "b", "c"], ["a", "b", "c"]]
    document = json.loads(notification["Message"])
    assert sorted(document) == sorted(
        ["requestContext", "responseContext", "version", "timestamp", "KinesisBatchInfo"]
    )
    assert document["requestContext"] == {
        "requestId": capture.events[-1]["requestId"],
        "functionArn": function_arn,
        "condition": "RetryAttemptsExhausted",
        "approximateInvokeCount": 2,
    }
    assert document["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert document["version"] == "1.0"
    assert re.fullmatch(ISO_MILLIS, document["timestamp"])
    info = document["KinesisBatchInfo"]
    assert sorted(info) == sorted(
        [
            "shardId",
            "startSequenceNumber",
            "endSequenceNumber",
            "approximateArrivalOfFirstRecord",
            "approximateArrivalOfLastRecord",
            "batchSize",
            "streamArn",
        ]
    )
    assert info["shardId"] == puts[0]["ShardId"]
    assert info["startSequenceNumber"] == puts[0]["SequenceNumber"]
    assert info["endSequenceNumber"] == puts[-1]["SequenceNumber"]
    assert re.fullmatch(ISO_MILLIS, info["approximateArrivalOfFirstRecord"])
    assert re.fullmatch(ISO_MILLIS, info["approximateArrivalOfLastRecord"])
    # The timestamps have the same fixed format, so they compare as strings.
    assert info["approximateArrivalOfFirstRecord"] <= info["approximateArrivalOfLastRecord"]
    assert info["approximateArrivalOfLastRecord"] <= document["timestamp"]
    assert info["batchSize"] == 3
    assert info["streamArn"] == stream_arn


def test_throttled_stream_keeps_records(lam, sqs, kinesis, role: str) -> None:  # type: ignore[no-untyped-def]
    name, capture = _capture_function(lam, sqs, role)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    failures_url, failures_arn = create_queue(sqs, unique_name("on-failure"))
    stream_arn = _stream(kinesis)
    # With no retries allowed, a throttle that counted as a function error would
    # discard the first batch at once.
    uuid = lam.create_event_source_mapping(
        EventSourceArn=stream_arn,
        FunctionName=name,
        StartingPosition="LATEST",
        BatchSize=2,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": failures_arn}},
    )["UUID"]
    wait_state(lam, uuid, "Enabled")
    sequences = [
        kinesis.put_record(StreamARN=stream_arn, Data=str(index).encode(), PartitionKey="k")[
            "SequenceNumber"
        ]
        for index in range(6)
    ]

    # The poller reads new records within a second, so in this window it meets the
    # throttle several times. The check is that nothing arrives, so the test waits
    # out the whole window instead of polling.
    time.sleep(3)

    assert capture.poll() == []
    assert receive_all(sqs, failures_url) == []

    lam.delete_function_concurrency(FunctionName=name)
    delivered = capture.wait_records(6, timeout=60)
    wait_for(
        lambda: lam.get_event_source_mapping(UUID=uuid)["LastProcessingResult"] == "OK",
        timeout=10,
        what="LastProcessingResult OK",
    )
    capture.poll()

    assert receive_all(sqs, failures_url) == []
    assert [base64.b64decode(r["kinesis"]["data"]) for r in capture.records] == [
        str(index).encode() for index in range(6)
    ]
    assert [r["kinesis"]["sequenceNumber"] for r in delivered] == sequences
    assert all(len(event["Records"]) <= 2 for event in capture.events)
