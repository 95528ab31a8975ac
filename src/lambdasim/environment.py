"""One execution environment: a container, its Runtime API listener and credentials.

An environment serves one invocation at a time, as on AWS. `run()` starts it and
returns control through `nursery.start` once the runtime has finished init. The
environment then lives until `stop()` is called or its container exits. It
removes its container on every way out.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Mapping

import attrs
import trio

from .backends.base import (
    ENVIRONMENT_LABEL,
    FUNCTION_LABEL,
    INSTANCE_LABEL,
    MANAGED_LABEL,
    OWNER_PID_LABEL,
    VERSION_LABEL,
    ContainerBackend,
    ContainerHandle,
    ContainerSpec,
    Mount,
)
from .credentials import Credentials
from .logs import MAX_DRAIN_SECONDS, QUIET_SECONDS, InvocationLog, LogSink
from .runtime_api import ContainerExited, Invocation, RuntimeAPI, RuntimeResult, exit_error
from .runtimes import Runtime

logger = logging.getLogger("lambdasim.environment")
function_logger = logging.getLogger("lambdasim.function")

#: Seconds the runtime may take to finish init. AWS allows 10 s for on-demand functions.
INIT_TIMEOUT = 10.0
#: Seconds a container removal may take before the environment gives up on it.
REMOVE_TIMEOUT = 15.0

_EXIT_INVALID_ENTRYPOINT = (126, 127)
#: Seconds for which a read of the container's memory peak is reused. The cgroup's
#: peak never decreases, so a reused read is at most this old and never too high.
MEMORY_PEAK_MAX_AGE = 0.1


@attrs.frozen
class FunctionSnapshot:
    """One revision of one function version, frozen: the code and settings an environment runs."""

    name: str
    version: str
    #: Increases with every change of code or configuration; part of the pool key.
    revision: int
    arn: str
    #: None for image functions, whose image brings its own runtime.
    runtime: Runtime | None
    #: None for image functions that leave the handler to the image's CMD.
    handler: str | None
    role: str
    timeout: int
    memory_size: int
    environment: Mapping[str, str]
    #: The unpacked deployment package, mounted at /var/task; None for image functions.
    code_path: str | None
    image: str
    #: The merged layers, mounted at /opt.
    opt_path: str | None = None
    #: Container command and entrypoint; None keeps the image's own.
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    working_dir: str | None = None
    #: The image platform, `linux/amd64` or `linux/arm64`, from the function's architecture.
    platform: str = "linux/amd64"

    @property
    def pool_key(self) -> tuple[str, str, int]:
        return (self.name, self.version, self.revision)


class EnvironmentInitError(Exception):
    """Init failed; `result` is what the failed invocation reports."""

    def __init__(self, result: RuntimeResult) -> None:
        super().__init__(result.error_type)
        self.result = result


def _log_stream_name(version: str) -> str:
    today = datetime.datetime.now(datetime.UTC).strftime("%Y/%m/%d")
    return f"{today}/[{version}]{uuid.uuid4().hex}"


def timeout_result(request_id: str, timeout: float) -> RuntimeResult:
    """Return what AWS reports for an invocation that ran past its timeout."""
    body = {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds",
    }
    return RuntimeResult(json.dumps(body).encode(), "Sandbox.Timedout")


@attrs.define(eq=False)
class ExecutionEnvironment:
    """A container running one function revision, with its own Runtime API."""

    snapshot: FunctionSnapshot
    backend: ContainerBackend
    credentials: Credentials
    endpoint_url: str
    region: str
    instance_id: str
    network: str = "host"
    id: str = attrs.field(factory=lambda: uuid.uuid4().hex)
    log_stream_name: str = attrs.field(init=False)
    container: ContainerHandle | None = attrs.field(default=None, init=False)
    started_at: float | None = attrs.field(default=None, init=False)
    last_used: float | None = attrs.field(default=None, init=False)
    invocations: int = attrs.field(default=0, init=False)
    #: False once the container died or was killed; the pool then drops the environment.
    usable: bool = attrs.field(default=True, init=False)
    busy: bool = attrs.field(default=False, init=False)
    #: Called when the idle deadline passes; the pool decides whether to stop.
    on_idle_deadline: Callable[[ExecutionEnvironment], None] | None = attrs.field(
        default=None, init=False
    )
    #: Receives each invocation's finished log, for CloudWatch Logs.
    on_log: LogSink | None = attrs.field(default=None, init=False)
    init_duration_ms: float | None = attrs.field(default=None, init=False)
    _api: RuntimeAPI = attrs.field(init=False)
    _stop: trio.Event = attrs.field(factory=trio.Event, init=False)
    _nursery: trio.Nursery | None = attrs.field(default=None, init=False)
    _log: InvocationLog | None = attrs.field(default=None, init=False)
    _partial: dict[str, str] = attrs.field(factory=dict, init=False)
    _idle_deadline: float = attrs.field(default=math.inf, init=False)
    _idle_timer: trio.CancelScope | None = attrs.field(default=None, init=False)
    _memory_peak_mb: int | None = attrs.field(default=None, init=False)
    _memory_peak_read_at: float = attrs.field(default=-math.inf, init=False)

    def __attrs_post_init__(self) -> None:
        self.log_stream_name = _log_stream_name(self.snapshot.version)
        self._api = RuntimeAPI(self.id)

    @property
    def short_id(self) -> str:
        return self.container.short_id if self.container else "-"

    def _container_environment(self, port: int) -> dict[str, str]:
        snapshot = self.snapshot
        variables = {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.credentials.secret_access_key,
            "AWS_LAMBDA_FUNCTION_NAME": snapshot.name,
            "AWS_LAMBDA_FUNCTION_VERSION": snapshot.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(snapshot.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{snapshot.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream_name,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
            "LAMBDA_TASK_ROOT": "/var/task",
            "LAMBDA_RUNTIME_DIR": "/var/runtime",
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
        }
        if snapshot.runtime is not None:
            variables["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{snapshot.runtime.name}"
        if snapshot.handler:
            variables["_HANDLER"] = snapshot.handler
        if self.credentials.session_token:
            variables["AWS_SESSION_TOKEN"] = self.credentials.session_token
        # User variables come last. Reserved names were rejected when the function
        # was created, so they cannot replace what the runtime depends on.
        variables.update(snapshot.environment)
        return variables

    def _container_spec(self, port: int) -> ContainerSpec:
        snapshot = self.snapshot
        name = f"lambdasim-{snapshot.name[:40]}-{self.id[:12]}"
        mounts = []
        if snapshot.code_path is not None:
            mounts.append(Mount(snapshot.code_path, "/var/task", read_only=True))
        if snapshot.opt_path is not None:
            mounts.append(Mount(snapshot.opt_path, "/opt", read_only=True))
        if snapshot.command is not None:
            command: tuple[str, ...] = snapshot.command
        elif snapshot.code_path is not None and snapshot.handler:
            command = (snapshot.handler,)
        else:
            command = ()
        return ContainerSpec(
            image=snapshot.image,
            name=name,
            command=command,
            entrypoint=snapshot.entrypoint,
            working_dir=snapshot.working_dir,
            environment=self._container_environment(port),
            mounts=tuple(mounts),
            platform=snapshot.platform,
            labels={
                MANAGED_LABEL: "true",
                INSTANCE_LABEL: self.instance_id,
                OWNER_PID_LABEL: str(os.getpid()),
                FUNCTION_LABEL: snapshot.name,
                VERSION_LABEL: snapshot.version,
                ENVIRONMENT_LABEL: self.id,
            },
            network=self.network,
            memory_mb=snapshot.memory_size,
        )

    def _on_output(self, stream: str, chunk: bytes) -> None:
        text = self._partial.pop(stream, "") + chunk.decode(errors="replace")
        *lines, rest = text.split("\n")
        if rest:
            self._partial[stream] = rest
        log = self._log
        for line in lines:
            function_logger.debug("%s %s: %s", self.snapshot.name, self.short_id, line)
            if log is not None:
                log.add(line)
        if log is not None:
            log.last_output = trio.current_time()

    async def run(
        self, *, task_status: trio.TaskStatus[ExecutionEnvironment] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Start the container and serve until `stop()` or the container's exit.

        Use with `nursery.start`: `started()` returns the environment once the runtime
        has finished init. An init failure raises EnvironmentInitError instead, after
        the container was removed. The container is removed on every way out.
        """
        begun = time.monotonic()
        # Errors before `started()` are raised after the nursery closes, so that the
        # caller of `nursery.start` gets them bare rather than in an exception group.
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            port = await nursery.start(self._api.serve)
            try:
                self.container = await self.backend.start(
                    self._container_spec(port), self._on_output
                )
                logger.info(
                    "environment starting: function %s version %s container %s",
                    self.snapshot.name,
                    self.snapshot.version,
                    self.short_id,
                )
                nursery.start_soon(self._watch_container)
                await self._finish_init()
            except Exception as exc:
                failure = exc
            else:
                self.started_at = time.time()
                self.init_duration_ms = (time.monotonic() - begun) * 1000
                logger.info(
                    "environment ready: function %s container %s in %.0f ms",
                    self.snapshot.name,
                    self.short_id,
                    (time.monotonic() - begun) * 1000,
                )
                task_status.started(self)
                await self._serve_until_stopped()
            finally:
                self.usable = False
                self._close_log()
                await self._remove_container()
                nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _serve_until_stopped(self) -> None:
        # The idle timer is a cancel scope whose deadline the pool moves: to the
        # keep-alive or recycle time while idle, and to infinity while busy.
        while not self._stop.is_set():
            with trio.CancelScope(deadline=self._idle_deadline) as timer:
                self._idle_timer = timer
                await self._stop.wait()
            self._idle_timer = None
            if timer.cancelled_caught and self.on_idle_deadline is not None:
                self.on_idle_deadline(self)
                if self._idle_deadline <= trio.current_time() and not self._stop.is_set():
                    # The pool kept the environment without moving the deadline.
                    self._idle_deadline = math.inf

    def set_idle_deadline(self, deadline: float) -> None:
        """Move the idle timer to `deadline` (trio time); `math.inf` cancels it."""
        self._idle_deadline = deadline
        if self._idle_timer is not None:
            self._idle_timer.deadline = deadline

    async def _finish_init(self) -> None:
        with trio.move_on_after(INIT_TIMEOUT) as scope:
            await self._api.wait_init()
        if scope.cancelled_caught:
            # NOTE: AWS would retry init within the invocation's timeout; this fails at once.
            raise EnvironmentInitError(
                RuntimeResult(
                    json.dumps(
                        {
                            "errorType": "Runtime.InitTimeout",
                            "errorMessage": f"Init did not finish within {INIT_TIMEOUT:.0f} seconds",
                        }
                    ).encode(),
                    "Runtime.InitTimeout",
                )
            )
        if self._api.ready:
            return
        if self._api.init_error is not None:
            error = self._api.init_error
            raise EnvironmentInitError(RuntimeResult(error.payload, error.error_type))
        status = self._api.exit_status
        if status in _EXIT_INVALID_ENTRYPOINT:
            body = {
                "errorType": "Runtime.InvalidEntrypoint",
                "errorMessage": f"RequestId:  Error: the runtime's entrypoint could not be run "
                f"(exit status {status})",
            }
            raise EnvironmentInitError(
                RuntimeResult(json.dumps(body).encode(), "Runtime.InvalidEntrypoint")
            )
        raise EnvironmentInitError(exit_error("", status))

    async def _watch_container(self) -> None:
        assert self.container is not None
        status = await self.backend.wait(self.container)
        if self.usable:
            logger.info(
                "environment's container exited: function %s container %s status %s",
                self.snapshot.name,
                self.short_id,
                status,
            )
        self.usable = False
        self._api.container_exited(status)
        self._stop.set()

    async def _remove_container(self) -> None:
        if self.container is None:
            return
        with trio.move_on_after(REMOVE_TIMEOUT) as scope:
            scope.shield = True
            try:
                await self.backend.remove(self.container)
            except Exception:
                logger.exception("could not remove container %s", self.short_id)
                return
        if scope.cancelled_caught:
            logger.error("removing container %s timed out", self.short_id)
            return
        logger.info(
            "environment stopped: function %s container %s", self.snapshot.name, self.short_id
        )

    def stop(self) -> None:
        """Ask the environment to remove its container and end `run()`."""
        self.usable = False
        self._stop.set()

    async def invoke(self, invocation: Invocation) -> RuntimeResult:
        """Run one invocation, enforcing the function's timeout.

        A timed-out invocation or a crashed container leaves the environment unusable
        and stopping. The result then describes the failure. The invocation's log is
        attached to `invocation.log`; it is complete once `invocation.log.done` is set.
        """
        timeout = self.snapshot.timeout
        if self._log is not None and not self._log.closed:
            # The previous invocation's output has not been quiet long enough, so its
            # log closes now.
            self._log.max_memory_used_mb = await self._read_memory_peak()
        self._close_log()
        log = InvocationLog(invocation.request_id, self.snapshot.version, self.snapshot.memory_size)
        if self.invocations == 0:
            log.init_duration_ms = self.init_duration_ms
        log.start()
        self._log = log
        invocation.log = log
        self.invocations += 1
        self.busy = True
        begun = time.monotonic()
        invocation.deadline_ms = int(time.time() * 1000 + timeout * 1000)
        result: RuntimeResult | None = None
        try:
            with trio.move_on_after(timeout):
                try:
                    result = await self._api.dispatch(invocation)
                except ContainerExited as exc:
                    result = exit_error(invocation.request_id, exc.status)
        finally:
            self.busy = False
            log.duration_ms = (time.monotonic() - begun) * 1000
            if self._nursery is not None and not log.closed:
                self._nursery.start_soon(self._drain_log, log)
        self.last_used = time.time()
        if result is None:
            logger.info(
                "invocation %s of %s timed out after %s s; killing container %s",
                invocation.request_id,
                self.snapshot.name,
                timeout,
                self.short_id,
            )
            log.add(
                f"{datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z "
                f"{invocation.request_id} Task timed out after {timeout:.2f} seconds"
            )
            self.stop()
            return timeout_result(invocation.request_id, timeout)
        if result.error_type in ("Runtime.ExitError", "Function.ResponseSizeTooLarge"):
            # Runtime clients exit when the Runtime API rejects their response.
            self.stop()
        return result

    async def _drain_log(self, log: InvocationLog) -> None:
        """Close `log` once the container's output is quiet, within a bound."""
        try:
            responded = trio.current_time()
            deadline = responded + MAX_DRAIN_SECONDS
            while not log.closed:
                # Quiet means no output for QUIET_SECONDS, counted from the response at
                # the earliest.
                quiet_at = max(log.last_output, responded) + QUIET_SECONDS
                if trio.current_time() >= min(quiet_at, deadline):
                    break
                await trio.sleep_until(min(quiet_at, deadline))
            if not log.closed:
                log.max_memory_used_mb = await self._read_memory_peak()
        finally:
            self._finish(log)

    async def _read_memory_peak(self) -> int | None:
        """Read the container's memory peak in MiB, or reuse a read younger than the max age."""
        now = trio.current_time()
        if self.container is not None and now - self._memory_peak_read_at >= MEMORY_PEAK_MAX_AGE:
            self._memory_peak_read_at = now
            peak = await self.backend.memory_peak_bytes(self.container)
            if peak is not None:
                self._memory_peak_mb = math.ceil(peak / (1024 * 1024))
        return self._memory_peak_mb

    def _close_log(self) -> None:
        if self._log is not None:
            self._finish(self._log)
            self._log = None

    def _finish(self, log: InvocationLog) -> None:
        if log.closed:
            return
        log.close()
        if self.on_log is not None:
            self.on_log(f"/aws/lambda/{self.snapshot.name}", self.log_stream_name, log)
