"""Asynchronous invocation (`InvocationType=Event`): a queue, retries and destinations.

Events are accepted at once and run in the background, as AWS runs them. A
function error is retried `MaximumRetryAttempts` times (default 2) after
`retry_delay` and then twice that, as AWS waits about one and two minutes. An
event older than `MaximumEventAgeInSeconds` (default 6 hours) is dropped. Throttled
attempts wait and retry without counting as attempts, except under a reserved
concurrency of 0, which fails the event at once. What finally happened is sent
to the on-success or on-failure destination, and failed events also go to the
function's dead-letter queue.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import uuid
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .destinations import deliver
from .errors import (
    LambdaError,
    RequestTooLargeException,
    ResourceNotFoundException,
    TooManyRequestsException,
)
from .invoke import normalize_payload

if TYPE_CHECKING:
    from .invoke import InvocationResult
    from .simulator import Simulator

logger = logging.getLogger("lambdasim.async_invoke")

#: Largest payload of an asynchronous invocation (1 MB, as AWS).
MAX_EVENT_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_MAXIMUM_RETRY_ATTEMPTS = 2
DEFAULT_MAXIMUM_EVENT_AGE = 21600
#: Waits between attempts of a throttled event, growing to the last value.
THROTTLE_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)


@attrs.define(eq=False)
class AsyncEvent:
    """One accepted asynchronous invocation."""

    request_id: str
    function: str
    qualifier: str | None
    payload: bytes
    #: Trio time at which the event was accepted.
    accepted_at: float
    attempts: int = 0


def _timestamp() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _json_or_text(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode(errors="replace")


@attrs.define(eq=False)
class AsyncInvoker:
    """The queue of asynchronous invocations of one simulator.

    Start it with `nursery.start(invoker.run)`. `submit` does not block, because the
    queue is an unbounded channel.
    """

    simulator: Simulator
    #: Seconds before the first retry; the second waits twice as long.
    retry_delay: float = 60.0
    _send: trio.MemorySendChannel[AsyncEvent] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[AsyncEvent] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel(math.inf)

    async def run(
        self, *, task_status: trio.TaskStatus[AsyncInvoker] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run queued events until cancelled; events still queued then are dropped."""
        async with trio.open_nursery() as nursery:
            task_status.started(self)
            async for event in self._receive:
                nursery.start_soon(self._process, event)

    def submit(self, name: str, payload: bytes | None, *, qualifier: str | None = None) -> str:
        """Accept an event for `name` and return its request id.

        Raises at once what AWS rejects synchronously: an unknown function, a payload
        that is not JSON or larger than 1 MB.
        """
        resolved = self.simulator.resolve(name, qualifier)
        if payload is not None and len(payload) > MAX_EVENT_PAYLOAD_BYTES:
            raise RequestTooLargeException(
                f"Request must be smaller than {MAX_EVENT_PAYLOAD_BYTES} bytes for the "
                "InvokeFunction operation"
            )
        body = normalize_payload(payload)
        event = AsyncEvent(
            request_id=str(uuid.uuid4()),
            function=resolved.deployed.name,
            qualifier=resolved.qualifier,
            payload=body,
            accepted_at=trio.current_time(),
        )
        self._send.send_nowait(event)
        logger.info("accepted event %s for %s", event.request_id, resolved.invoked_arn)
        return event.request_id

    def _submit_arn(self, arn: str, payload: bytes) -> None:
        try:
            self.submit(arn, payload)
        except LambdaError as exc:
            logger.warning("could not send a record to function %s: %s", arn, exc.message)

    async def _process(self, event: AsyncEvent) -> None:
        config = self.simulator.settings.event_invoke_config(event.function, event.qualifier)
        retries = DEFAULT_MAXIMUM_RETRY_ATTEMPTS
        max_age: float = DEFAULT_MAXIMUM_EVENT_AGE
        if config is not None:
            if config.maximum_retry_attempts is not None:
                retries = config.maximum_retry_attempts
            if config.maximum_event_age is not None:
                max_age = config.maximum_event_age
        throttles = 0
        while True:
            if trio.current_time() - event.accepted_at > max_age:
                await self._failed(event, "EventAgeExceeded", None)
                return
            try:
                result = await self.simulator.invoke(
                    event.function,
                    event.payload,
                    qualifier=event.qualifier,
                    request_id=event.request_id,
                )
            except TooManyRequestsException:
                if self.simulator.pool.reserved_concurrency(event.function) == 0:
                    await self._failed(event, "ZeroReservedConcurrency", None)
                    return
                await trio.sleep(THROTTLE_DELAYS[min(throttles, len(THROTTLE_DELAYS) - 1)])
                throttles += 1
                continue
            except ResourceNotFoundException:
                logger.warning(
                    "event %s dropped: function %s no longer exists",
                    event.request_id,
                    event.function,
                )
                return
            except LambdaError as exc:
                # A service error (such as a container engine failure) counts as an attempt.
                logger.warning("event %s: attempt failed: %s", event.request_id, exc.message)
                event.attempts += 1
                if event.attempts > retries:
                    await self._failed(event, "RetriesExhausted", None)
                    return
                await trio.sleep(self.retry_delay * event.attempts)
                continue
            event.attempts += 1
            if result.function_error is None:
                await self._succeeded(event, result)
                return
            if event.attempts > retries:
                await self._failed(event, "RetriesExhausted", result)
                return
            logger.info(
                "event %s failed attempt %d; retrying in %.0f s",
                event.request_id,
                event.attempts,
                self.retry_delay * event.attempts,
            )
            await trio.sleep(self.retry_delay * event.attempts)

    def _record(
        self, event: AsyncEvent, condition: str, result: InvocationResult | None
    ) -> dict[str, Any]:
        qualifier = event.qualifier or "$LATEST"
        record: dict[str, Any] = {
            "version": "1.0",
            "timestamp": _timestamp(),
            "requestContext": {
                "requestId": event.request_id,
                "functionArn": self.simulator.catalog.arn(event.function, qualifier),
                "condition": condition,
                "approximateInvokeCount": event.attempts,
            },
            "requestPayload": _json_or_text(event.payload),
        }
        if result is not None:
            record["responseContext"] = result.response_context()
            record["responsePayload"] = _json_or_text(result.payload)
        return record

    async def _succeeded(self, event: AsyncEvent, result: InvocationResult) -> None:
        config = self.simulator.settings.event_invoke_config(event.function, event.qualifier)
        if config is not None and config.on_success:
            await deliver(
                self.simulator.services,
                config.on_success,
                self._record(event, "Success", result),
                invoke_function=self._submit_arn,
            )

    async def _failed(
        self, event: AsyncEvent, condition: str, result: InvocationResult | None
    ) -> None:
        logger.info(
            "event %s failed: %s after %d attempts", event.request_id, condition, event.attempts
        )
        config = self.simulator.settings.event_invoke_config(event.function, event.qualifier)
        if config is not None and config.on_failure:
            await deliver(
                self.simulator.services,
                config.on_failure,
                self._record(event, condition, result),
                invoke_function=self._submit_arn,
            )
        try:
            deployed = self.simulator.get_function(event.function, event.qualifier)
        except LambdaError:
            return
        target = deployed.function.dead_letter_target
        if target:
            error = _json_or_text(result.payload) if result is not None else {}
            message = error.get("errorMessage", condition) if isinstance(error, dict) else condition
            await deliver(
                self.simulator.services,
                target,
                event.payload.decode(errors="replace"),
                invoke_function=self._submit_arn,
                attributes={
                    "RequestID": {"DataType": "String", "StringValue": event.request_id},
                    "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                    "ErrorMessage": {"DataType": "String", "StringValue": str(message)},
                },
            )
