"""Asynchronous invocation: 202, retries, destinations and the dead-letter queue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from conftest import ServerProcess, client, create_python_function, unique_name

pytestmark = pytest.mark.docker

SOURCE = """\
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    if event.get("fail"):
        raise RuntimeError("failing on purpose")
    return {"ok": event.get("n")}
"""


@pytest.fixture(scope="module")
def fast_retry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("async")
    process = ServerProcess(
        root / "data", root / "server.log", {"LAMBDASIM_ASYNC_RETRY_DELAY": "0.5"}
    )
    yield process
    process.stop()


def _queue(endpoint: str) -> tuple[object, str, str]:
    sqs = client("sqs", endpoint)
    url = sqs.create_queue(QueueName=unique_name("q"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return sqs, url, arn


def _receive_one(sqs, url: str, timeout: float = 20) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=1, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if messages:
            return messages[0]
        time.sleep(0.2)
    raise AssertionError(f"no message arrived on {url} within {timeout} s")


def test_event_returns_202_at_once(lam, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    sqs, url, arn = _queue(endpoint)
    name = create_python_function(lam, SOURCE, Timeout=10)
    lam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": arn}}
    )

    started = time.monotonic()
    response = lam.invoke(
        FunctionName=name, InvocationType="Event", Payload=b'{"sleep": 2, "n": 7}'
    )
    elapsed = time.monotonic() - started

    assert response["StatusCode"] == 202
    assert response["Payload"].read() == b""
    assert "ExecutedVersion" not in response
    assert "FunctionError" not in response
    assert elapsed < 2
    record = json.loads(_receive_one(sqs, url)["Body"])
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["requestId"] == response["ResponseMetadata"]["RequestId"]
    assert record["requestPayload"] == {"sleep": 2, "n": 7}
    assert record["responsePayload"] == {"ok": 7}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}


def test_failure_record_after_retries(fast_retry_server: ServerProcess) -> None:
    endpoint = fast_retry_server.endpoint
    lam = client("lambda", endpoint)
    sqs, url, arn = _queue(endpoint)
    name = create_python_function(lam, SOURCE, role="arn:aws:iam::000000000000:role/none")
    lam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnFailure": {"Destination": arn}}
    )

    response = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"fail": true}')

    record = json.loads(_receive_one(sqs, url)["Body"])
    assert set(record) == {
        "version",
        "timestamp",
        "requestContext",
        "requestPayload",
        "responseContext",
        "responsePayload",
    }
    assert record["version"] == "1.0"
    assert record["requestContext"] == {
        "requestId": response["ResponseMetadata"]["RequestId"],
        "functionArn": f"arn:aws:lambda:us-east-1:000000000000:function:{name}:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert record["requestPayload"] == {"fail": True}
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorMessage"] == "failing on purpose"
    assert record["responsePayload"]["errorType"] == "RuntimeError"


def test_no_retries_when_configured(lam, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    sqs, url, arn = _queue(endpoint)
    name = create_python_function(lam, SOURCE)
    lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": arn}},
    )

    lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"fail": true}')

    record = json.loads(_receive_one(sqs, url)["Body"])
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestContext"]["condition"] == "RetriesExhausted"


def test_zero_concurrency_fails_event(lam, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    sqs, url, arn = _queue(endpoint)
    name = create_python_function(lam, SOURCE)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": arn}},
    )

    response = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")

    assert response["StatusCode"] == 202
    record = json.loads(_receive_one(sqs, url)["Body"])
    assert record["requestContext"]["condition"] == "ZeroReservedConcurrency"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert record["requestPayload"] == {}
    assert "responseContext" not in record


def test_dead_letter_queue(lam, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    sqs, url, arn = _queue(endpoint)
    name = create_python_function(lam, SOURCE, DeadLetterConfig={"TargetArn": arn})
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    assert lam.get_function_configuration(FunctionName=name)["DeadLetterConfig"] == {
        "TargetArn": arn
    }

    response = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"fail": true}')

    message = _receive_one(sqs, url)
    assert json.loads(message["Body"]) == {"fail": True}
    attributes = message["MessageAttributes"]
    assert attributes["RequestID"]["StringValue"] == response["ResponseMetadata"]["RequestId"]
    assert attributes["ErrorMessage"]["StringValue"] == "failing on purpose"


def test_event_to_unknown_function(lam) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName="nope-async", InvocationType="Event", Payload=b"{}")


def test_event_invalid_json(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, SOURCE)
    with pytest.raises(lam.exceptions.InvalidRequestContentException):
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=b"not json")


def test_event_log_tail_ignored(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, SOURCE)

    response = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}", LogType="Tail")

    assert response["StatusCode"] == 202
    assert "LogResult" not in response


def test_failure_record_through_sns(lam, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    sns = client("sns", endpoint)
    sqs, url, queue_arn = _queue(endpoint)
    topic = sns.create_topic(Name=unique_name("failures"))["TopicArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    name = create_python_function(lam, SOURCE)
    lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": topic}},
    )

    lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"fail": true}')

    record = json.loads(_receive_one(sqs, url)["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["responsePayload"]["errorMessage"] == "failing on purpose"


def test_success_record_to_function(lam, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    sqs, url, queue_arn = _queue(endpoint)
    # The destination function forwards the record it receives to the queue.
    forwarder = create_python_function(
        lam,
        "import json, boto3\n"
        "def handler(event, context):\n"
        f"    boto3.client('sqs').send_message(QueueUrl='{url}', MessageBody=json.dumps(event))\n",
    )
    name = create_python_function(lam, SOURCE)
    lam.put_function_event_invoke_config(
        FunctionName=name,
        DestinationConfig={
            "OnSuccess": {
                "Destination": f"arn:aws:lambda:us-east-1:000000000000:function:{forwarder}"
            }
        },
    )

    lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"n": 3}')

    record = json.loads(_receive_one(sqs, url)["Body"])
    assert record["requestContext"]["condition"] == "Success"
    assert record["responsePayload"] == {"ok": 3}
