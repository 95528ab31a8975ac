"""The container pool: the async driver around `pool_core.PoolCore`.

The core decides which environment serves which request, and what to start and
stop. This module carries out those decisions: it starts environments in the
pool's nursery, stops them, wakes waiting callers and moves idle timers. Every
call into the core happens on the trio thread with no `await` between reading
the pool's state and changing it.
"""

from __future__ import annotations

import datetime
import logging
import math
from typing import Any

import attrs
import trio

from .backends.base import ContainerBackend
from .config import Config
from .credentials import CredentialsSource
from .environment import EnvironmentInitError, ExecutionEnvironment, FunctionSnapshot
from .errors import LambdaError, ServiceException, TooManyRequestsException
from .logs import LogSink
from .pool_core import (
    RECYCLE_MARGIN,
    Action,
    EnvironmentRecord,
    EnvironmentState,
    PoolCore,
    PoolKey,
    StartEnvironment,
    StopEnvironment,
    Waiter,
    WakeWaiter,
)
from .runtime_api import Invocation, RuntimeResult

logger = logging.getLogger("lambdasim.pool")


@attrs.frozen
class EnvironmentInfo:
    """A snapshot of one execution environment, for introspection."""

    id: str
    function: str
    version: str
    state: str
    container_id: str | None
    #: Wall-clock times, as datetimes in UTC.
    started_at: datetime.datetime | None
    last_used: datetime.datetime | None
    credential_expiry: datetime.datetime | None
    invocations: int


@attrs.frozen
class PoolStatistics:
    """A frozen snapshot of the pool's environments and waiting requests."""

    environments: tuple[EnvironmentInfo, ...]
    starting: int
    idle: int
    busy: int
    draining: int
    stopping: int
    waiting: int
    account_limit: int
    max_concurrent_starts: int


def _utc(timestamp: float | None) -> datetime.datetime | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)


@attrs.define(eq=False)
class _ReadySignal:
    """The `task_status` an environment reports readiness to."""

    pool: ContainerPool
    record: EnvironmentRecord

    def started(self, environment: ExecutionEnvironment) -> None:
        self.pool._environment_ready(self.record, environment)


