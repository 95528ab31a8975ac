"""LogWriter against the embedded CloudWatch Logs: batching, order and recovery."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from lambdasim.logs import InvocationLog, LogWriter
from lambdasim.services import EmbeddedServices

ACCOUNT, REGION = "000000000000", "us-east-1"


@pytest.fixture
async def writer() -> AsyncIterator[LogWriter]:
    services = EmbeddedServices(account_id=ACCOUNT, region=REGION)
    writer = LogWriter(services, flush_seconds=0.01)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        yield writer
        nursery.cancel_scope.cancel()


def _backend() -> Any:
    from moto.logs.models import logs_backends

    return logs_backends[ACCOUNT][REGION]


def _messages(group: str, stream: str) -> list[str]:
    events = _backend().groups[group].streams[stream].events
    return [event.message for event in events]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _log(request_id: str, lines: list[tuple[int, str]]) -> InvocationLog:
    log = InvocationLog(request_id, "$LATEST", 128)
    log.events.extend(lines)
    return log


async def _wait_for_events(group: str, stream: str, count: int) -> list[str]:
    with trio.fail_after(5):
        while True:
            groups = _backend().groups
            if group in groups and stream in groups[group].streams:
                messages = _messages(group, stream)
                if len(messages) >= count:
                    return messages
            await trio.sleep(0.01)


async def test_one_put_per_stream(writer: LogWriter) -> None:
    group = f"/aws/lambda/writer-{uuid.uuid4().hex[:8]}"
    calls: list[tuple[str, str, int]] = []
    backend = _backend()
    put = backend.put_log_events

    def counting_put(group_name: str, stream_name: str, events: list[Any]) -> Any:
        calls.append((group_name, stream_name, len(events)))
        return put(group_name, stream_name, events)

    backend.put_log_events = counting_put
    now = _now_ms()
    try:
        writer.submit(group, "a", _log("r1", [(now, "one"), (now + 1, "two")]))
        writer.submit(group, "a", _log("r2", [(now + 2, "three")]))
        writer.submit(group, "b", _log("r3", [(now + 3, "other")]))
        messages = await _wait_for_events(group, "a", 3)
        await _wait_for_events(group, "b", 1)
    finally:
        del backend.put_log_events

    assert messages == ["one", "two", "three"]
    assert sorted(calls) == [(group, "a", 3), (group, "b", 1)]


async def test_clock_going_back_is_sorted(writer: LogWriter) -> None:
    group = f"/aws/lambda/writer-{uuid.uuid4().hex[:8]}"
    now = _now_ms()

    writer.submit(group, "s", _log("r1", [(now, "first"), (now + 5, "second")]))
    writer.submit(group, "s", _log("r2", [(now + 2, "after the clock moved back")]))
    messages = await _wait_for_events(group, "s", 3)

    assert messages == ["first", "after the clock moved back", "second"]


async def test_deleted_group_is_created_again(writer: LogWriter) -> None:
    group = f"/aws/lambda/writer-{uuid.uuid4().hex[:8]}"
    writer.submit(group, "s", _log("r1", [(_now_ms(), "before")]))
    await _wait_for_events(group, "s", 1)

    _backend().delete_log_group(group)
    writer.submit(group, "s", _log("r2", [(_now_ms(), "after")]))
    messages = await _wait_for_events(group, "s", 1)

    assert messages == ["after"]
