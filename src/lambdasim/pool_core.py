"""The container pool's bookkeeping, with no I/O: which environment serves whom.

Theory of operation. Every execution environment is in exactly one state:

    STARTING --ready--> IDLE --take--> BUSY --finish--> IDLE
        |                 |              |
        +--fail--> gone   +--expire--> STOPPING <--finish (retired or recycled)--+
                                         |
                                  (container removed) --> gone

An invocation request is admitted unless it would exceed the function's reserved
concurrency or, for a function without one, the account's limit less all
reservations. A request past its limit is throttled at once, as AWS throttles
synchronous invocations. An admitted request takes an idle environment of its
revision if there is one. Otherwise it waits in arrival order while the core has
the driver start an environment for it. At most `max_starts` environments start
at once; further starts wait for a free slot, again in arrival order.

An environment is recycled `RECYCLE_MARGIN` seconds before its credentials expire:
an idle one is stopped at once and a busy one after its invocation. It is never
handed to a request past that time. Retiring a function (new code, new
configuration, deletion) stops its idle environments at once and its busy ones
after their invocation.

The core never awaits. Each method changes the state and returns the actions the
async driver must carry out: start an environment, stop one, or wake a waiter.
Counts are derived from the per-state collections, never stored separately.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterator
from typing import Any

import attrs

#: Seconds before credential expiry at which an environment is recycled.
RECYCLE_MARGIN = 300.0

PoolKey = Hashable


class EnvironmentState(enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    #: Still running its invocation, then stops: retired or past its recycle time.
    DRAINING = "draining"
    #: Told to stop; the container is being removed.
    STOPPING = "stopping"


class ThrottleReason(enum.Enum):
    FUNCTION = "ReservedFunctionConcurrentInvocationLimitExceeded"
    ACCOUNT = "ConcurrentInvocationLimitExceeded"


class PoolStateError(RuntimeError):
    """An event arrived that the environment's state does not allow."""


@attrs.define(eq=False)
class EnvironmentRecord:
    """The core's view of one execution environment."""

    id: str
    key: PoolKey
    function: str
    state: EnvironmentState = EnvironmentState.STARTING
    #: Pool time after which the environment must not take another request.
    recycle_at: float = math.inf
    #: Pool time at which the environment last became idle.
    idle_since: float | None = None


@attrs.define(eq=False)
class Waiter:
    """An admitted request waiting for an environment."""

    key: PoolKey
    function: str
    sequence: int
    #: Set when an environment is handed to the waiter.
    granted: EnvironmentRecord | None = None
    #: Set instead when the start made for the waiter failed.
    failure: Any = None

    @property
    def done(self) -> bool:
        return self.granted is not None or self.failure is not None


# Actions for the driver -----------------------------------------------------------


@attrs.frozen
class StartEnvironment:
    record: EnvironmentRecord


@attrs.frozen
class StopEnvironment:
    record: EnvironmentRecord
    reason: str


@attrs.frozen
class WakeWaiter:
    waiter: Waiter


Action = StartEnvironment | StopEnvironment | WakeWaiter


@attrs.frozen
class Admission:
    """The outcome of a request: exactly one of the three fields is set."""

    environment: EnvironmentRecord | None = None
    waiter: Waiter | None = None
    throttled: ThrottleReason | None = None


