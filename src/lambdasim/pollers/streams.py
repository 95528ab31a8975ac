"""The stream poller: Kinesis and DynamoDB streams, shard by shard, in order.

Theory of operation
-------------------

`StreamPoller` lists the stream's shards every `SHARD_DISCOVERY_INTERVAL`
seconds and runs one task per shard. A shard that was split or merged from others
starts once its parents have been read to the end. A shard task reads records
after the shard's checkpoint and hands each to one of `ParallelizationFactor`
lanes. A hash of the record's partition key (the item's key for DynamoDB) picks
the lane, so records with equal keys stay in order while lanes run side by side.
A lane takes up to BatchSize records within the batching window and invokes the
function.

A failed batch is retried, after a pause that doubles from `RETRY_DELAY` to
`MAX_RETRY_DELAY`, until `MaximumRetryAttempts` retries or `MaximumRecordAgeInSeconds`
run out. Then its records are discarded and, when the mapping has an on-failure
destination, AWS's invocation record goes to that queue or topic. With
`BisectBatchOnFunctionError` a failed batch is split in two halves first, which
does not count as a retry. With `ReportBatchItemFailures` the records before the
lowest reported sequence number count as done and the rest is retried. Throttles
are retried until the records are too old, without counting as retries.

Each shard's checkpoint is the sequence number up to which every record is done
(processed, discarded or filtered out). It is stored in the mapping, so a
restarted poller resumes after it. Records after it that parallel lanes had
finished are processed again, which AWS's at-least-once delivery allows.

With `TumblingWindowInSeconds`, each lane groups records into windows by their
arrival time. The `state` the function returned goes with the next batch of the
same window. A window closes with an invocation whose `isFinalInvokeForWindow`
is true and whose `Records` are empty.
"""

from __future__ import annotations

import collections
import datetime
import json
import logging
import math
import time
from typing import Any

import attrs
import trio

from .destinations import failure_record, send_failure_record
from .dynamodb import DynamoDBStreamReader
from .kinesis import KinesisReader
from .poller import MAX_PAYLOAD_BYTES, Poller, encode_event, failed_item_ids
from .settings import EventSource, SourceKind
from .stream_records import ShardInfo, StreamRecord

logger = logging.getLogger("lambdasim.poller")

#: Seconds between listings of a stream's shards.
SHARD_DISCOVERY_INTERVAL = 1.0
#: Seconds between reads of a shard that had no new records: the first pause, and the longest.
MIN_EMPTY_READ_DELAY = 0.01
MAX_EMPTY_READ_DELAY = 0.25
#: Seconds before the first retry of a failed batch; the pause doubles up to the maximum.
RETRY_DELAY = 0.1
MAX_RETRY_DELAY = 2.0
#: Most records one read of a shard returns.
MAX_READ = 10000

StreamReader = KinesisReader | DynamoDBStreamReader


def stream_reader(source: EventSource) -> StreamReader:
    if source.kind is SourceKind.KINESIS:
        return KinesisReader(source)
    return DynamoDBStreamReader(source)


def stream_exists(source: EventSource) -> bool:
    """Tell whether the stream of `source` exists. Blocking: call it in a worker thread."""
    return stream_reader(source).exists()


