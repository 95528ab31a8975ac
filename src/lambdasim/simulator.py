"""The simulator: functions, their code, and the environments that run them.

A `Simulator` owns everything long-lived in lambdasim (the container pool and,
through it, every execution environment) under one nursery. It is usable without
the HTTP server:

    async with lambdasim.open_simulator() as sim:
        await sim.create_function(lambdasim.Function(...))
        result = await sim.invoke("my-fn", b'{"x": 1}')
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from .arns import parse_function_ref
from .async_invoke import AsyncInvoker
from .backends.base import ContainerBackend
from .catalog import LATEST, Catalog, DeployedFunction, Resolved, aws_timestamp
from .code_store import CodeStore
from .config import Config
from .credentials import CredentialsProvider
from .errors import (
    InvalidParameterValueException,
    LambdaError,
    PreconditionFailedException,
    ResourceConflictException,
)
from .function import Function
from .function_settings import FunctionSettings
from .invoke import InvocationResult, normalize_payload
from .layers import LayerStore
from .logs import LogWriter
from .pollers import EventSourceMappings
from .pool import ContainerPool
from .registry import EcrCatalog, ImageUri, Registry, RegistryError, registry_address
from .runtime_api import Invocation
from .runtimes import lookup_runtime
from .services import EmbeddedServices

logger = logging.getLogger("lambdasim.simulator")

#: Concurrent executions AWS keeps unreserved in every account.
MIN_UNRESERVED_CONCURRENCY = 100
#: Seconds a final sweep of leftover containers may take at shutdown.
_SHUTDOWN_SWEEP_TIMEOUT = 20.0


def _trace_id() -> str:
    return (
        f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};"
        f"Parent={secrets.token_hex(8)};Sampled=0"
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
    #: The image registry that `docker push` reaches on the endpoint, backed by ECR.
    registry: Registry = attrs.field(init=False)
    settings: FunctionSettings = attrs.field(factory=FunctionSettings, init=False)
    log_writer: LogWriter = attrs.field(init=False)
    async_invoker: AsyncInvoker = attrs.field(init=False)
    catalog: Catalog = attrs.field(init=False)
    layers: LayerStore = attrs.field(init=False)
    _nursery: trio.Nursery | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if self.backend is None:
            from .backends.docker import DockerBackend

            self.backend = DockerBackend()
        if self.services is None:
            self.services = EmbeddedServices(
                account_id=self.config.account_id, region=self.config.region
            )
        self.catalog = Catalog(region=self.config.region, account_id=self.config.account_id)
        self.code_store = CodeStore(self.config.data_dir / "code")
        self.layers = LayerStore(
            self.config.data_dir / "layers",
            region=self.config.region,
            account_id=self.config.account_id,
        )
        self.pool = ContainerPool(
            backend=self.backend,
            credentials=CredentialsProvider(
                self.services, session_seconds=self.config.role_session_seconds
            ),
            config=self.config,
            instance_id=self.instance_id,
        )
        self.event_sources = EventSourceMappings(self)
        self.log_writer = LogWriter(self.services)
        self.async_invoker = AsyncInvoker(self, retry_delay=self.config.async_retry_delay)
        self.pool.log_sink = self.log_writer.submit
        self.registry = Registry(
            self.config.data_dir / "registry",
            catalog=EcrCatalog(self.services, region=self.config.region),
            region=self.config.region,
        )

    async def run(
        self, *, task_status: trio.TaskStatus[Simulator] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run until cancelled, then remove every container this simulator started.

        Use with `nursery.start`; `started()` returns the simulator once it can
        invoke functions. Containers left by lambdasim processes that no longer run
        are removed first.
        """
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self._remove_orphans()
                await nursery.start(self.log_writer.run)
                await nursery.start(self.pool.run)
                await nursery.start(self.event_sources.run)
                await nursery.start(self.async_invoker.run)
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
            logger.warning(
                "removed %d containers at shutdown: %s", len(removed), ", ".join(removed)
            )

    # Functions -------------------------------------------------------------------

    def _arn(self, name: str, qualifier: str | None = None) -> str:
        return self.catalog.arn(name, qualifier)

    async def create_function(self, function: Function) -> DeployedFunction:
        """Create `function`, unpacking its code; raise if the name is taken.

        The function is Active at once when its image is in the engine. Otherwise it
        is Pending while the image is pulled, and Failed if the pull fails. An image
        function is pinned to the digest its tag has now.
        """
        if function.name in self.catalog:
            raise ResourceConflictException(f"Function already exist: {function.name}")
        deployed = DeployedFunction(
            function=function,
            package=None,
            arn=self._arn(function.name),
            image="",
            revision=self.catalog.next_revision(),
            state="Pending",
            state_reason="The function is being created.",
            state_reason_code="Creating",
        )
        failure = await self._load_code(deployed, function)
        # Another create of the same name may have finished while the code was loaded.
        self.catalog.add(deployed)
        logger.info("created function %s (%s)", function.name, function.runtime or deployed.image)
        if failure is not None:
            self._set_failed(deployed, *failure)
        else:
            await self._activate(deployed)
        return deployed

    async def _load_code(
        self, deployed: DeployedFunction, function: Function
    ) -> tuple[str, str] | None:
        """Unpack the code or resolve the image of `function` into `deployed`.

        Returns the reason code and message of a missing image, which fails the
        function instead of its creation, as on AWS.
        """
        if function.layers:
            versions = await self.layers.resolve_for_function(list(function.layers))
            deployed.opt_path = str(await self.layers.merged_opt(versions)) if versions else None
            deployed.layer_sizes = tuple((v.arn, v.code_size) for v in versions)
        else:
            deployed.opt_path = None
            deployed.layer_sizes = ()
        if function.package_type == "Zip":
            assert function.runtime is not None
            deployed.package = await self.code_store.store(function.code)
            deployed.image = lookup_runtime(function.runtime).image(self.config.image_registry)
            deployed.image_digest = deployed.resolved_image_uri = None
            return None
        assert function.image_uri is not None
        deployed.package = None
        try:
            uri = ImageUri.parse(function.image_uri)
        except ValueError as exc:
            raise InvalidParameterValueException(
                f"Source image {function.image_uri} is not valid: {exc}"
            ) from None
        try:
            resolved_image = await self.registry.resolve(uri.repository, uri.reference)
        except RegistryError as exc:
            deployed.image = function.image_uri
            code = "ImageDeleted" if exc.code == "MANIFEST_UNKNOWN" else "ImageAccessDenied"
            return code, (
                f"Source image {function.image_uri} does not exist: {exc.message}. Push it "
                f"with `docker push {registry_address(self.config)}/{uri.repository.path}:"
                f"{uri.tag or 'latest'}` after `aws ecr create-repository "
                f"--repository-name {uri.repository.name}`, then update the function code."
            )
        address = registry_address(self.config)
        deployed.image = f"{address}/{uri.repository.path}@{resolved_image.digest}"
        deployed.image_digest = resolved_image.digest
        host = function.image_uri.split("/", 1)[0]
        deployed.resolved_image_uri = f"{host}/{uri.repository.name}@{resolved_image.digest}"
        image_config = await self.registry.image_config(resolved_image) or {}
        deployed.image_defaults = dict(image_config.get("config") or {})
        return None

    @staticmethod
    def _set_failed(deployed: DeployedFunction, code: str, message: str) -> None:
        logger.error("function %s cannot run: %s", deployed.name, message)
        deployed.state = "Failed"
        deployed.state_reason = message
        deployed.state_reason_code = code

    async def _activate(self, deployed: DeployedFunction) -> None:
        """Make `deployed` Active once its image is available, pulling it in the background."""
        if await self.backend.has_image(deployed.image):
            self._set_active(deployed)
            return
        if self._nursery is None:
            raise RuntimeError("the simulator is not running; start it with nursery.start(sim.run)")
        self._nursery.start_soon(self._pull_then_activate, deployed)

    async def _pull_then_activate(self, deployed: DeployedFunction) -> None:
        try:
            await self.backend.ensure_image(deployed.image)
        except LambdaError as exc:
            self._set_failed(deployed, "ImageAccessDenied", exc.message)
            return
        self._set_active(deployed)

    @staticmethod
    def _set_active(deployed: DeployedFunction) -> None:
        deployed.state = "Active"
        deployed.state_reason = None
        deployed.state_reason_code = None

    def get_function(self, name: str, qualifier: str | None = None) -> DeployedFunction:
        """Return the version that `name` (a name or ARN) and `qualifier` refer to."""
        return self.catalog.resolve(name, qualifier).deployed

    def resolve(self, name: str, qualifier: str | None = None) -> Resolved:
        """Resolve a name or ARN and qualifier; see `Catalog.resolve`."""
        return self.catalog.resolve(name, qualifier)

    def list_functions(self) -> list[DeployedFunction]:
        """Return the `$LATEST` version of every function, sorted by name."""
        return [entry.latest for entry in self.catalog.entries()]

    def list_versions(self, name: str) -> list[DeployedFunction]:
        """Return `$LATEST` and the published versions of a function, oldest first."""
        entry = self.catalog.entry(name)
        return [entry.latest, *(entry.versions[v] for v in sorted(entry.versions, key=int))]

    async def delete_function(self, name: str, qualifier: str | None = None) -> None:
        """Delete a function, or one published version of it, and stop its environments."""
        resolved = self.catalog.resolve(name, qualifier)
        function_name = resolved.deployed.name
        if resolved.alias is not None:
            raise InvalidParameterValueException(
                "Deletion of aliases is not supported by DeleteFunction; use DeleteAlias."
            )
        if resolved.deployed.version != LATEST:
            self.catalog.delete_version(function_name, resolved.deployed.version)
            self.settings.forget(function_name, resolved.deployed.version)
            stopped = self.pool.stop_function(function_name, version=resolved.deployed.version)
            logger.info(
                "deleted version %s of %s; stopping %d environments",
                resolved.deployed.version,
                function_name,
                stopped,
            )
            return
        self.catalog.remove(function_name)
        self.settings.forget(function_name)
        self.pool.set_reserved_concurrency(function_name, None)
        stopped = self.pool.stop_function(function_name)
        logger.info("deleted function %s; stopping %d environments", function_name, stopped)

    async def update_function_code(
        self,
        name: str,
        code: bytes = b"",
        *,
        image_uri: str | None = None,
        revision_id: str | None = None,
        publish: bool = False,
    ) -> DeployedFunction:
        """Replace a function's deployment package.

        Environments of the old code stop: idle ones at once, busy ones after their
        invocation. No later invocation reaches them. With `publish`, the new code is
        also published as a version, which is returned.
        """
        deployed = self._latest_for_update(name, revision_id)
        if image_uri is not None:
            function = attrs.evolve(deployed.function, image_uri=image_uri)
        else:
            function = attrs.evolve(deployed.function, code=code)
        failure = await self._load_code(deployed, function)
        self._check_revision(deployed, revision_id)
        self._replace(deployed, function)
        if failure is not None:
            self._set_failed(deployed, *failure)
        else:
            await self._activate(deployed)
        if publish:
            return self.catalog.publish_version(deployed.name)
        return deployed

    async def update_function_configuration(
        self, name: str, *, revision_id: str | None = None, **changes: object
    ) -> DeployedFunction:
        """Change fields of a function's configuration, validated as on creation.

        `changes` are `Function` fields such as `timeout`, `environment` or `layers`.
        """
        deployed = self._latest_for_update(name, revision_id)
        function = attrs.evolve(deployed.function, **changes)  # type: ignore[arg-type]
        if (
            function.layers != deployed.function.layers
            or function.runtime != deployed.function.runtime
        ):
            await self._load_code(deployed, function)
        self._check_revision(deployed, revision_id)
        self._replace(deployed, function)
        return deployed

    def publish_version(
        self,
        name: str,
        *,
        code_sha256: str | None = None,
        description: str | None = None,
        revision_id: str | None = None,
    ) -> DeployedFunction:
        """Publish `$LATEST` as a new version; see `Catalog.publish_version`."""
        self._unqualified(name)
        return self.catalog.publish_version(
            name, code_sha256=code_sha256, description=description, revision_id=revision_id
        )

    def _latest_for_update(self, name: str, revision_id: str | None) -> DeployedFunction:
        ref = parse_function_ref(name, region=self.config.region, account_id=self.config.account_id)
        if ref.qualifier not in (None, LATEST):
            raise InvalidParameterValueException(
                "Updating a function version or alias is not supported; give the unqualified "
                "function name or ARN."
            )
        deployed = self.catalog.entry(name).latest
        if deployed.last_update_status == "InProgress":
            raise ResourceConflictException(
                "The operation cannot be performed at this time. An update is in progress for "
                f"resource: {deployed.arn}"
            )
        self._check_revision(deployed, revision_id)
        return deployed

    @staticmethod
    def _check_revision(deployed: DeployedFunction, revision_id: str | None) -> None:
        if revision_id is not None and revision_id != deployed.revision_id:
            raise PreconditionFailedException(
                "The Revision Id provided does not match the latest Revision Id. Call the "
                "GetFunction/GetAlias API to retrieve the latest Revision Id"
            )

    def _replace(self, deployed: DeployedFunction, function: Function) -> DeployedFunction:
        deployed.function = function
        deployed.revision = self.catalog.next_revision()
        deployed.revision_id = str(uuid.uuid4())
        deployed.last_modified = aws_timestamp()
        deployed.last_update_status = "Successful"
        if self.config.update_seconds > 0 and self._nursery is not None:
            # The update takes effect at once, but reports InProgress for a while, so
            # tools see AWS's conflict for an update during an update.
            deployed.last_update_status = "InProgress"
            self._nursery.start_soon(self._finish_update, deployed, deployed.revision)
        stopped = self.pool.stop_function(
            function.name, keep=deployed.snapshot().pool_key, version=LATEST
        )
        logger.info(
            "updated function %s (revision %d); stopping %d old environments",
            function.name,
            deployed.revision,
            stopped,
        )
        return deployed

    async def _finish_update(self, deployed: DeployedFunction, revision: int) -> None:
        await trio.sleep(self.config.update_seconds)
        if deployed.revision == revision:
            deployed.last_update_status = "Successful"

    # Concurrency -------------------------------------------------------------------

    def put_function_concurrency(self, name: str, reserved: int) -> int:
        """Reserve concurrency for a function; 0 throttles every invocation."""
        deployed = self._unqualified(name)
        limit = self.pool.account_limit
        others = sum(
            self.pool.reserved_concurrency(other.name) or 0
            for other in self.list_functions()
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
        reserved = sum(self.pool.reserved_concurrency(f.name) or 0 for f in self.list_functions())
        return self.pool.account_limit - reserved

    def _unqualified(self, name: str) -> DeployedFunction:
        ref = parse_function_ref(name, region=self.config.region, account_id=self.config.account_id)
        if ref.qualifier is not None:
            raise InvalidParameterValueException(
                "This operation is permitted on Lambda functions only. Aliases and versions do "
                "not support this operation. Please specify either a function name or an "
                "unqualified function ARN."
            )
        return self.catalog.entry(name).latest

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
        log_tail: bool = False,
        request_id: str | None = None,
    ) -> InvocationResult:
        """Invoke a function synchronously and return its result.

        `payload` must be JSON; None or empty means `{}`. Function errors and
        timeouts are results with `function_error` set, not exceptions. With
        `log_tail`, the result carries the end of the invocation's log, as
        `LogType=Tail` returns it.
        """
        resolved = self.catalog.resolve(name, qualifier, route=True, missing_suffix=LATEST)
        deployed = resolved.deployed
        if deployed.state != "Active":
            raise ResourceConflictException(
                "The operation cannot be performed at this time. The function is currently in "
                f"the following state: {deployed.state}"
            )
        body = normalize_payload(payload)
        snapshot = deployed.snapshot()
        invocation = Invocation(
            request_id=request_id or str(uuid.uuid4()),
            payload=body,
            function_arn=resolved.invoked_arn,
            deadline_ms=0,
            trace_id=_trace_id(),
            client_context=client_context,
        )
        result = await self.pool.invoke(snapshot, invocation)
        log_result = None
        if log_tail and invocation.log is not None:
            await invocation.log.done.wait()
            log_result = base64.b64encode(invocation.log.tail()).decode()
        return InvocationResult(
            request_id=invocation.request_id,
            payload=result.payload,
            executed_version=snapshot.version,
            function_error="Unhandled" if result.error_type else None,
            error_type=result.error_type,
            log_result=log_result,
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
    simulator = Simulator(config=config or Config.from_env(), backend=backend, services=services)
    async with trio.open_nursery() as nursery:
        await nursery.start(simulator.run)
        try:
            yield simulator
        finally:
            nursery.cancel_scope.cancel()
