"""Event source mappings through the library, with the fake container backend (no Docker).

moto runs in this process, so the queues are created and read through its backend.
"""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from conftest import make_zip

import lambdasim
from lambdasim.pollers import EventSourceMapping
from lambdasim.services import EmbeddedServices
from lambdasim.testing import FakeBackend

ACCOUNT, REGION = "000000000000", "us-east-1"
ROLE_NAME = "library-esm"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
READ_SOURCES = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "kinesis:GetRecords",
                    "kinesis:GetShardIterator",
                    "kinesis:DescribeStream",
                    "kinesis:ListShards",
                ],
                "Resource": "*",
            }
        ],
    }
)


class Recorder:
    """The fake function: records each event's message bodies or Kinesis data."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.invocations = 0

    async def handler(self, event: Any) -> Any:
        self.invocations += 1
        for record in event["Records"]:
            if "kinesis" in record:
                self.bodies.append(base64.b64decode(record["kinesis"]["data"]).decode())
            else:
                self.bodies.append(record["body"])
        return None


def _role_arn(services: EmbeddedServices) -> str:
    from moto.iam.models import iam_backends

    iam = iam_backends[ACCOUNT]["aws"]
    existing = next((r for r in iam.roles.values() if r.name == ROLE_NAME), None)
    if existing is not None:
        return str(existing.arn)
    role = iam.create_role(ROLE_NAME, TRUST, "/", None, "", [], None)
    iam.put_role_policy(ROLE_NAME, "read-sources", READ_SOURCES)
    return str(role.arn)


def _queue(name: str) -> str:
    from moto.sqs.models import sqs_backends

    return str(sqs_backends[ACCOUNT][REGION].create_queue(name).queue_arn)


def _send(name: str, *bodies: str) -> None:
    from moto.sqs.models import sqs_backends

    for body in bodies:
        sqs_backends[ACCOUNT][REGION].send_message(name, body)


def _depth(name: str) -> int:
    from moto.sqs.models import sqs_backends

    return len(sqs_backends[ACCOUNT][REGION].get_queue(name)._messages)


def _receive(name: str) -> list[str]:
    from moto.sqs.models import sqs_backends

    messages = sqs_backends[ACCOUNT][REGION].receive_message(name, 10, 0, 30)
    return [message.body for message in messages]


def _stream(name: str) -> str:
    from moto.kinesis.models import kinesis_backends

    return str(kinesis_backends[ACCOUNT][REGION].create_stream(name, shard_count=1).arn)


def _put_record(stream_arn: str, data: bytes, age_seconds: float = 0.0) -> tuple[str, str]:
    """Put a record that arrived `age_seconds` ago. Returns its shard id and sequence number."""
    from moto.kinesis.models import kinesis_backends

    backend = kinesis_backends[ACCOUNT][REGION]
    sequence, shard_id = backend.put_record(stream_arn, "", "key", "", data)
    record = backend.describe_stream(stream_arn, "").shards[shard_id].records[int(sequence)]
    record.created_at -= datetime.timedelta(seconds=age_seconds)
    return shard_id, sequence


async def _wait_until(condition: Any, seconds: float = 10.0) -> None:
    with trio.fail_after(seconds):
        # The conditions read pool state that offers no event to wait on.
        while not condition():  # noqa: ASYNC110
            await trio.sleep(0.01)


@pytest.fixture
async def simulator(tmp_path: Path) -> AsyncIterator[tuple[lambdasim.Simulator, Recorder]]:
    recorder = Recorder()
    backend = FakeBackend(handler=recorder.handler, start_delay=0.01)
    services = EmbeddedServices(account_id=ACCOUNT, region=REGION)
    config = lambdasim.Config.from_env({}, data_dir=tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(backend.run)
        async with lambdasim.open_simulator(config, backend=backend, services=services) as sim:
            # Build moto's application as the server does, with lambdasim's moto fixes.
            await services.load()
            yield sim, recorder
        nursery.cancel_scope.cancel()


async def _create(sim: lambdasim.Simulator, queue_arn: str, **request: Any) -> EventSourceMapping:
    role = await sim.services.run_sync(_role_arn, sim.services)
    name = f"library-{uuid.uuid4().hex[:8]}"
    await sim.create_function(
        lambdasim.Function(name, "python3.12", "app.handler", role, code=make_zip({"app.py": ""}))
    )
    mapping = await sim.event_sources.create(FunctionName=name, EventSourceArn=queue_arn, **request)
    assert mapping.state == "Creating"
    await mapping.wait_settled()
    return mapping


async def test_mapping_lifecycle_states(simulator: tuple[lambdasim.Simulator, Recorder]) -> None:
    sim, recorder = simulator
    queue = f"lifecycle-{uuid.uuid4().hex[:8]}"
    arn = await sim.services.run_sync(_queue, queue)

    mapping = await _create(sim, arn, BatchSize=5)
    assert mapping.state == "Enabled"
    assert mapping.poller is not None
    await sim.services.run_sync(_send, queue, *(f"m{i}" for i in range(12)))
    await _wait_until(lambda: len(recorder.bodies) == 12)
    await _wait_until(lambda: _depth(queue) == 0)

    disabled = await sim.event_sources.update(mapping.uuid, Enabled=False)
    assert disabled.state == "Disabling"
    await mapping.wait_settled()
    assert mapping.state == "Disabled"
    assert mapping.poller is None
    await sim.services.run_sync(_send, queue, "held")
    await trio.sleep(0.3)
    assert len(recorder.bodies) == 12
    assert await sim.services.run_sync(_depth, queue) == 1

    await sim.event_sources.update(mapping.uuid, Enabled=True)
    await mapping.wait_settled()
    await _wait_until(lambda: "held" in recorder.bodies)

    deleting = await sim.event_sources.delete(mapping.uuid)
    assert deleting.state == "Deleting"
    await mapping.wait_settled()
    with pytest.raises(lambdasim.ResourceNotFoundException):
        sim.event_sources.get(mapping.uuid)
    assert sorted(recorder.bodies) == sorted([f"m{i}" for i in range(12)] + ["held"])


async def test_update_applies_to_running_poller(
    simulator: tuple[lambdasim.Simulator, Recorder],
) -> None:
    sim, recorder = simulator
    queue = f"resized-{uuid.uuid4().hex[:8]}"
    arn = await sim.services.run_sync(_queue, queue)
    mapping = await _create(sim, arn, BatchSize=1)
    poller = mapping.poller

    updated = await sim.event_sources.update(mapping.uuid, BatchSize=10)
    assert updated.state == "Updating"
    await mapping.wait_settled()
    await sim.services.run_sync(_send, queue, *(f"n{i}" for i in range(10)))
    await _wait_until(lambda: len(recorder.bodies) == 10)

    assert mapping.poller is poller
    assert mapping.state == "Enabled"
    assert recorder.invocations <= 2
    assert sorted(recorder.bodies) == sorted(f"n{i}" for i in range(10))


async def test_record_age_limit_skips_old(simulator: tuple[lambdasim.Simulator, Recorder]) -> None:
    sim, recorder = simulator
    stream_arn = await sim.services.run_sync(_stream, f"ages-{uuid.uuid4().hex[:8]}")
    failures = f"failures-{uuid.uuid4().hex[:8]}"
    failures_arn = await sim.services.run_sync(_queue, failures)
    # The smallest MaximumRecordAgeInSeconds is 60, so the record is put 120 s in the past.
    shard_id, old_sequence = await sim.services.run_sync(_put_record, stream_arn, b"old", 120.0)

    await _create(
        sim,
        stream_arn,
        StartingPosition="TRIM_HORIZON",
        MaximumRecordAgeInSeconds=60,
        DestinationConfig={"OnFailure": {"Destination": failures_arn}},
    )
    await _wait_until(lambda: _depth(failures) == 1)
    await sim.services.run_sync(_put_record, stream_arn, b"new")
    await _wait_until(lambda: recorder.bodies == ["new"])
    messages = _receive(failures)

    assert recorder.bodies == ["new"]
    assert len(messages) == 1
    document = json.loads(messages[0])
    assert document["requestContext"]["condition"] == "RecordAgeExceeded"
    assert document["requestContext"]["approximateInvokeCount"] == 0
    info = document["KinesisBatchInfo"]
    assert info["shardId"] == shard_id
    assert info["startSequenceNumber"] == old_sequence
    assert info["endSequenceNumber"] == old_sequence
    assert info["batchSize"] == 1
    assert info["streamArn"] == stream_arn
