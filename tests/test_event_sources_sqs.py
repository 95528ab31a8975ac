"""SQS event source mappings with real containers, through boto3."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import create_python_function, unique_name
from event_sources_support import (
    CAPTURE_SOURCE,
    Capture,
    create_queue,
    queue_depth,
    receive_all,
    wait_for,
    wait_state,
)

pytestmark = pytest.mark.docker


def _capture_function(lam, sqs, role: str, result: Any = None, **kwargs: Any):  # type: ignore[no-untyped-def]
    """Create a function that copies its events to a new queue; return its name and capture."""
    capture_url, _ = create_queue(sqs, unique_name("capture"))
    variables = {"CAPTURE_URL": capture_url}
    if result is not None:
        variables["RESULT"] = json.dumps(result)
    name = create_python_function(
        lam, CAPTURE_SOURCE, role=role, Environment={"Variables": variables}, Timeout=10, **kwargs
    )
    return name, Capture(sqs, capture_url)


def test_create_defaults_and_record_shape(lam, sqs, role: str) -> None:  # type: ignore[no-untyped-def]
    name, capture = _capture_function(lam, sqs, role)
    url, arn = create_queue(sqs, unique_name("c29"))

    created = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)

    assert created["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert created["BatchSize"] == 10
    assert created["MaximumBatchingWindowInSeconds"] == 0
    assert created["FunctionResponseTypes"] == []
    assert created["State"] == "Creating"
    assert created["StateTransitionReason"] == "USER_INITIATED"
    assert created["EventSourceArn"] == arn
    assert created["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    uuid = created["UUID"]
    assert created["EventSourceMappingArn"] == (
        f"arn:aws:lambda:us-east-1:000000000000:event-source-mapping:{uuid}"
    )
    assert "StartingPosition" not in created
    wait_state(lam, uuid, "Enabled")

    attributes = {
        "Color": {"DataType": "String", "StringValue": "red"},
        "Count": {"DataType": "Number", "StringValue": "6"},
    }
    sent = sqs.send_message(QueueUrl=url, MessageBody="hello", MessageAttributes=attributes)
    plain = sqs.send_message(QueueUrl=url, MessageBody='{"a": 1}')
    records = {r["messageId"]: r for r in capture.wait_records(2, timeout=60)}

    record = records[sent["MessageId"]]
    assert record["body"] == "hello"
    assert record["receiptHandle"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == arn
    assert record["awsRegion"] == "us-east-1"
    assert record["md5OfBody"] == hashlib.md5(b"hello").hexdigest()
    assert record["md5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert set(record["attributes"]) == {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    }
    assert all(isinstance(value, str) for value in record["attributes"].values())
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["Color"] == {
        "stringValue": "red",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["Count"]["dataType"] == "Number"
    assert record["messageAttributes"]["Count"]["stringValue"] == "6"

    without = records[plain["MessageId"]]
    assert without["body"] == '{"a": 1}'
    assert without["messageAttributes"] == {}
    assert "md5OfMessageAttributes" in without
    assert without["md5OfMessageAttributes"] is None

    wait_for(lambda: queue_depth(sqs, url) == 0, timeout=30, what="the queue to empty")
    lam.delete_event_source_mapping(UUID=uuid)


#: Copies each event to $CAPTURE_URL, then returns the result of the mode in the
#: queue's name: the queues are named `c32-<mode>-<suffix>`.
REPORTING_SOURCE = """\
import json, os, time, boto3
sqs = boto3.client("sqs")
RESULTS = {
    "empty": {},
    "emptylist": {"batchItemFailures": []},
    "nulllist": {"batchItemFailures": None},
    "none": None,
    "blank": "",
    "blankid": {"batchItemFailures": [{"itemIdentifier": ""}]},
    "nullid": {"batchItemFailures": [{"itemIdentifier": None}]},
    "badkey": {"batchItemFailures": [{"foo": "x"}]},
    "unknownid": {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]},
}
def handler(event, context):
    if "warm" in event:
        time.sleep(event["warm"])
        return
    sqs.send_message(QueueUrl=os.environ["CAPTURE_URL"], MessageBody=json.dumps(event))
    records = event["Records"]
    queue = records[0]["eventSourceARN"].rsplit(":", 1)[1]
    mode = queue.split("-")[1]
    ids = {r["body"]: r["messageId"] for r in records}
    if mode == "raise":
        raise RuntimeError("batch failed on purpose")
    if mode in ("onefail", "ignored"):
        return {"batchItemFailures": [{"itemIdentifier": ids["m2"]}] if "m2" in ids else []}
    if mode == "allfail":
        return {"batchItemFailures": [{"itemIdentifier": i} for i in ids.values()]}
    if mode == "selfdelete":
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        first = next(r for r in records if r["body"] == "m1")
        sqs.delete_message(QueueUrl=url, ReceiptHandle=first["receiptHandle"])
        return {}
    return RESULTS[mode]