@attrs.define(eq=False)
class PoolCore:
    """Environments and waiting requests of every function, without I/O."""

    keep_alive: float = 300.0
    account_limit: int = 1000
    max_starts: int = 8
    _ids: Iterator[int] = attrs.field(factory=itertools.count, init=False)
    _sequence: Iterator[int] = attrs.field(factory=itertools.count, init=False)
    _records: dict[str, EnvironmentRecord] = attrs.field(factory=dict, init=False)
    #: Idle environments per key, least recently used first.
    _idle: dict[PoolKey, OrderedDict[str, EnvironmentRecord]] = attrs.field(
        factory=dict, init=False
    )
    _waiters: deque[Waiter] = attrs.field(factory=deque, init=False)
    _reserved: dict[str, int] = attrs.field(factory=dict, init=False)
    _retired: set[PoolKey] = attrs.field(factory=set, init=False)

    # Queries -----------------------------------------------------------------------

    def records(self, state: EnvironmentState | None = None) -> list[EnvironmentRecord]:
        return [r for r in self._records.values() if state is None or r.state is state]

    def record(self, environment_id: str) -> EnvironmentRecord | None:
        return self._records.get(environment_id)

    def waiters(self, key: PoolKey | None = None) -> list[Waiter]:
        return [w for w in self._waiters if key is None or w.key == key]

    def idle(self, key: PoolKey) -> list[EnvironmentRecord]:
        return list(self._idle.get(key, {}).values())

    def in_flight(self, function: str | None = None) -> int:
        """Return the admitted requests: busy or draining environments plus waiters."""
        running = sum(
            1
            for r in self._records.values()
            if r.state in (EnvironmentState.BUSY, EnvironmentState.DRAINING)
            and (function is None or r.function == function)
        )
        waiting = sum(1 for w in self._waiters if function is None or w.function == function)
        return running + waiting

    def starting(self, key: PoolKey | None = None) -> int:
        return sum(
            1
            for r in self._records.values()
            if r.state is EnvironmentState.STARTING and (key is None or r.key == key)
        )

    def reserved_concurrency(self, function: str) -> int | None:
        return self._reserved.get(function)

    def idle_deadline(self, record: EnvironmentRecord) -> float:
        """Return the pool time at which an idle environment must stop."""
        if record.state is not EnvironmentState.IDLE or record.idle_since is None:
            return math.inf
        return min(record.idle_since + self.keep_alive, record.recycle_at)

    # Limits ------------------------------------------------------------------------

    def set_reserved_concurrency(self, function: str, limit: int | None) -> None:
        """Set a function's reserved concurrency; None removes it."""
        if limit is None:
            self._reserved.pop(function, None)
        elif limit < 0:
            raise ValueError(f"reserved concurrency must be 0 or more, got {limit}")
        else:
            self._reserved[function] = limit

    def _throttle_reason(self, function: str) -> ThrottleReason | None:
        # Reserved concurrency is set aside from the account limit: a function with a
        # reservation is bounded by it alone, and the others share what is left.
        reserved = self._reserved.get(function)
        if reserved is not None:
            return ThrottleReason.FUNCTION if self.in_flight(function) >= reserved else None
        unreserved_capacity = self.account_limit - sum(self._reserved.values())
        unreserved_in_flight = self.in_flight() - sum(self.in_flight(f) for f in self._reserved)
        if unreserved_in_flight >= unreserved_capacity:
            return ThrottleReason.ACCOUNT
        return None

    # Events from callers ---------------------------------------------------------------

    def request(self, key: PoolKey, function: str, now: float) -> tuple[Admission, list[Action]]:
        """Admit a request for an environment of `key`, or throttle it."""
        reason = self._throttle_reason(function)
        if reason is not None:
            return Admission(throttled=reason), []
        actions: list[Action] = []
        record = self._take_idle(key, now, actions)
        if record is not None:
            return Admission(environment=record), actions
        waiter = Waiter(key=key, function=function, sequence=next(self._sequence))
        self._waiters.append(waiter)
        self._retired.discard(key)
        actions.extend(self._schedule_starts())
        return Admission(waiter=waiter), actions

    def cancel(self, waiter: Waiter, now: float) -> list[Action]:
        """Withdraw a waiter whose caller gave up, returning any environment it got."""
        if waiter in self._waiters:
            self._waiters.remove(waiter)
            return []
        if waiter.granted is not None:
            return self.finish(waiter.granted.id, now, usable=True)
        return []

    def finish(self, environment_id: str, now: float, *, usable: bool) -> list[Action]:
        """Record the end of an invocation; hand the environment on, park or stop it.

        An environment that is already gone (its container died) needs nothing more.
        """
        if environment_id not in self._records:
            return []
        record = self._require(environment_id, EnvironmentState.BUSY, EnvironmentState.DRAINING)
        if not usable:
            return [self._stop(record, "failed")]
        if record.state is EnvironmentState.DRAINING:
            return [self._stop(record, "retired")]
        if now >= record.recycle_at:
            return [self._stop(record, "credentials expiring")]
        return self._make_available(record, now)

    # Events from the driver ----------------------------------------------------------

    def started(self, environment_id: str, now: float, recycle_at: float) -> list[Action]:
        """Record that an environment finished init."""
        record = self._require(environment_id, EnvironmentState.STARTING)
        # Credentials expired by `expire_credentials` during the start stay expired.
        record.recycle_at = min(record.recycle_at, recycle_at)
        actions = self._make_available(record, now)
        actions.extend(self._schedule_starts())
        return actions

    def start_failed(self, environment_id: str, failure: Any) -> list[Action]:
        """Record a failed start; the oldest waiter of its key gets `failure`."""
        record = self._require(environment_id, EnvironmentState.STARTING)
        del self._records[record.id]
        actions: list[Action] = []
        for waiter in self._waiters:
            if waiter.key == record.key:
                self._waiters.remove(waiter)
                waiter.failure = failure
                actions.append(WakeWaiter(waiter))
                break
        actions.extend(self._schedule_starts())
        return actions

    def gone(self, environment_id: str) -> list[Action]:
        """Forget an environment whose container is gone, whatever its state."""
        record = self._records.pop(environment_id, None)
        if record is None:
            return []
        self._idle.get(record.key, OrderedDict()).pop(record.id, None)
        if record.state is EnvironmentState.STARTING:
            # A start that ended without `started` or `start_failed`: let others start.
            return self._schedule_starts()
        return []

    def expire(self, environment_id: str, now: float) -> list[Action]:
        """Stop an idle environment whose keep-alive or recycle time has come."""
        record = self._records.get(environment_id)
        if record is None or record.state is not EnvironmentState.IDLE:
            return []
        if now < self.idle_deadline(record):
            return []
        reason = "credentials expiring" if now >= record.recycle_at else "keep-alive expired"
        return [self._stop(record, reason)]

    def expire_credentials(self, environment_id: str, now: float) -> list[Action]:
        """Treat an environment's credentials as expiring now."""
        record = self._records.get(environment_id)
        if record is None:
            return []
        record.recycle_at = min(record.recycle_at, now)
        if record.state is EnvironmentState.IDLE:
            return [self._stop(record, "credentials expiring")]
        if record.state is EnvironmentState.BUSY:
            record.state = EnvironmentState.DRAINING
        return []

    def retire(self, function: str, keep: PoolKey | None = None) -> list[Action]:
        """Stop the environments of `function` except those of key `keep`.

        Idle ones stop now, busy ones after their invocation, and starting ones once
        ready unless a request still waits for them.
        """
        actions: list[Action] = []
        for waiter in self._waiters:
            # Environments still to be started for these waiters stop once they served them.
            if waiter.function == function and waiter.key != keep:
                self._retired.add(waiter.key)
        for record in list(self._records.values()):
            if record.function != function or record.key == keep:
                continue
            self._retired.add(record.key)
            if record.state is EnvironmentState.IDLE:
                actions.append(self._stop(record, "retired"))
            elif record.state is EnvironmentState.BUSY:
                record.state = EnvironmentState.DRAINING
        return actions

    def retire_key(self, key: PoolKey) -> list[Action]:
        """Stop the environments of one revision, as `retire` does for a function."""
        actions: list[Action] = []
        self._retired.add(key)
        for record in list(self._records.values()):
            if record.key != key:
                continue
            if record.state is EnvironmentState.IDLE:
                actions.append(self._stop(record, "retired"))
            elif record.state is EnvironmentState.BUSY:
                record.state = EnvironmentState.DRAINING
        return actions

    # Internals -----------------------------------------------------------------------

    def _require(self, environment_id: str, *states: EnvironmentState) -> EnvironmentRecord:
        record = self._records.get(environment_id)
        if record is None:
            raise PoolStateError(f"unknown environment {environment_id!r}")
        if record.state not in states:
            expected = " or ".join(state.name for state in states)
            raise PoolStateError(
                f"environment {environment_id} is {record.state.name}, expected {expected}"
            )
        return record

    def _take_idle(
        self, key: PoolKey, now: float, actions: list[Action]
    ) -> EnvironmentRecord | None:
        idle = self._idle.get(key)
        while idle:
            # The most recently used environment first: it is the warmest.
            _, record = idle.popitem(last=True)
            if now >= record.recycle_at:
                record.state = EnvironmentState.IDLE
                actions.append(self._stop(record, "credentials expiring"))
                continue
            record.state = EnvironmentState.BUSY
            record.idle_since = None
            return record
        return None

    def _make_available(self, record: EnvironmentRecord, now: float) -> list[Action]:
        """Give a ready environment to the oldest waiter of its key, or park it."""
        for waiter in self._waiters:
            if waiter.key == record.key and now < record.recycle_at:
                self._waiters.remove(waiter)
                record.state = EnvironmentState.BUSY
                record.idle_since = None
                waiter.granted = record
                return [WakeWaiter(waiter)]
        if now >= record.recycle_at:
            return [self._stop(record, "credentials expiring")]
        if record.key in self._retired:
            return [self._stop(record, "retired")]
        record.state = EnvironmentState.IDLE
        record.idle_since = now
        self._idle.setdefault(record.key, OrderedDict())[record.id] = record
        return []

    def _stop(self, record: EnvironmentRecord, reason: str) -> StopEnvironment:
        if record.state is EnvironmentState.IDLE:
            self._idle.get(record.key, OrderedDict()).pop(record.id, None)
        record.state = EnvironmentState.STOPPING
        record.idle_since = None
        return StopEnvironment(record, reason)

    def _schedule_starts(self) -> list[Action]:
        """Start environments for waiters that no starting environment covers yet."""
        actions: list[Action] = []
        free = self.max_starts - self.starting()
        if free <= 0:
            return actions
        covered: dict[PoolKey, int] = {}
        for record in self._records.values():
            if record.state is EnvironmentState.STARTING:
                covered[record.key] = covered.get(record.key, 0) + 1
        for waiter in self._waiters:
            if covered.get(waiter.key, 0) > 0:
                covered[waiter.key] -= 1
                continue
            if free == 0:
                break
            record = EnvironmentRecord(
                id=f"env-{next(self._ids)}", key=waiter.key, function=waiter.function
            )
            self._records[record.id] = record
            actions.append(StartEnvironment(record))
            free -= 1
        return actions