@attrs.define(eq=False)
class ContainerPool:
    """The execution environments of every function of one simulator.

    Environments are kept per function revision (`FunctionSnapshot.pool_key`), so
    an invocation never reaches an environment of other code or configuration.
    Each environment serves one invocation at a time.
    """

    backend: ContainerBackend
    credentials: CredentialsSource
    config: Config
    instance_id: str
    _core: PoolCore = attrs.field(init=False)
    _nursery: trio.Nursery | None = attrs.field(default=None, init=False)
    _environments: dict[str, ExecutionEnvironment] = attrs.field(factory=dict, init=False)
    _snapshots: dict[PoolKey, FunctionSnapshot] = attrs.field(factory=dict, init=False)
    _wakeups: dict[Waiter, trio.Event] = attrs.field(factory=dict, init=False)
    #: Receives each invocation's finished log.
    log_sink: LogSink | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self._core = PoolCore(
            keep_alive=self.config.keep_alive,
            account_limit=self.config.account_concurrency,
            max_starts=self.config.max_concurrent_starts,
        )

    async def run(
        self, *, task_status: trio.TaskStatus[ContainerPool] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Own the environments until cancelled, then remove all their containers.

        Use with `nursery.start`; `started()` returns the pool.
        """
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started(self)
                await trio.sleep_forever()
        finally:
            self._nursery = None

    # Public API -------------------------------------------------------------------

    @property
    def environments(self) -> list[ExecutionEnvironment]:
        """Every environment whose container has started."""
        return list(self._environments.values())

    @property
    def account_limit(self) -> int:
        return self._core.account_limit

    def reserved_concurrency(self, function: str) -> int | None:
        return self._core.reserved_concurrency(function)

    def set_reserved_concurrency(self, function: str, limit: int | None) -> None:
        """Set a function's reserved concurrency; None removes the limit, 0 throttles all."""
        self._core.set_reserved_concurrency(function, limit)

    async def invoke(self, snapshot: FunctionSnapshot, invocation: Invocation) -> RuntimeResult:
        """Run `invocation` in an idle environment of `snapshot`, or in a new one.

        Raises TooManyRequestsException past a concurrency limit. An init failure is
        returned as the invocation's result; the next invocation tries a new
        environment. A container engine failure raises ServiceException.
        """
        key = snapshot.pool_key
        self._snapshots[key] = snapshot
        admission, actions = self._core.request(key, snapshot.name, trio.current_time())
        self._apply(actions)
        if admission.throttled is not None:
            raise TooManyRequestsException("Rate Exceeded.", Reason=admission.throttled.value)
        record = admission.environment
        if record is None:
            assert admission.waiter is not None
            outcome = await self._wait(admission.waiter)
            if isinstance(outcome, RuntimeResult):
                return outcome
            record = outcome
        environment = self._environments[record.id]
        environment.set_idle_deadline(math.inf)
        result: RuntimeResult | None = None
        try:
            result = await environment.invoke(invocation)
        finally:
            usable = result is not None and environment.usable
            self._apply(self._core.finish(record.id, trio.current_time(), usable=usable))
            self._arm_idle_timer(record)
        return result

    def stop_function(
        self, function: str, keep: PoolKey | None = None, *, version: str | None = None
    ) -> int:
        """Stop the environments of `function` except those of revision `keep`.

        With `version`, only environments of that version stop. Idle ones stop now,
        busy ones after their invocation. Returns how many were affected.
        """
        affected = [
            r
            for r in self._core.records()
            if r.function == function
            and r.key != keep
            and r.state is not EnvironmentState.STOPPING
            and (version is None or self._snapshots[r.key].version == version)
        ]
        if version is None:
            self._apply(self._core.retire(function, keep))
        else:
            keys = {r.key for r in affected}
            keys.update(
                w.key
                for w in self._core.waiters()
                if w.function == function
                and w.key != keep
                and self._snapshots[w.key].version == version
            )
            for key in keys:
                self._apply(self._core.retire_key(key))
        return len(affected)

    def expire_credentials(self, environment_id: str) -> bool:
        """Treat an environment's credentials as expiring now; False if it is unknown."""
        if self._core.record(environment_id) is None:
            return False
        self._apply(self._core.expire_credentials(environment_id, trio.current_time()))
        return True

    def statistics(self) -> PoolStatistics:
        """Return a frozen snapshot of the pool."""
        infos = []
        for record in self._core.records():
            environment = self._environments.get(record.id)
            infos.append(
                EnvironmentInfo(
                    id=record.id,
                    function=record.function,
                    version=environment.snapshot.version if environment else "",
                    state=record.state.value,
                    container_id=environment.container.id
                    if environment and environment.container
                    else None,
                    started_at=_utc(environment.started_at) if environment else None,
                    last_used=_utc(environment.last_used) if environment else None,
                    credential_expiry=environment.credentials.expiration if environment else None,
                    invocations=environment.invocations if environment else 0,
                )
            )

        def count(state: EnvironmentState) -> int:
            return len(self._core.records(state))

        return PoolStatistics(
            environments=tuple(infos),
            starting=count(EnvironmentState.STARTING),
            idle=count(EnvironmentState.IDLE),
            busy=count(EnvironmentState.BUSY),
            draining=count(EnvironmentState.DRAINING),
            stopping=count(EnvironmentState.STOPPING),
            waiting=len(self._core.waiters()),
            account_limit=self._core.account_limit,
            max_concurrent_starts=self._core.max_starts,
        )

    # Driver -----------------------------------------------------------------------

    async def _wait(self, waiter: Waiter) -> EnvironmentRecord | RuntimeResult:
        wakeup = trio.Event()
        self._wakeups[waiter] = wakeup
        try:
            await wakeup.wait()
        except BaseException:
            # Cancelled: withdraw, and give back an environment already handed over.
            self._apply(self._core.cancel(waiter, trio.current_time()))
            if waiter.granted is not None:
                self._arm_idle_timer(waiter.granted)
            raise
        finally:
            del self._wakeups[waiter]
        if waiter.failure is not None:
            if isinstance(waiter.failure, RuntimeResult):
                return waiter.failure
            raise waiter.failure
        assert waiter.granted is not None
        return waiter.granted

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, StartEnvironment):
                if self._nursery is None:
                    raise RuntimeError(
                        "the pool is not running; start it with nursery.start(pool.run)"
                    )
                snapshot = self._snapshots[action.record.key]
                self._nursery.start_soon(self._run_environment, action.record, snapshot)
            elif isinstance(action, StopEnvironment):
                environment = self._environments.get(action.record.id)
                if environment is not None:
                    logger.info(
                        "stopping environment of %s (container %s): %s",
                        action.record.function,
                        environment.short_id,
                        action.reason,
                    )
                    environment.stop()
            elif isinstance(action, WakeWaiter):
                wakeup = self._wakeups.get(action.waiter)
                if wakeup is not None:
                    wakeup.set()

    def _arm_idle_timer(self, record: EnvironmentRecord) -> None:
        environment = self._environments.get(record.id)
        if environment is not None:
            environment.set_idle_deadline(self._core.idle_deadline(record))

    def _environment_ready(
        self, record: EnvironmentRecord, environment: ExecutionEnvironment
    ) -> None:
        now = trio.current_time()
        recycle_at = math.inf
        expiration = environment.credentials.expiration
        if expiration is not None:
            remaining = (expiration - datetime.datetime.now(datetime.UTC)).total_seconds()
            recycle_at = now + remaining - RECYCLE_MARGIN
        self._apply(self._core.started(record.id, now, recycle_at))
        self._arm_idle_timer(record)

    def _on_idle_deadline(self, environment: ExecutionEnvironment) -> None:
        self._apply(self._core.expire(environment.id, trio.current_time()))
        record = self._core.record(environment.id)
        if record is not None:
            self._arm_idle_timer(record)

    async def _run_environment(self, record: EnvironmentRecord, snapshot: FunctionSnapshot) -> None:
        try:
            credentials = await self.credentials.for_function(snapshot.name, snapshot.role)
            await self.backend.ensure_image(snapshot.image)
            environment = ExecutionEnvironment(
                snapshot=snapshot,
                backend=self.backend,
                credentials=credentials,
                endpoint_url=self.config.container_endpoint_url,
                region=self.config.region,
                instance_id=self.instance_id,
                network=self.config.docker_network,
                id=record.id,
            )
            environment.on_idle_deadline = self._on_idle_deadline
            environment.on_log = self.log_sink
            self._environments[record.id] = environment
            await environment.run(task_status=_ReadySignal(self, record))  # type: ignore[arg-type]
        except EnvironmentInitError as exc:
            self._start_failed(record, exc.result)
        except Exception as exc:
            failure: Any = exc
            if not isinstance(exc, LambdaError):
                logger.exception("starting an environment of %s failed", snapshot.name)
                failure = ServiceException(f"Starting an execution environment failed: {exc}")
            else:
                logger.warning("starting an environment of %s failed: %s", snapshot.name, exc)
            self._start_failed(record, failure)
        finally:
            self._environments.pop(record.id, None)
            self._apply(self._core.gone(record.id))

    def _start_failed(self, record: EnvironmentRecord, failure: Any) -> None:
        if record.state is EnvironmentState.STARTING:
            self._apply(self._core.start_failed(record.id, failure))
        else:
            logger.warning(
                "environment %s of %s failed after its start", record.id, record.function
            )