"""

#: Sub-case -> (mapping reports batch item failures, bodies expected twice, bodies in the DLQ).
C32_CASES: dict[str, tuple[bool, set[str], set[str]]] = {
    "onefail": (True, {"m2"}, {"m2"}),
    "allfail": (True, {"m1", "m2", "m3"}, {"m1", "m2", "m3"}),
    "raise": (True, {"m1", "m2", "m3"}, {"m1", "m2", "m3"}),
    "empty": (True, set(), set()),
    "emptylist": (True, set(), set()),
    "nulllist": (True, set(), set()),
    "none": (True, set(), set()),
    "blank": (True, set(), set()),
    "blankid": (True, {"m1", "m2", "m3"}, {"m1", "m2", "m3"}),
    "nullid": (True, {"m1", "m2", "m3"}, {"m1", "m2", "m3"}),
    "badkey": (True, {"m1", "m2", "m3"}, {"m1", "m2", "m3"}),
    "unknownid": (True, {"m1", "m2", "m3"}, {"m1", "m2", "m3"}),
    "ignored": (False, set(), set()),
    "selfdelete": (True, set(), set()),
}


def test_report_batch_item_failures(lam, sqs, role: str) -> None:  # type: ignore[no-untyped-def]
    capture_url, _ = create_queue(sqs, unique_name("capture"))
    capture = Capture(sqs, capture_url)
    name = create_python_function(
        lam,
        REPORTING_SOURCE,
        role=role,
        Environment={"Variables": {"CAPTURE_URL": capture_url}},
        Timeout=10,
    )
    # One warm container per sub-case, so that no first invocation outlasts the
    # 5 s visibility timeout while containers start side by side.
    with ThreadPoolExecutor(len(C32_CASES)) as pool:
        list(pool.map(lambda _: lam.invoke(FunctionName=name, Payload=b'{"warm": 1}'), C32_CASES))
    queues: dict[str, tuple[str, str, str]] = {}
    for mode, (_reports, _, _) in C32_CASES.items():
        dlq_url, dlq_arn = create_queue(sqs, unique_name(f"c32dlq-{mode}"))
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
        url, arn = create_queue(
            sqs, unique_name(f"c32-{mode}"), VisibilityTimeout="5", RedrivePolicy=redrive
        )
        for body in ("m1", "m2", "m3"):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        queues[mode] = (url, arn, dlq_url)
    for mode, (_url, arn, _) in queues.items():
        reports = C32_CASES[mode][0]
        lam.create_event_source_mapping(
            EventSourceArn=arn,
            FunctionName=name,
            FunctionResponseTypes=["ReportBatchItemFailures"] if reports else [],
        )

    def settled() -> bool:
        for mode, (url, _, dlq_url) in queues.items():
            expected_dlq = len(C32_CASES[mode][2])
            if queue_depth(sqs, url) != 0 or queue_depth(sqs, dlq_url) != expected_dlq:
                return False
        return True

    wait_for(settled, timeout=90, interval=0.5, what="every sub-case to settle")
    capture.poll()

    for mode, (_url, arn, dlq_url) in queues.items():
        _, twice, in_dlq = C32_CASES[mode]
        deliveries: dict[str, list[str]] = {}
        for record in capture.records:
            if record["eventSourceARN"] == arn:
                deliveries.setdefault(record["body"], []).append(
                    record["attributes"]["ApproximateReceiveCount"]
                )
        expected = {body: ["1", "2"] if body in twice else ["1"] for body in ("m1", "m2", "m3")}
        assert deliveries == expected, mode
        dead = {m["Body"] for m in receive_all(sqs, dlq_url)}
        assert dead == in_dlq, mode


def test_hundred_messages_delivered_once(lam, sqs, role: str) -> None:  # type: ignore[no-untyped-def]
    name, capture = _capture_function(lam, sqs, role)
    url, arn = create_queue(sqs, unique_name("hundred"))
    uuid = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)["UUID"]
    wait_state(lam, uuid, "Enabled")

    sent: set[str] = set()
    for start in range(0, 100, 10):
        entries = [{"Id": str(i), "MessageBody": f"message {i}"} for i in range(start, start + 10)]
        response = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        sent.update(item["MessageId"] for item in response["Successful"])
    capture.wait_records(100, timeout=60)
    wait_for(lambda: queue_depth(sqs, url) == 0, timeout=30, what="the queue to empty")
    capture.poll()

    delivered = [record["messageId"] for record in capture.records]
    assert len(sent) == 100
    assert sorted(delivered) == sorted(sent)
    assert all(len(event["Records"]) <= 10 for event in capture.events)


POISON_SOURCE = """\
import json, os, boto3
sqs = boto3.client("sqs")
def handler(event, context):
    sqs.send_message(QueueUrl=os.environ["CAPTURE_URL"], MessageBody=json.dumps(event))
    if any(r["body"] == "poison" for r in event["Records"]):
        raise ValueError("poison message")
