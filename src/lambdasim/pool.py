"""Warm execution environments, reused between invocations.

Environments are kept per function revision (`FunctionSnapshot.pool_key`), so an
invocation never reaches an environment of other code or configuration. Each
environment serves one invocation at a time; a second concurrent invocation of
the same revision starts another environment.
"""

from __future__ import annotations

import logging

import attrs
import trio

from .backends.base import ContainerBackend
from .config import Config
from .credentials import CredentialsProvider
from .environment import EnvironmentInitError, ExecutionEnvironment, FunctionSnapshot
from .runtime_api import Invocation, RuntimeResult

logger = logging.getLogger("lambdasim.pool")

PoolKey = tuple[str, str, int]


@attrs.define(eq=False)
class ContainerPool:
    """The execution environments of every function of one simulator.

    TODO: keep-alive expiry, credential recycling, concurrency limits and bounded
    container starts are not implemented yet. Idle environments live until their
    function changes or the pool stops.
    """

    backend: ContainerBackend
    credentials: CredentialsProvider
    config: Config
    instance_id: str
    _nursery: trio.Nursery | None = attrs.field(default=None, init=False)
    _idle: dict[PoolKey, list[ExecutionEnvironment]] = attrs.field(factory=dict, init=False)
    _environments: set[ExecutionEnvironment] = attrs.field(factory=set, init=False)

    async def run(self, *, task_status: trio.TaskStatus[ContainerPool] = trio.TASK_STATUS_IGNORED) -> None:
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

    @property
    def environments(self) -> list[ExecutionEnvironment]:
        """Every live environment."""
        return list(self._environments)

    async def invoke(self, snapshot: FunctionSnapshot, invocation: Invocation) -> RuntimeResult:
        """Run `invocation` in an idle environment of `snapshot`, or in a new one.

        An init failure is returned as the invocation's result and the failed
        environment is dropped, so the next invocation tries a fresh one.
        """
        environment = self._take_idle(snapshot.pool_key)
        if environment is None:
            try:
                environment = await self._start(snapshot)
            except EnvironmentInitError as exc:
                return exc.result
        result: RuntimeResult | None = None
        try:
            result = await environment.invoke(invocation)
            return result
        finally:
            if result is not None and environment.usable:
                self._idle.setdefault(snapshot.pool_key, []).append(environment)
            else:
                # Cancelled mid-invocation or broken: the runtime's state is unknown.
                environment.stop()

    def _take_idle(self, key: PoolKey) -> ExecutionEnvironment | None:
        idle = self._idle.get(key, [])
        while idle:
            environment = idle.pop()
            if environment.usable:
                return environment
        return None

    async def _start(self, snapshot: FunctionSnapshot) -> ExecutionEnvironment:
        if self._nursery is None:
            raise RuntimeError("the pool is not running; start it with nursery.start(pool.run)")
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
        )
        return await self._nursery.start(self._run_environment, environment)

    async def _run_environment(
        self,
        environment: ExecutionEnvironment,
        *,
        task_status: trio.TaskStatus[ExecutionEnvironment] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        self._environments.add(environment)
        try:
            await environment.run(task_status=task_status)
        finally:
            self._environments.discard(environment)
            idle = self._idle.get(environment.snapshot.pool_key)
            if idle and environment in idle:
                idle.remove(environment)

    def retire(self, function_name: str) -> int:
        """Stop idle environments of `function_name`; busy ones stop after their invocation.

        Returns the number of environments stopped or marked to stop.
        """
        count = 0
        for environment in list(self._environments):
            if environment.snapshot.name != function_name:
                continue
            if environment.busy:
                environment.usable = False
            else:
                environment.stop()
            count += 1
        for key in [key for key in self._idle if key[0] == function_name]:
            del self._idle[key]
        return count