def _iso_seconds(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class ShardCheckpoint:
    """The position up to which every record of one shard is done.

    Records are dispatched in sequence order and may complete in any order when
    lanes run in parallel. The position moves past a record only once it and all
    records before it are done.
    """

    def __init__(self, position: int) -> None:
        self.position = position
        self._pending: collections.deque[int] = collections.deque()
        self._done: set[int] = set()

    def dispatch(self, sequence: int) -> None:
        self._pending.append(sequence)

    def complete(self, sequence: int) -> None:
        self._done.add(sequence)
        while self._pending and self._pending[0] in self._done:
            self.position = self._pending.popleft()
            self._done.discard(self.position)


@attrs.define
class _Window:
    """The open tumbling window of one lane."""

    start: float
    length: int
    state: Any = attrs.field(factory=dict)

    @property
    def end(self) -> float:
        return self.start + self.length

    def contains(self, record: StreamRecord) -> bool:
        return self.start <= record.arrival < self.end


@attrs.define(eq=False)
class _Lane:
    """One lane of a shard: its channel of records and the records kept for later batches."""

    receive: trio.MemoryReceiveChannel[StreamRecord]
    #: Records taken from the channel that belong to a later batch, in order.
    held: collections.deque[StreamRecord] = attrs.field(factory=collections.deque)
    window: _Window | None = None


@attrs.define(eq=False)
class StreamPoller(Poller):
    """Reads one Kinesis or DynamoDB stream and invokes the mapping's function."""

    _reader: StreamReader = attrs.field(init=False)
    _running: set[str] = attrs.field(factory=set, init=False)
    _shard_done: dict[str, trio.Event] = attrs.field(factory=dict, init=False)
    _problem_logged: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        self._reader = stream_reader(self.mapping.source)

    @property
    def source(self) -> EventSource:
        return self.mapping.source

    # Shards -------------------------------------------------------------------------

    async def _prepare(self) -> None:
        # Positions are fixed before the mapping counts as enabled, so LATEST
        # includes every record put after that.
        shards = await self._list_shards()
        for shard in shards:
            if shard.shard_id not in self.mapping.checkpoints:
                position = await self.simulator.services.run_sync(
                    self._starting_position, shard.shard_id
                )
                self.mapping.checkpoints[shard.shard_id] = position

    def _starting_position(self, shard_id: str) -> int:
        settings = self.mapping.settings
        if settings.starting_position == "LATEST":
            return self._reader.latest(shard_id)
        if settings.starting_position == "AT_TIMESTAMP":
            assert settings.starting_position_timestamp is not None
            return self._reader.at_timestamp(shard_id, settings.starting_position_timestamp)
        return self._reader.trim_horizon(shard_id)

    async def _list_shards(self) -> list[ShardInfo]:
        try:
            shards = await self.simulator.services.run_sync(self._reader.shards)
        except LookupError as exc:
            self._log_problem(exc)
            return []
        self._problem_logged = False
        return shards

    def _log_problem(self, exc: Exception) -> None:
        # A deleted stream would log on every poll; once until it works again is enough.
        if not self._problem_logged:
            logger.warning(
                "mapping %s: reading %s failed: %s", self.mapping.uuid, self.source.arn, exc
            )
            self.mapping.last_processing_result = f"PROBLEM: {exc}"
            self._problem_logged = True

    async def _poll(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                shards = await self._list_shards()
                listed = {shard.shard_id for shard in shards}
                for shard in shards:
                    if shard.shard_id in self._running:
                        continue
                    if shard.shard_id not in self.mapping.checkpoints:
                        # A shard created after the poller started, by resharding,
                        # is read from its first record.
                        self.mapping.checkpoints[
                            shard.shard_id
                        ] = await self.simulator.services.run_sync(
                            self._reader.trim_horizon, shard.shard_id
                        )
                    self._running.add(shard.shard_id)
                    self._shard_done.setdefault(shard.shard_id, trio.Event())
                    parents = [p for p in shard.parents if p in listed]
                    for parent in parents:
                        self._shard_done.setdefault(parent, trio.Event())
                    nursery.start_soon(self._run_shard, shard.shard_id, parents)
                await trio.sleep(SHARD_DISCOVERY_INTERVAL)

    async def _run_shard(self, shard_id: str, parents: list[str]) -> None:
        for parent in parents:
            await self._shard_done[parent].wait()
        checkpoint = ShardCheckpoint(self.mapping.checkpoints[shard_id])
        settings = self.mapping.settings
        sends = []
        async with trio.open_nursery() as nursery:
            for _ in range(settings.parallelization_factor):
                send, receive = trio.open_memory_channel[StreamRecord](settings.batch_size)
                sends.append(send)
                nursery.start_soon(self._run_lane, shard_id, _Lane(receive), checkpoint)
            try:
                await self._read_shard(shard_id, sends, checkpoint)
            finally:
                # The lanes finish the records they have, then end.
                for send in sends:
                    send.close()
        logger.info("mapping %s: shard %s read to its end", self.mapping.uuid, shard_id)
        self._shard_done[shard_id].set()

    async def _read_shard(
        self,
        shard_id: str,
        sends: list[trio.MemorySendChannel[StreamRecord]],
        checkpoint: ShardCheckpoint,
    ) -> None:
        """Hand the shard's records to the lanes until the shard is closed and read."""
        position = checkpoint.position
        delay = MIN_EMPTY_READ_DELAY
        while True:
            settings = self.mapping.settings
            identity = self._identity_arn()
            limit = min(MAX_READ, settings.batch_size * len(sends))
            try:
                records, closed = await self.simulator.services.run_sync(
                    self._reader.read, shard_id, position, limit, identity
                )
            except LookupError as exc:
                self._log_problem(exc)
                await trio.sleep(MAX_EMPTY_READ_DELAY)
                continue
            if not records:
                if closed:
                    return
                await trio.sleep(delay)
                delay = min(delay * 2, MAX_EMPTY_READ_DELAY)
                continue
            delay = MIN_EMPTY_READ_DELAY
            criteria = settings.filter_criteria
            for record in records:
                position = record.sequence
                checkpoint.dispatch(record.sequence)
                if criteria is not None and not criteria.matches(
                    self._reader.filter_view(record.record)
                ):
                    self._complete(shard_id, checkpoint, [record])
                    continue
                lane = sends[record.lane_key % len(sends)]
                try:
                    # No checkpoint per record: the lane gets every record of this
                    # read before it takes its batch, as from one GetRecords call.
                    lane.send_nowait(record)
                except trio.WouldBlock:
                    await lane.send(record)

    def _identity_arn(self) -> str:
        try:
            return self.simulator.resolve(self.mapping.function_arn).deployed.function.role
        except Exception:
            return ""

    def _complete(
        self, shard_id: str, checkpoint: ShardCheckpoint, records: list[StreamRecord]
    ) -> None:
        for record in records:
            checkpoint.complete(record.sequence)
        self.mapping.checkpoints[shard_id] = checkpoint.position

    # Lanes --------------------------------------------------------------------------

    async def _run_lane(self, shard_id: str, lane: _Lane, checkpoint: ShardCheckpoint) -> None:
        while True:
            settings = self.mapping.settings
            if settings.tumbling_window:
                batch = await self._next_windowed_batch(shard_id, lane, settings.tumbling_window)
            else:
                batch = await self._next_batch(lane)
            if batch is None:
                if lane.window is not None:
                    await self._close_window(shard_id, lane)
                return
            if batch:
                await self._process(shard_id, batch, lane.window)
                self._complete(shard_id, checkpoint, batch)

    async def _next_batch(
        self, lane: _Lane, *, first_by: float = math.inf
    ) -> list[StreamRecord] | None:
        """Take up to BatchSize records within the batching window.

        Returns None when the shard has ended, and an empty list when no record
        arrived before trio time `first_by`.
        """
        first = lane.held.popleft() if lane.held else None
        if first is None:
            with trio.move_on_at(first_by):
                try:
                    first = await lane.receive.receive()
                except trio.EndOfChannel:
                    return None
            if first is None:
                return []
        settings = self.mapping.settings
        batch, size = [first], first.size
        deadline = trio.current_time() + settings.maximum_batching_window
        while len(batch) < settings.batch_size:
            record = await self._next_record(lane, deadline)
            if record is None:
                break
            if size + record.size > MAX_PAYLOAD_BYTES:
                lane.held.appendleft(record)
                break
            batch.append(record)
            size += record.size
        return batch

    async def _next_record(self, lane: _Lane, deadline: float) -> StreamRecord | None:
        """Return a held or queued record, waiting until trio time `deadline` at most."""
        if lane.held:
            return lane.held.popleft()
        try:
            return lane.receive.receive_nowait()
        except trio.EndOfChannel:
            return None
        except trio.WouldBlock:
            pass
        with trio.move_on_at(deadline):
            try:
                return await lane.receive.receive()
            except trio.EndOfChannel:
                return None
        return None

    async def _next_windowed_batch(
        self, shard_id: str, lane: _Lane, length: int
    ) -> list[StreamRecord] | None:
        """Take the next batch of the lane's tumbling window, closing windows as they end."""
        while True:
            first_by = math.inf
            if lane.window is not None:
                first_by = trio.current_time() + max(0.0, lane.window.end - time.time())
            batch = await self._next_batch(lane, first_by=first_by)
            if batch is None:
                return None
            if not batch:
                await self._close_window(shard_id, lane)
                continue
            if lane.window is None:
                start = math.floor(batch[0].arrival / length) * length
                lane.window = _Window(start, length)
            window = lane.window
            cut = next(
                (index for index, record in enumerate(batch) if not window.contains(record)),
                len(batch),
            )
            if cut < len(batch):
                # Records of a later window wait until this window has closed.
                lane.held.extendleft(reversed(batch[cut:]))
                batch = batch[:cut]
            if batch:
                return batch
            await self._close_window(shard_id, lane)

    async def _close_window(self, shard_id: str, lane: _Lane) -> None:
        assert lane.window is not None
        await self._process(shard_id, [], lane.window, final=True)
        lane.window = None

    # Batches ------------------------------------------------------------------------

    def _event(
        self, shard_id: str, records: list[StreamRecord], window: _Window | None, final: bool
    ) -> bytes:
        event: dict[str, Any] = {"Records": [record.record for record in records]}
        if window is not None:
            event.update(
                {
                    "window": {
                        "start": _iso_seconds(window.start),
                        "end": _iso_seconds(window.end),
                    },
                    "state": window.state,
                    "shardId": shard_id,
                    "eventSourceARN": self.source.arn,
                    "isFinalInvokeForWindow": final,
                    "isWindowTerminatedEarly": False,
                }
            )
        return encode_event(event)

    def _expires_at(self, records: list[StreamRecord]) -> float:
        """Return the trio time at which the oldest record exceeds MaximumRecordAgeInSeconds."""
        age = self.mapping.settings.maximum_record_age
        if age < 0 or not records:
            return math.inf
        oldest = min(record.arrival for record in records)
        return trio.current_time() + (oldest + age - time.time())

    async def _process(
        self,
        shard_id: str,
        records: list[StreamRecord],
        window: _Window | None,
        *,
        final: bool = False,
    ) -> None:
        """Deliver one batch, retrying, bisecting and discarding it as the settings require."""
        pending: collections.deque[tuple[list[StreamRecord], int]] = collections.deque(
            [(records, 0)]
        )
        while pending:
            batch, retries = pending.popleft()
            settings = self.mapping.settings
            expires_at = self._expires_at(batch)
            if trio.current_time() >= expires_at:
                await self._discard(shard_id, batch, "RecordAgeExceeded", retries, None)
                continue
            result = await self.invoke(
                self._event(shard_id, batch, window, final), give_up_at=expires_at
            )
            if result is None:
                await self._discard(shard_id, batch, "RecordAgeExceeded", retries, None)
                continue
            failed_from = self._first_failure(batch, result, window)
            if failed_from == len(batch) and not (final and result.function_error):
                self.mapping.last_processing_result = "OK"
                continue
            self.mapping.last_processing_result = "PROBLEM: Function call failed"
            # Records before the first reported failure are done.
            batch = batch[failed_from:]
            if settings.bisect_batch_on_function_error and len(batch) > 1:
                half = len(batch) // 2
                pending.appendleft((batch[half:], retries))
                pending.appendleft((batch[:half], retries))
                continue
            limit = settings.maximum_retry_attempts
            if limit >= 0 and retries >= limit:
                await self._discard(shard_id, batch, "RetryAttemptsExhausted", retries + 1, result)
                continue
            await trio.sleep(min(RETRY_DELAY * 2**retries, MAX_RETRY_DELAY))
            pending.appendleft((batch, retries + 1))

    def _first_failure(self, batch: list[StreamRecord], result: Any, window: _Window | None) -> int:
        """Return the index of the first record to retry; `len(batch)` when none."""
        if result.function_error:
            return 0
        response: Any = None
        if window is not None:
            try:
                response = json.loads(result.payload)
            except ValueError:
                return 0
            if not isinstance(response, dict) or not isinstance(response.get("state"), dict):
                # A windowed invocation must return its state.
                return 0
            window.state = response["state"]
        if not self.mapping.settings.reports_batch_item_failures or not batch:
            return len(batch)
        by_id = {str(record.sequence): index for index, record in enumerate(batch)}
        failed = failed_item_ids(result.payload, set(by_id))
        if failed is None:
            return 0
        if not failed:
            return len(batch)
        return min(by_id[identifier] for identifier in failed)

    async def _discard(
        self,
        shard_id: str,
        batch: list[StreamRecord],
        condition: str,
        invoke_count: int,
        result: Any,
    ) -> None:
        logger.warning(
            "mapping %s: discarding %d records of %s (%s)",
            self.mapping.uuid,
            len(batch),
            shard_id,
            condition,
        )
        destination = self.mapping.settings.on_failure_destination
        if not destination or not batch:
            return
        document = failure_record(
            function_arn=self.mapping.function_arn,
            condition=condition,
            invoke_count=invoke_count,
            result=result,
            batch_info_key=self._reader.batch_info_key,
            shard_id=shard_id,
            stream_arn=self.source.arn,
            first=(batch[0].sequence, batch[0].arrival),
            last=(batch[-1].sequence, batch[-1].arrival),
            batch_size=len(batch),
            now=time.time(),
        )
        try:
            await self.simulator.services.run_sync(send_failure_record, destination, document)
        except Exception:
            logger.exception(
                "mapping %s: could not send the failure record to %s",
                self.mapping.uuid,
                destination,
            )
