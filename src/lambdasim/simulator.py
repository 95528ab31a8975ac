"""The simulator: functions, their code, and the environments that run them.

A `Simulator` owns everything long-lived in lambdasim (the container pool and,
through it, every execution environment) under one nursery. It is usable without
the HTTP server:

    async with lambdasim.open_simulator() as sim:
        await sim.create_function(lambdasim.Function(...))
        result = await sim.invoke("my-fn", b'{"x": 1}')
"""

from __future__ import annotations

import datetime
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from .arns import function_arn, parse_function_ref
from .backends.base import ContainerBackend
from .code_store import CodePackage, CodeStore
from .config import Config
from .credentials import CredentialsProvider
from .environment import FunctionSnapshot
from .errors import (
    InvalidParameterValueException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from .function import Function
from .invoke import InvocationResult, normalize_payload
from .function_settings import FunctionSettings
from .pollers import EventSourceMappings
from .pool import ContainerPool
from .runtime_api import Invocation
from .runtimes import lookup_runtime
from .services import EmbeddedServices

logger = logging.getLogger("lambdasim.simulator")

LATEST = "$LATEST"
#: Concurrent executions AWS keeps unreserved in every account.
MIN_UNRESERVED_CONCURRENCY = 100
#: Seconds a final sweep of leftover containers may take at shutdown.
_SHUTDOWN_SWEEP_TIMEOUT = 20.0


def _aws_timestamp() -> str:
    """Return the current time in the format of `LastModified`."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def _trace_id() -> str:
    return (
        f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};"
        f"Parent={secrets.token_hex(8)};Sampled=0"
    )


@attrs.define(eq=False)
class DeployedFunction:
    """A created function: its definition, unpacked code and service-side state."""

    function: Function
    package: CodePackage
    arn: str
    image: str
    revision: int = 1
    revision_id: str = attrs.field(factory=lambda: str(uuid.uuid4()))
    last_modified: str = attrs.field(factory=_aws_timestamp)
    version: str = LATEST
    state: str = "Active"

    @property
    def name(self) -> str:
        return self.function.name

    def snapshot(self) -> FunctionSnapshot:
        """Return the frozen view that execution environments run."""
        function = self.function
        return FunctionSnapshot(
            name=function.name,
            version=self.version,
            revision=self.revision,
            arn=self.arn,
            runtime=lookup_runtime(function.runtime),
            handler=function.handler,
            role=function.role,
            timeout=function.timeout,
            memory_size=function.memory_size,
            environment=dict(function.environment),
            code_path=str(self.package.path),
            image=self.image,
        )


@attrs.define(eq=False)
class Simulator:
    """Lambda functions and the containers that run them.

    Start it with `nursery.start(simulator.run)` or use `open_simulator()`.
    `backend` defaults to the local Docker engine and `services` to a fresh
    embedded moto for `config.account_id`.
    """

    config: Config = attrs.field(factory=Config.from_env)
    backend: ContainerBackend = attrs.field(default=None)
    services: EmbeddedServices = attrs.field(default=None)
    instance_id: str = attrs.field(factory=lambda: uuid.uuid4().hex[:16])
    code_store: CodeStore = attrs.field(init=False)
    pool: ContainerPool = attrs.field(init=False)
    event_sources: EventSourceMappings = attrs.field(init=False)
    settings: FunctionSettings = attrs.field(factory=FunctionSettings, init=False)
    _functions: dict[str, DeployedFunction] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        if self.backend is None:
            from .backends.docker import DockerBackend

            self.backend = DockerBackend()
        if self.services is None:
            self.services = EmbeddedServices(
                account_id=self.config.account_id, region=self.config.region
            )
        self.code_store = CodeStore(self.config.data_dir / "code")
        self.pool = ContainerPool(
            backend=self.backend,
            credentials=CredentialsProvider(
                self.services, session_seconds=self.config.role_session_seconds
            ),
            config=self.config,
            instance_id=self.instance_id,
        )
        self.event_sources = EventSourceMappings(self)

    async def run(self, *, task_status: trio.TaskStatus[Simulator] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled, then remove every container this simulator started.

        Use with `nursery.start`; `started()` returns the simulator once it can
        invoke functions. Containers left by lambdasim processes that no longer run
        are removed first.
        """
        try:
            async with trio.open_nursery() as nursery:
                await self._remove_orphans()
                await nursery.start(self.pool.run)
                await nursery.start(self.event_sources.run)
                task_status.started(self)
                await trio.sleep_forever()
        finally:
            with trio.move_on_after(_SHUTDOWN_SWEEP_TIMEOUT) as scope:
                scope.shield = True
                await self._sweep_containers()
                await self.backend.aclose()

    def serve_on(self, host: str, port: int) -> None:
        """Record where the HTTP endpoint listens, for the containers started from now on.

        Needed when the server binds port 0 and learns its port only after the
        simulator was created.
        """
        self.config = attrs.evolve(self.config, host=host, port=port)
        self.pool.config = self.config

    async def _remove_orphans(self) -> None:
        if not await self.backend.ping():
            logger.warning(
                "the container engine is not reachable; invocations will fail until it is"
            )
            return
        removed = await self.backend.remove_orphans(self.instance_id)
        if removed:
            logger.info(
                "removed %d containers left by an earlier lambdasim process: %s",
                len(removed),
                ", ".join(removed),
            )

    async def _sweep_containers(self) -> None:
        try:
            removed = await self.backend.remove_instance(self.instance_id)
        except Exception:
            logger.exception("could not remove the containers of this simulator")
            return
        if removed:
            logger.warning("removed %d containers at shutdown: %s", len(removed), ", ".join(removed))

    # Functions -------------------------------------------------------------------

    def _arn(self, name: str, qualifier: str | None = None) -> str:
        return function_arn(self.config.region, self.config.account_id, name, qualifier)

    async def create_function(self, function: Function) -> DeployedFunction:
        """Create `function`, unpacking its code; raise if the name is taken."""
        if function.name in self._functions:
            raise ResourceConflictException(f"Function already exist: {function.name}")
        package = await self.code_store.store(function.code)
        runtime = lookup_runtime(function.runtime)
        # Another create of the same name may have finished while the code was unpacked.
        if function.name in self._functions:
            raise ResourceConflictException(f"Function already exist: {function.name}")
        deployed = DeployedFunction(
            function=function,
            package=package,
            arn=self._arn(function.name),
            image=runtime.image(self.config.image_registry),
        )
        self._functions[function.name] = deployed
        logger.info("created function %s (%s, %d bytes of code)", function.name, function.runtime, package.size)
        return deployed

    def get_function(self, name: str, qualifier: str | None = None) -> DeployedFunction:
        """Return the function that `name` (a name or ARN) refers to."""
        ref = parse_function_ref(
            name, region=self.config.region, account_id=self.config.account_id, qualifier=qualifier
        )
        deployed = self._functions.get(ref.name)
        if deployed is None or ref.qualifier not in (None, LATEST):
            raise ResourceNotFoundException(
                f"Function not found: {self._arn(ref.name, ref.qualifier)}"
            )
        return deployed

    def list_functions(self) -> list[DeployedFunction]:
        """Return every function, sorted by name."""
        return [self._functions[name] for name in sorted(self._functions)]

    async def delete_function(self, name: str, qualifier: str | None = None) -> None:
        """Delete a function and stop its environments."""
        deployed = self.get_function(name, qualifier)
        del self._functions[deployed.name]
        self.settings.forget(deployed.name)
        self.pool.set_reserved_concurrency(deployed.name, None)
        retired = self.pool.stop_function(deployed.name)
        logger.info("deleted function %s; stopping %d environments", deployed.name, retired)

    async def update_function_code(self, name: str, code: bytes) -> DeployedFunction:
        """Replace a function's deployment package.

        Environments of the old code stop: idle ones at once, busy ones after their
        invocation. No later invocation reaches them.
        """
        deployed = self.get_function(name)
        package = await self.code_store.store(code)
        function = attrs.evolve(deployed.function, code=code)
        return self._replace(deployed, function, package)

    def update_function_configuration(self, name: str, **changes: object) -> DeployedFunction:
        """Change fields of a function's configuration, validated as on creation.

        `changes` are `Function` fields such as `timeout` or `environment`.
        """
        deployed = self.get_function(name)
        function = attrs.evolve(deployed.function, **changes)  # type: ignore[arg-type]
        runtime = lookup_runtime(function.runtime)
        replaced = self._replace(deployed, function, deployed.package)
        replaced.image = runtime.image(self.config.image_registry)
        return replaced

    def _replace(
        self, deployed: DeployedFunction, function: Function, package: CodePackage
    ) -> DeployedFunction:
        deployed.function = function
        deployed.package = package
        deployed.revision += 1
        deployed.revision_id = str(uuid.uuid4())
        deployed.last_modified = _aws_timestamp()
        stopped = self.pool.stop_function(function.name, keep=deployed.snapshot().pool_key)
        logger.info(
            "updated function %s (revision %d); stopping %d old environments",
            function.name,
            deployed.revision,
            stopped,
        )
        return deployed

    # Concurrency -------------------------------------------------------------------

    def put_function_concurrency(self, name: str, reserved: int) -> int:
        """Reserve concurrency for a function; 0 throttles every invocation."""
        deployed = self._unqualified(name)
        limit = self.pool.account_limit
        others = sum(
            self.pool.reserved_concurrency(other.name) or 0
            for other in self._functions.values()
            if other.name != deployed.name
        )
        # AWS keeps at least 100 concurrent executions unreserved.
        minimum = min(MIN_UNRESERVED_CONCURRENCY, limit)
        if isinstance(reserved, bool) or not isinstance(reserved, int) or reserved < 0:
            raise InvalidParameterValueException(
                f"ReservedConcurrentExecutions must be 0 or more, got {reserved!r}"
            )
        if limit - others - reserved < minimum:
            raise InvalidParameterValueException(
                "Specified ReservedConcurrentExecutions for function decreases account's "
                f"UnreservedConcurrentExecution below its minimum value of [{minimum}]."
            )
        self.pool.set_reserved_concurrency(deployed.name, reserved)
        return reserved

    def get_function_concurrency(self, name: str) -> int | None:
        """Return a function's reserved concurrency, or None when it has none."""
        deployed = self._unqualified(name)
        return self.pool.reserved_concurrency(deployed.name)

    def delete_function_concurrency(self, name: str) -> None:
        """Remove a function's reserved concurrency."""
        deployed = self._unqualified(name)
        self.pool.set_reserved_concurrency(deployed.name, None)

    def unreserved_concurrency(self) -> int:
        """Return the account limit less every function's reserved concurrency."""
        reserved = sum(self.pool.reserved_concurrency(f.name) or 0 for f in self._functions.values())
        return self.pool.account_limit - reserved

    def _unqualified(self, name: str) -> DeployedFunction:
        ref = parse_function_ref(name, region=self.config.region, account_id=self.config.account_id)
        if ref.qualifier is not None:
            raise InvalidParameterValueException(
                "This operation is permitted on Lambda functions only. Aliases and versions do "
                "not support this operation. Please specify either a function name or an "
                "unqualified function ARN."
            )
        return self.get_function(name)

    async def fetch_s3_code(self, bucket: str, key: str, version: str | None = None) -> bytes:
        """Read a deployment package from the embedded S3, as CreateFunction does."""
        return await self.services.run_sync(self._read_s3_object, bucket, key, version)

    def _read_s3_object(self, bucket: str, key: str, version: str | None) -> bytes:
        from moto.s3.exceptions import MissingBucket, MissingKey
        from moto.s3.models import s3_backends

        backend = s3_backends[self.config.account_id]["aws"]
        try:
            stored = backend.get_object(bucket, key, version_id=version)
        except MissingBucket:
            stored, code, message = None, "NoSuchBucket", "The specified bucket does not exist"
        except MissingKey:
            stored, code, message = None, "NoSuchKey", "The specified key does not exist."
        else:
            code, message = "NoSuchKey", "The specified key does not exist."
        if stored is None:
            raise InvalidParameterValueException(
                f"Error occurred while GetObject. S3 Error Code: {code}. "
                f"S3 Error Message: {message}"
            )
        return bytes(stored.value)

    # Invocations -----------------------------------------------------------------

    async def invoke(
        self,
        name: str,
        payload: bytes | None = None,
        *,
        qualifier: str | None = None,
        client_context: str | None = None,
    ) -> InvocationResult:
        """Invoke a function synchronously and return its result.

        `payload` must be JSON; None or empty means `{}`. Function errors and
        timeouts are results with `function_error` set, not exceptions.
        """
        ref = parse_function_ref(
            name, region=self.config.region, account_id=self.config.account_id, qualifier=qualifier
        )
        deployed = self._functions.get(ref.name)
        if deployed is None or ref.qualifier not in (None, LATEST):
            raise ResourceNotFoundException(
                f"Function not found: {self._arn(ref.name, ref.qualifier or LATEST)}"
            )
        body = normalize_payload(payload)
        snapshot = deployed.snapshot()
        invocation = Invocation(
            request_id=str(uuid.uuid4()),
            payload=body,
            function_arn=deployed.arn,
            deadline_ms=0,
            trace_id=_trace_id(),
            client_context=client_context,
        )
        result = await self.pool.invoke(snapshot, invocation)
        return InvocationResult(
            request_id=invocation.request_id,
            payload=result.payload,
            executed_version=snapshot.version,
            function_error="Unhandled" if result.error_type else None,
            error_type=result.error_type,
        )


@asynccontextmanager
async def open_simulator(
    config: Config | None = None,
    *,
    backend: ContainerBackend | None = None,
    services: EmbeddedServices | None = None,
) -> AsyncIterator[Simulator]:
    """Run a simulator for the duration of an `async with` block.

    Leaving the block stops every environment and removes its containers.
    """
    simulator = Simulator(
        config=config or Config.from_env(), backend=backend, services=services
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(simulator.run)
        try:
            yield simulator
        finally:
            nursery.cancel_scope.cancel()
