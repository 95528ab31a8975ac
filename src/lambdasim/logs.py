"""Function logs as AWS writes them: per-invocation START/END/REPORT lines, the
function's own output, and CloudWatch Logs streams in the embedded services.

Runtimes write part of an invocation's output after they post its response:
nothing in the Runtime API marks the end of the output. An invocation's log is
therefore kept open until its container's output has been quiet for
`QUIET_SECONDS` (at most `MAX_DRAIN_SECONDS`), or until the environment's next
invocation starts.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import attrs
import trio

from .services import EmbeddedServices

logger = logging.getLogger("lambdasim.logs")

#: Output quiet for this long ends an invocation's log.
QUIET_SECONDS = 0.02
#: An invocation's log closes at the latest this long after its response.
MAX_DRAIN_SECONDS = 0.1
#: `LogType=Tail` returns at most this many bytes from the end of the log.
TAIL_BYTES = 4096
#: Finished logs wait this long for others before they are written together.
FLUSH_SECONDS = 0.05
#: The maximum number of events in one PutLogEvents call, as on AWS.
MAX_EVENTS_PER_PUT = 10_000


@attrs.define(eq=False)
class InvocationLog:
    """The log lines of one invocation, with the figures of its REPORT line."""

    request_id: str
    version: str
    memory_size: int
    #: (epoch milliseconds, message) pairs in arrival order.
    events: list[tuple[int, str]] = attrs.field(factory=list)
    duration_ms: float | None = None
    init_duration_ms: float | None = None
    max_memory_used_mb: int | None = None
    last_output: float = attrs.field(factory=lambda: -math.inf)
    closed: bool = False
    done: trio.Event = attrs.field(factory=trio.Event)

    def add(self, message: str) -> None:
        if not self.closed:
            self.events.append((int(time.time() * 1000), message))

    def start(self) -> None:
        self.add(f"START RequestId: {self.request_id} Version: {self.version}")

    def close(self) -> None:
        """Append END and REPORT; later output is dropped."""
        if self.closed:
            return
        self.add(f"END RequestId: {self.request_id}")
        duration = self.duration_ms or 0.0
        report = (
            f"REPORT RequestId: {self.request_id}\tDuration: {duration:.2f} ms\t"
            f"Billed Duration: {max(1, math.ceil(duration))} ms\t"
            f"Memory Size: {self.memory_size} MB\t"
            f"Max Memory Used: {self.max_memory_used_mb or 0} MB\t"
        )
        if self.init_duration_ms is not None:
            report += f"Init Duration: {self.init_duration_ms:.2f} ms\t"
        self.add(report)
        self.closed = True
        self.done.set()

    def text(self) -> str:
        return "".join(f"{message}\n" for _, message in self.events)

    def tail(self) -> bytes:
        """Return the last `TAIL_BYTES` bytes of the log, cut at a character boundary."""
        data = self.text().encode()
        if len(data) <= TAIL_BYTES:
            return data
        cut = data[-TAIL_BYTES:]
        return cut.decode(errors="ignore").encode()


#: Called with the log group, the stream and the finished log.
LogSink = Callable[[str, str, InvocationLog], None]


@attrs.define(eq=False)
class LogWriter:
    """Writes finished invocation logs to CloudWatch Logs in the embedded services.

    `submit` does not block. It appends the log's events to its stream's pending
    list. One task writes everything pending in a worker thread, `flush_seconds`
    after the first pending log, with one PutLogEvents call per stream. Under load
    many invocations then share one thread hop and one call per stream, which
    matters because moto's PutLogEvents has a high fixed cost per call. Start the
    task with `nursery.start(writer.run)`.
    """

    services: EmbeddedServices
    flush_seconds: float = FLUSH_SECONDS
    _pending: dict[tuple[str, str], list[tuple[int, str]]] = attrs.field(factory=dict, init=False)
    _wake: trio.Event = attrs.field(factory=trio.Event, init=False)
    _streams: set[tuple[str, str]] = attrs.field(factory=set, init=False)

    def submit(self, group: str, stream: str, log: InvocationLog) -> None:
        events = self._pending.get((group, stream))
        if events is None:
            self._pending[(group, stream)] = list(log.events)
        else:
            events.extend(log.events)
        self._wake.set()

    async def run(
        self, *, task_status: trio.TaskStatus[LogWriter] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started(self)
        while True:
            await self._wake.wait()
            await trio.sleep(self.flush_seconds)
            self._wake = trio.Event()
            batch, self._pending = self._pending, {}
            try:
                await self.services.run_sync(self._write, batch)
            except Exception:
                logger.exception(
                    "could not write the logs of %d streams to CloudWatch Logs", len(batch)
                )

    def _write(self, batch: dict[tuple[str, str], list[tuple[int, str]]]) -> None:
        from moto.logs.models import logs_backends

        backend = logs_backends[self.services.account_id][self.services.region]
        for (group, stream), events in batch.items():
            # PutLogEvents rejects a batch whose timestamps go back, and the wall clock
            # may go back. The sort is stable, so lines of one instant keep their order.
            events.sort(key=_timestamp)
            try:
                for first in range(0, len(events), MAX_EVENTS_PER_PUT):
                    self._put(backend, group, stream, events[first : first + MAX_EVENTS_PER_PUT])
            except Exception:
                logger.exception(
                    "could not write %d log events to %s stream %s", len(events), group, stream
                )

    def _put(self, backend: Any, group: str, stream: str, events: list[tuple[int, str]]) -> None:
        documents = [{"timestamp": timestamp, "message": message} for timestamp, message in events]
        if (group, stream) not in self._streams:
            self._create_stream(backend, group, stream)
        try:
            backend.put_log_events(group, stream, documents)
        except Exception:
            # The group or stream was deleted through the API, so create it again.
            self._create_stream(backend, group, stream)
            backend.put_log_events(group, stream, documents)

    def _create_stream(self, backend: Any, group: str, stream: str) -> None:
        if group not in backend.groups:
            backend.create_log_group(group, {})
        if stream not in backend.groups[group].streams:
            backend.create_log_stream(group, stream)
        self._streams.add((group, stream))


def _timestamp(event: tuple[int, str]) -> int:
    return event[0]
