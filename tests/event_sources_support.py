"""Helpers for the event source mapping tests: a role, queues and bounded waits."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from conftest import LAMBDA_TRUST_POLICY, client

T = TypeVar("T")

ESM_ROLE_NAME = "esm-exec"
ESM_ROLE = f"arn:aws:iam::000000000000:role/{ESM_ROLE_NAME}"
_POLICIES = (
    "service-role/AWSLambdaSQSQueueExecutionRole",
    "service-role/AWSLambdaKinesisExecutionRole",
    "service-role/AWSLambdaDynamoDBExecutionRole",
    "AmazonSQSFullAccess",
)

#: Handler that copies each event to the queue at $CAPTURE_URL and returns the
#: JSON value in $RESULT, or None when $RESULT is not set.
CAPTURE_SOURCE = """\
import json, os, boto3
sqs = boto3.client("sqs")
def handler(event, context):
    sqs.send_message(QueueUrl=os.environ["CAPTURE_URL"], MessageBody=json.dumps(event))
    if "RESULT" in os.environ:
        return json.loads(os.environ["RESULT"])
"""


def ensure_esm_role(endpoint: str) -> str:
    """Create the role `esm-exec`, which may read queues and streams; return its ARN."""
    iam = client("iam", endpoint)
    try:
        iam.create_role(RoleName=ESM_ROLE_NAME, AssumeRolePolicyDocument=LAMBDA_TRUST_POLICY)
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    for policy in _POLICIES:
        iam.attach_role_policy(
            RoleName=ESM_ROLE_NAME, PolicyArn=f"arn:aws:iam::aws:policy/{policy}"
        )
    return ESM_ROLE


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def create_queue(sqs: Any, name: str, **attributes: str) -> tuple[str, str]:
    """Create a queue; return its URL and ARN."""
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def queue_depth(sqs: Any, url: str) -> int:
    """Return visible plus in-flight messages of a queue."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def receive_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Receive and delete every message that is visible now."""
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        messages.extend(batch)


class Capture:
    """The events a capture function sent to its queue, gathered as they arrive."""

    def __init__(self, sqs: Any, url: str) -> None:
        self.sqs = sqs
        self.url = url
        self.events: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        for message in receive_all(self.sqs, self.url):
            self.events.append(json.loads(message["Body"]))
        return self.events

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for event in self.events for record in event.get("Records", [])]

    def wait_records(self, count: int, *, timeout: float) -> list[dict[str, Any]]:
        """Wait until at least `count` records arrived; return all of them."""

        def enough() -> list[dict[str, Any]] | None:
            self.poll()
            return self.records if len(self.records) >= count else None

        return wait_for(enough, timeout=timeout, what=f"{count} records")


def wait_state(lam: Any, uuid: str, state: str, *, timeout: float = 30) -> dict[str, Any]:
    """Wait until an event source mapping reaches `state`; return its configuration."""

    def reached() -> dict[str, Any] | None:
        configuration = lam.get_event_source_mapping(UUID=uuid)
        return configuration if configuration["State"] == state else None

    return wait_for(reached, timeout=timeout, what=f"mapping {uuid} to be {state}")


@pytest.fixture(scope="module")
def sqs(endpoint: str):  # type: ignore[no-untyped-def]
    """An SQS client of the test server."""
    return client("sqs", endpoint)


@pytest.fixture(scope="module")
def role(endpoint: str) -> str:
    """The execution role that may read every event source."""
    return ensure_esm_role(endpoint)