"""


def test_poison_message_moved_by_redrive(lam, sqs, role: str) -> None:  # type: ignore[no-untyped-def]
    capture_url, _ = create_queue(sqs, unique_name("capture"))
    capture = Capture(sqs, capture_url)
    name = create_python_function(
        lam, POISON_SOURCE, role=role, Environment={"Variables": {"CAPTURE_URL": capture_url}}
    )
    dlq_url, dlq_arn = create_queue(sqs, unique_name("dlq"))
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    url, arn = create_queue(
        sqs, unique_name("poison"), VisibilityTimeout="5", RedrivePolicy=redrive
    )
    for body in ("good-1", "poison", "good-2"):
        sqs.send_message(QueueUrl=url, MessageBody=body)

    lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, BatchSize=1)
    wait_for(lambda: queue_depth(sqs, dlq_url) == 1, timeout=60, what="the poison message")
    wait_for(lambda: queue_depth(sqs, url) == 0, timeout=30, what="the queue to empty")
    capture.poll()

    bodies = [record["body"] for record in capture.records]
    assert bodies.count("good-1") == 1
    assert bodies.count("good-2") == 1
    assert bodies.count("poison") == 2
    assert [m["Body"] for m in receive_all(sqs, dlq_url)] == ["poison"]


def test_filters_drop_and_delete(lam, sqs, role: str) -> None:  # type: ignore[no-untyped-def]
    name, capture = _capture_function(lam, sqs, role)
    json_url, json_arn = create_queue(sqs, unique_name("filter-json"))
    text_url, text_arn = create_queue(sqs, unique_name("filter-text"))
    json_pattern = {"body": {"kind": ["keep"], "n": [{"numeric": [">", 5]}]}}
    text_pattern = {"body": [{"prefix": "keep"}]}
    for arn, pattern in ((json_arn, json_pattern), (text_arn, text_pattern)):
        created = lam.create_event_source_mapping(
            EventSourceArn=arn,
            FunctionName=name,
            FilterCriteria={"Filters": [{"Pattern": json.dumps(pattern)}]},
        )
        assert created["FilterCriteria"] == {"Filters": [{"Pattern": json.dumps(pattern)}]}
        wait_state(lam, created["UUID"], "Enabled")

    for body in (
        '{"kind": "keep", "n": 10}',
        '{"kind": "keep", "n": 1}',
        '{"kind": "drop"}',
        "keep",
    ):
        sqs.send_message(QueueUrl=json_url, MessageBody=body)
    for body in ("keep me", '{"kind": "keep"}', "other"):
        sqs.send_message(QueueUrl=text_url, MessageBody=body)
    wait_for(
        lambda: queue_depth(sqs, json_url) == 0 and queue_depth(sqs, text_url) == 0,
        timeout=30,
        what="both queues to empty",
    )
    capture.wait_records(2, timeout=30)

    delivered = sorted(record["body"] for record in capture.records)
    assert delivered == sorted(['{"kind": "keep", "n": 10}', "keep me"])


CONCURRENCY_SOURCE = """\
import json, os, time, boto3
sqs = boto3.client("sqs")
def handler(event, context):
    started = time.time()
    time.sleep(0.5)
    sqs.send_message(QueueUrl=os.environ["CAPTURE_URL"],
                     MessageBody=json.dumps({"start": started, "end": time.time(),
                                             "Records": event["Records"]}))
