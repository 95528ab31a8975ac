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

    `submit` does not block, because the channel is unbounded. One task writes batches
    in a worker thread. Start it
    with `nursery.start(writer.run)`.
    """

    services: EmbeddedServices
    _send: trio.MemorySendChannel[tuple[str, str, InvocationLog]] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[tuple[str, str, InvocationLog]] = attrs.field(init=False)
    _streams: set[tuple[str, str]] = attrs.field(factory=set, init=False)

    def __attrs_post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel(math.inf)

    def submit(self, group: str, stream: str, log: InvocationLog) -> None:
        self._send.send_nowait((group, stream, log))

    async def run(
        self, *, task_status: trio.TaskStatus[LogWriter] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started(self)
        async for first in self._receive:
            batch = [first]
            while True:
                try:
                    batch.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            try:
                await self.services.run_sync(self._write, batch)
            except Exception:
                logger.exception(
                    "could not write %d invocation logs to CloudWatch Logs", len(batch)
                )

    def _write(self, batch: list[tuple[str, str, InvocationLog]]) -> None:
        from moto.logs.exceptions import ResourceAlreadyExistsException
        from moto.logs.models import logs_backends

        backend = logs_backends[self.services.account_id][self.services.region]
        for group, stream, log in batch:
            if (group, stream) not in self._streams:
                if group not in backend.groups:
                    try:
                        backend.create_log_group(group, {})
                    except ResourceAlreadyExistsException:
                        pass
                try:
                    backend.create_log_stream(group, stream)
                except ResourceAlreadyExistsException:
                    pass
                self._streams.add((group, stream))
            events = [{"timestamp": ts, "message": message} for ts, message in log.events]
            try:
                backend.put_log_events(group, stream, events)
            except Exception:
                # The group or stream was deleted through the API: create it again.
                self._streams.discard((group, stream))
                if group not in backend.groups:
                    backend.create_log_group(group, {})
                if stream not in backend.groups[group].streams:
                    backend.create_log_stream(group, stream)
                backend.put_log_events(group, stream, events)
                self._streams.add((group, stream))
