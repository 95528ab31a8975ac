"""The SQS poller: batches of queue messages, invocations and deletes.

The poller reads the embedded SQS through moto's backend in worker threads. It
never long-polls a thread: each ReceiveMessage returns at once, and an empty
queue is polled again after a trio sleep that grows while the queue stays empty.

Concurrency follows AWS's shape at a smaller scale. One batch is in flight at
first. Each full batch allows one more concurrent batch, up to
`ScalingConfig.MaximumConcurrency` or `DEFAULT_MAX_CONCURRENCY`, and each empty
receive lowers the limit by one again.

Outcome of an invocation, as on AWS:

- success: the batch's messages are deleted;
- function error, or throttling past the visibility timeout: nothing is deleted,
  so the messages become visible again after the queue's visibility timeout. The
  queue's redrive policy moves them to its dead-letter queue after
  `maxReceiveCount` receives (moto does that when it receives them);
- with `ReportBatchItemFailures`: every message except the reported ones is
  deleted, and an invalid report fails the whole batch;
- messages that match no filter are deleted without an invocation.
"""

from __future__ import annotations

import base64
import logging
import math
from typing import Any

import attrs
import trio

from .filters import FilterCriteria, decode_json_object
from .poller import MAX_PAYLOAD_BYTES, Poller, encode_event, failed_item_ids
from .settings import EventSource

logger = logging.getLogger("lambdasim.poller")

#: Concurrent batches per mapping when `ScalingConfig` sets no maximum.
# NOTE: AWS scales an SQS mapping up to 1,250 concurrent invocations with a
# backlog; lambdasim stops at this many to spare the host's containers.
DEFAULT_MAX_CONCURRENCY = 5
#: Seconds between receives of an empty queue: the first pause, and the longest.
MIN_EMPTY_POLL_DELAY = 0.01
MAX_EMPTY_POLL_DELAY = 0.5
#: Seconds between receives while a batching window is filling.
WINDOW_POLL_DELAY = 0.05


@attrs.frozen
class ReceivedMessage:
    """One received message: its Lambda record and what deleting it takes."""

    message_id: str
    receipt_handle: str
    record: dict[str, Any] = attrs.field(repr=False)
    size: int


def _message_attribute(attribute: dict[str, Any]) -> dict[str, Any]:
    rendered: dict[str, Any] = {}
    if attribute.get("StringValue") is not None:
        rendered["stringValue"] = attribute["StringValue"]
    binary = attribute.get("BinaryValue")
    if binary is not None:
        rendered["binaryValue"] = (
            base64.b64encode(binary).decode() if isinstance(binary, bytes) else binary
        )
    rendered["stringListValues"] = []
    rendered["binaryListValues"] = []
    rendered["dataType"] = attribute.get("DataType")
    return rendered


def sqs_record(message: Any, source: EventSource) -> dict[str, Any]:
    """Return the Lambda event record of a moto SQS message, as AWS sends it.

    Every attribute value is a string and the body is the text as sent. Message
    attributes use camelCase keys with empty list members, and
    `md5OfMessageAttributes` is null when the message has none.
    """
    attributes: dict[str, str] = {}
    trace = (message.system_attributes or {}).get("AWSTraceHeader")
    if trace and trace.get("StringValue"):
        attributes["AWSTraceHeader"] = trace["StringValue"]
    attributes["ApproximateReceiveCount"] = str(message.approximate_receive_count)
    attributes["SentTimestamp"] = str(message.sent_timestamp)
    if message.sequence_number is not None:
        attributes["SequenceNumber"] = message.sequence_number
    if message.group_id is not None:
        attributes["MessageGroupId"] = message.group_id
    attributes["SenderId"] = message.sender_id
    if message.deduplication_id is not None:
        attributes["MessageDeduplicationId"] = message.deduplication_id
    attributes["ApproximateFirstReceiveTimestamp"] = str(
        message.approximate_first_receive_timestamp
    )
    message_attributes = {
        name: _message_attribute(value) for name, value in message.message_attributes.items()
    }
    return {
        "messageId": message.id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfMessageAttributes": message.attribute_md5 if message_attributes else None,
        "md5OfBody": message.body_md5,
        "eventSource": "aws:sqs",
        "eventSourceARN": source.arn,
        "awsRegion": source.region,
    }


def filter_view(record: dict[str, Any]) -> dict[str, Any]:
    """Return the record as filter patterns see it: a JSON-object body decoded."""
    body = decode_json_object(record["body"])
    if body is None:
        return record
    return {**record, "body": body}


def queue_exists(source: EventSource) -> bool:
    """Tell whether the queue of `source` exists. Blocking: call it in a worker thread."""
    from moto.sqs.models import sqs_backends

    return source.name in sqs_backends[source.account_id][source.region].queues


def _receive(source: EventSource, count: int) -> tuple[list[ReceivedMessage], int]:
    """Receive up to `count` messages; also return the queue's visibility timeout."""
    from moto.sqs.models import sqs_backends

    backend = sqs_backends[source.account_id][source.region]
    queue = backend.get_queue(source.name)
    visibility_timeout = int(queue.visibility_timeout)
    messages = backend.receive_message(
        source.name,
        count,
        0,
        visibility_timeout,
        message_attribute_names=["All"],
    )
    received = []
    for message in messages:
        record = sqs_record(message, source)
        size = len(encode_event(record))
        received.append(ReceivedMessage(message.id, message.receipt_handle, record, size))
    return received, visibility_timeout