"""


def test_maximum_concurrency_bounds_invocations(lam, sqs, role: str) -> None:  # type: ignore[no-untyped-def]
    capture_url, _ = create_queue(sqs, unique_name("capture"))
    capture = Capture(sqs, capture_url)
    name = create_python_function(
        lam, CONCURRENCY_SOURCE, role=role, Environment={"Variables": {"CAPTURE_URL": capture_url}}
    )
    url, arn = create_queue(sqs, unique_name("bounded"), VisibilityTimeout="30")
    for start in range(0, 40, 10):
        entries = [{"Id": str(i), "MessageBody": str(i)} for i in range(start, start + 10)]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)

    created = lam.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=name, BatchSize=2, ScalingConfig={"MaximumConcurrency": 2}
    )
    assert created["ScalingConfig"] == {"MaximumConcurrency": 2}
    capture.wait_records(40, timeout=60)

    edges = sorted(
        [(event["start"], 1) for event in capture.events]
        + [(event["end"], -1) for event in capture.events]
    )
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    assert len(capture.events) == 20
    assert peak == 2


def test_disable_holds_messages_and_enable_delivers(lam, sqs, role: str) -> None:  # type: ignore[no-untyped-def]
    name, capture = _capture_function(lam, sqs, role)
    url, arn = create_queue(sqs, unique_name("toggle"))
    uuid = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name, Enabled=False)[
        "UUID"
    ]
    wait_state(lam, uuid, "Disabled")
    for index in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=f"held {index}")

    assert queue_depth(sqs, url) == 5
    updated = lam.update_event_source_mapping(UUID=uuid, Enabled=True, BatchSize=2)
    assert updated["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert updated["State"] == "Enabling"
    assert updated["BatchSize"] == 2
    capture.wait_records(5, timeout=30)
    wait_state(lam, uuid, "Enabled")
    wait_for(lambda: queue_depth(sqs, url) == 0, timeout=30, what="the queue to empty")

    bodies = sorted(record["body"] for record in capture.records)
    assert bodies == [f"held {index}" for index in range(5)]
    assert all(len(event["Records"]) <= 2 for event in capture.events)

    disabling = lam.update_event_source_mapping(UUID=uuid, Enabled=False)
    assert disabling["State"] == "Disabling"
    wait_state(lam, uuid, "Disabled")
    sqs.send_message(QueueUrl=url, MessageBody="after disable")
    assert queue_depth(sqs, url) == 1


def test_batching_window_gathers_batch(lam, sqs, role: str) -> None:  # type: ignore[no-untyped-def]
    name, capture = _capture_function(lam, sqs, role)
    url, arn = create_queue(sqs, unique_name("window"))
    uuid = lam.create_event_source_mapping(
        EventSourceArn=arn, FunctionName=name, BatchSize=20, MaximumBatchingWindowInSeconds=3
    )["UUID"]
    wait_state(lam, uuid, "Enabled")

    for start in (0, 10):
        count = 10 if start == 0 else 5
        entries = [{"Id": str(i), "MessageBody": str(start + i)} for i in range(count)]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    capture.wait_records(15, timeout=30)

    assert len(capture.events) == 1
    assert sorted(int(r["body"]) for r in capture.records) == list(range(15))
