"""The task that runs one enabled event source mapping, and what all pollers share.

A `Poller` is started with `nursery.start(poller.run)` and runs until `stop()`
cancels it. It never lets an error escape into the simulator's nursery: a failure
is logged, the mapping records it, and polling starts again after a pause.
"""

from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ..errors import LambdaError, TooManyRequestsException
from ..invoke import InvocationResult

if TYPE_CHECKING:
    from ..simulator import Simulator
    from .mappings import EventSourceMapping

logger = logging.getLogger("lambdasim.poller")

#: Largest request payload of a synchronous invocation (6 MB, as AWS).
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
#: Seconds between tries of an invocation that was throttled or could not start.
INVOKE_RETRY_DELAY = 0.1
MAX_INVOKE_RETRY_DELAY = 2.0
#: Seconds a poller pauses after an unexpected error before polling again.
RESTART_DELAY = 1.0


@attrs.define(eq=False)
class Poller:
    """The base of the pollers: one task per enabled mapping, stopped by a cancel scope.

    Subclasses implement `_prepare`, which runs before the poller counts as
    started, and `_poll`, which runs until cancelled.
    """

    mapping: EventSourceMapping
    simulator: Simulator
    _scope: trio.CancelScope = attrs.field(factory=trio.CancelScope, init=False)
    _finished: trio.Event = attrs.field(factory=trio.Event, init=False)
    _started: bool = attrs.field(default=False, init=False)

    async def run(self, *, task_status: trio.TaskStatus[Poller] = trio.TASK_STATUS_IGNORED) -> None:
        """Poll the mapping's source until `stop()` or cancellation.

        Use with `nursery.start`; `started()` returns the poller once it has read
        its starting position, so records added from then on are seen.
        """
        self._started = True
        try:
            with self._scope:
                try:
                    await self._prepare()
                except Exception:
                    # Polling retries what preparing could not read.
                    logger.exception(
                        "poller of event source mapping %s could not prepare", self.mapping.uuid
                    )
                task_status.started(self)
                while True:
                    try:
                        await self._poll()
                    except Exception as exc:
                        logger.exception(
                            "poller of event source mapping %s failed; restarting in %.0f s",
                            self.mapping.uuid,
                            RESTART_DELAY,
                        )
                        self.mapping.last_processing_result = f"PROBLEM: {exc}"
                    await trio.sleep(RESTART_DELAY)
        finally:
            self._finished.set()

    async def stop(self) -> None:
        """Cancel the poller and wait until its task has ended.

        In-flight invocations are cancelled too. Their SQS messages become visible
        again after the queue's visibility timeout, and stream records after the
        last checkpoint are read again when the mapping is enabled again.
        """
        self._scope.cancel()
        if self._started:
            await self._finished.wait()

    async def _prepare(self) -> None:
        """Read whatever the poller needs before it counts as started."""

    async def _poll(self) -> None:
        raise NotImplementedError

    # Shared by the pollers ------------------------------------------------------------

    async def invoke(
        self, payload: bytes, *, give_up_at: float = math.inf
    ) -> InvocationResult | None:
        """Invoke the mapping's function synchronously with `payload`.

        Throttles and failures to start the invocation (the function missing or
        not ready, the container engine failing) are retried after a pause that
        grows to `MAX_INVOKE_RETRY_DELAY`. The last try is made at trio time
        `give_up_at`, and if it fails too, None is returned. Function errors are
        results and are not retried here.
        """
        delay = INVOKE_RETRY_DELAY
        while True:
            try:
                return await self.simulator.invoke(self.mapping.function_arn, payload)
            except TooManyRequestsException:
                logger.debug("mapping %s: function throttled; retrying", self.mapping.uuid)
            except LambdaError as exc:
                # The first failure of a run of retries is a warning, the rest debug.
                level = logging.WARNING if delay == INVOKE_RETRY_DELAY else logging.DEBUG
                logger.log(
                    level,
                    "mapping %s: could not invoke %s: %s; retrying",
                    self.mapping.uuid,
                    self.mapping.function_arn,
                    exc,
                )
                self.mapping.last_processing_result = f"PROBLEM: {exc.message}"
            now = trio.current_time()
            if now >= give_up_at:
                return None
            # The last pause ends at `give_up_at`, so that a limit lifted just
            # before then still gets one more try.
            await trio.sleep(min(delay, give_up_at - now))
            delay = min(delay * 2, MAX_INVOKE_RETRY_DELAY)


def encode_event(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def failed_item_ids(payload: bytes, batch_ids: set[str]) -> set[str] | None:
    """Return the item ids that a `ReportBatchItemFailures` response marks as failed.

    None means the whole batch failed. A null or empty response, an empty object
    and a null or empty `batchItemFailures` list are complete successes. Any other
    response fails the whole batch when it is not a JSON object, or when an item
    has no `itemIdentifier`, an empty or non-string one, or one not in the batch.
    """
    try:
        response = json.loads(payload) if payload.strip() else None
    except ValueError:
        return None
    if response is None or response == "":
        return set()
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    identifiers: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not identifier or identifier not in batch_ids:
            return None
        identifiers.add(identifier)
    return identifiers