def _delete(source: EventSource, receipt_handles: list[str]) -> None:
    from moto.sqs.exceptions import QueueDoesNotExist, ReceiptHandleIsInvalid
    from moto.sqs.models import sqs_backends

    backend = sqs_backends[source.account_id][source.region]
    for handle in receipt_handles:
        try:
            backend.delete_message(source.name, handle)
        except ReceiptHandleIsInvalid:
            # The function deleted it itself, or the redrive policy moved it.
            logger.debug("message with receipt handle %s... was already gone", handle[:16])
        except QueueDoesNotExist:
            return


@attrs.define(eq=False)
class SqsPoller(Poller):
    """Receives batches from one SQS queue and invokes the mapping's function."""

    _limiter: trio.CapacityLimiter = attrs.field(
        factory=lambda: trio.CapacityLimiter(1), init=False
    )
    _empty_delay: float = attrs.field(default=MIN_EMPTY_POLL_DELAY, init=False)
    _problem_logged: bool = attrs.field(default=False, init=False)

    @property
    def source(self) -> EventSource:
        return self.mapping.source

    @property
    def concurrency_limit(self) -> int:
        """The maximum number of batches this poller may have in flight now."""
        return int(self._limiter.total_tokens)

    def _max_concurrency(self) -> int:
        return self.mapping.settings.maximum_concurrency or DEFAULT_MAX_CONCURRENCY

    def _set_limit(self, limit: int) -> None:
        self._limiter.total_tokens = max(1, min(limit, self._max_concurrency()))

    async def _poll(self) -> None:
        async with trio.open_nursery() as batches:
            while True:
                token = object()
                await self._limiter.acquire_on_behalf_of(token)
                try:
                    messages, give_up_at = await self._collect_batch()
                except BaseException:
                    self._limiter.release_on_behalf_of(token)
                    raise
                if not messages:
                    self._limiter.release_on_behalf_of(token)
                    self._set_limit(self.concurrency_limit - 1)
                    await trio.sleep(self._empty_delay)
                    self._empty_delay = min(self._empty_delay * 2, MAX_EMPTY_POLL_DELAY)
                    continue
                self._empty_delay = MIN_EMPTY_POLL_DELAY
                if len(messages) >= self.mapping.settings.batch_size:
                    self._set_limit(self.concurrency_limit + 1)
                else:
                    self._set_limit(self.concurrency_limit)
                batches.start_soon(self._process, messages, give_up_at, token)

    async def _collect_batch(self) -> tuple[list[ReceivedMessage], float]:
        """Receive up to BatchSize messages within the batching window.

        Also returns the trio time after which retrying a throttled invocation
        is pointless, because the first messages become visible to other
        receives again: one second before their visibility timeout ends.
        """
        settings = self.mapping.settings
        started = trio.current_time()
        deadline = started + settings.maximum_batching_window
        give_up_at = math.inf
        messages: list[ReceivedMessage] = []
        size = 0
        while True:
            missing = settings.batch_size - len(messages)
            try:
                received, visibility_timeout = await self.simulator.services.run_sync(
                    _receive, self.source, missing
                )
            except Exception as exc:
                self._log_problem(exc)
                return messages, give_up_at
            self._problem_logged = False
            if received and not messages:
                give_up_at = trio.current_time() + max(0.0, visibility_timeout - 1.0)
            messages.extend(received)
            size += sum(message.size for message in received)
            full = len(messages) >= settings.batch_size or size >= MAX_PAYLOAD_BYTES
            if full or trio.current_time() >= deadline:
                return messages, give_up_at
            await trio.sleep(min(WINDOW_POLL_DELAY, max(0.0, deadline - trio.current_time())))

    def _log_problem(self, exc: Exception) -> None:
        # A missing queue would log on every poll; once until it works again is enough.
        if not self._problem_logged:
            logger.warning(
                "mapping %s: receiving from %s failed: %s", self.mapping.uuid, self.source.arn, exc
            )
            self._problem_logged = True
        self._empty_delay = MAX_EMPTY_POLL_DELAY

    async def _process(
        self, messages: list[ReceivedMessage], give_up_at: float, token: object
    ) -> None:
        try:
            criteria: FilterCriteria | None = self.mapping.settings.filter_criteria
            if criteria is not None:
                matching = [m for m in messages if criteria.matches(filter_view(m.record))]
                matching_ids = {m.message_id for m in matching}
                dropped = [m.receipt_handle for m in messages if m.message_id not in matching_ids]
                if dropped:
                    await self.simulator.services.run_sync(_delete, self.source, dropped)
                messages = matching
            if messages:
                await self._deliver(messages, give_up_at)
        finally:
            self._limiter.release_on_behalf_of(token)

    async def _deliver(self, messages: list[ReceivedMessage], give_up_at: float) -> None:
        payload = encode_event({"Records": [m.record for m in messages]})
        if len(payload) > MAX_PAYLOAD_BYTES and len(messages) > 1:
            # A batch over the invocation payload limit goes out in two halves.
            half = len(messages) // 2
            await self._deliver(messages[:half], give_up_at)
            await self._deliver(messages[half:], give_up_at)
            return
        result = await self.invoke(payload, give_up_at=give_up_at)
        if result is None or result.function_error:
            return
        done = messages
        if self.mapping.settings.reports_batch_item_failures:
            failed = failed_item_ids(result.payload, {m.message_id for m in messages})
            if failed is None:
                logger.info(
                    "mapping %s: invalid batchItemFailures response; the whole batch failed",
                    self.mapping.uuid,
                )
                return
            done = [m for m in messages if m.message_id not in failed]
        if done:
            await self.simulator.services.run_sync(
                _delete, self.source, [m.receipt_handle for m in done]
            )
