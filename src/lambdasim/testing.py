"""Helpers for testing functions and lambdasim itself."""

from __future__ import annotations

import datetime
import io
import json
import zipfile
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import h11
import trio

from .backends.base import ContainerHandle, ContainerSpec, OutputCallback
from .credentials import Credentials


def make_zip(files: dict[str, str | bytes], modes: dict[str, int] | None = None) -> bytes:
    """Return a zip archive of `files` with Unix modes: 0644 unless `modes` names another."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | (modes or {}).get(name, 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue()


# A fake container backend ----------------------------------------------------------
#
# Each fake "container" is a trio task in the test's own event loop that speaks the
# Runtime API over a real loopback connection, like a runtime client, and runs an
# async Python handler. Pool and environment code therefore run unchanged, while
# the test controls time with trio's MockClock.

FakeHandler = Callable[[Any], Awaitable[Any]]


async def _echo(event: Any) -> Any:
    return event


@attrs.define(eq=False)
class FakeContainer:
    """One fake container: its spec, lifetime and exit status."""

    handle: ContainerHandle
    spec: ContainerSpec
    started_at: float
    removed_at: float | None = None
    exit_status: int | None = None
    exited: trio.Event = attrs.field(factory=trio.Event)
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)


@attrs.define(eq=False)
class FakeBackend:
    """A `ContainerBackend` whose containers are tasks in the caller's event loop.

    Start it with `nursery.start(backend.run)`. `handler` runs each invocation;
    `start_delay` is the (virtual) time a container takes to reach its first
    `/next`. Setting `init_error` makes new containers post that error type to
    `/runtime/init/error` and exit 1; setting `engine_error` makes `start` raise it.
    """

    handler: FakeHandler = _echo
    start_delay: float = 0.1
    init_error: str | None = None
    engine_error: Exception | None = None
    containers: list[FakeContainer] = attrs.field(factory=list, init=False)
    #: The largest number of containers that were between start and first `/next`.
    max_starting: int = attrs.field(default=0, init=False)
    _starting: int = attrs.field(default=0, init=False)
    _nursery: trio.Nursery | None = attrs.field(default=None, init=False)

    async def run(
        self, *, task_status: trio.TaskStatus[FakeBackend] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Host the fake containers until cancelled. Use with `nursery.start`."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started(self)
            await trio.sleep_forever()

    @property
    def running(self) -> list[FakeContainer]:
        return [c for c in self.containers if not c.exited.is_set()]

    async def ping(self) -> bool:
        return True

    async def has_image(self, image: str) -> bool:
        await trio.lowlevel.checkpoint()
        return True

    async def ensure_image(self, image: str) -> None:
        await trio.lowlevel.checkpoint()

    async def start(self, spec: ContainerSpec, on_output: OutputCallback) -> ContainerHandle:
        await trio.lowlevel.checkpoint()
        if self.engine_error is not None:
            raise self.engine_error
        assert self._nursery is not None, "start the backend with nursery.start(backend.run)"
        handle = ContainerHandle(id=f"fake-{len(self.containers)}", name=spec.name)
        container = FakeContainer(handle=handle, spec=spec, started_at=trio.current_time())
        self.containers.append(container)
        self._nursery.start_soon(self._run_container, container, on_output)
        return handle

    async def wait(self, handle: ContainerHandle) -> int | None:
        container = self._container(handle)
        await container.exited.wait()
        return container.exit_status

    async def memory_peak_bytes(self, handle: ContainerHandle) -> int | None:
        await trio.lowlevel.checkpoint()
        return 42 * 1024 * 1024

    async def remove(self, handle: ContainerHandle) -> None:
        container = self._container(handle)
        if container.removed_at is None:
            container.removed_at = trio.current_time()
        container.scope.cancel()
        await trio.lowlevel.checkpoint()

    async def remove_instance(self, instance_id: str) -> list[str]:
        names = []
        for container in self.running:
            await self.remove(container.handle)
            names.append(container.handle.name)
        return names

    async def remove_orphans(self, instance_id: str) -> list[str]:
        await trio.lowlevel.checkpoint()
        return []

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    def _container(self, handle: ContainerHandle) -> FakeContainer:
        for container in self.containers:
            if container.handle.id == handle.id:
                return container
        raise KeyError(handle.id)

    async def _run_container(self, container: FakeContainer, on_output: OutputCallback) -> None:
        status = 0
        self._starting += 1
        self.max_starting = max(self.max_starting, self._starting)
        starting = True
        try:
            with container.scope:
                address = container.spec.environment["AWS_LAMBDA_RUNTIME_API"]
                host, _, port = address.partition(":")
                await trio.sleep(self.start_delay)
                client = _RuntimeClient(await trio.open_tcp_stream(host, int(port)))
                if self.init_error is not None:
                    error = {"errorType": self.init_error, "errorMessage": "fake init failure"}
                    await client.request(
                        "POST",
                        "/2018-06-01/runtime/init/error",
                        json.dumps(error).encode(),
                        [("Lambda-Runtime-Function-Error-Type", self.init_error)],
                    )
                    status = 1
                    return
                while True:
                    if starting:
                        self._starting -= 1
                        starting = False
                    headers, body = await client.request(
                        "GET", "/2018-06-01/runtime/invocation/next"
                    )
                    request_id = headers["lambda-runtime-aws-request-id"]
                    on_output("stdout", f"invocation {request_id}\n".encode())
                    try:
                        result = await self.handler(json.loads(body))
                    except Exception as exc:
                        error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
                        await client.request(
                            "POST",
                            f"/2018-06-01/runtime/invocation/{request_id}/error",
                            json.dumps(error).encode(),
                        )
                    else:
                        await client.request(
                            "POST",
                            f"/2018-06-01/runtime/invocation/{request_id}/response",
                            json.dumps(result).encode(),
                        )
            status = 137  # removed while running, like `docker rm -f`
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            status = 1
        finally:
            if starting:
                self._starting -= 1
            container.exit_status = status
            container.exited.set()


@attrs.define(eq=False)
class _RuntimeClient:
    """A minimal HTTP/1.1 keep-alive client for the Runtime API."""

    stream: trio.SocketStream
    connection: h11.Connection = attrs.field(factory=lambda: h11.Connection(h11.CLIENT))

    async def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
    ) -> tuple[dict[str, str], bytes]:
        if self.connection.our_state is h11.DONE:
            self.connection.start_next_cycle()
        all_headers = [("Host", "runtime"), ("Content-Length", str(len(body)))]
        all_headers.extend(headers or [])
        data = self.connection.send(h11.Request(method=method, target=target, headers=all_headers))
        data = (data or b"") + (self.connection.send(h11.Data(data=body)) or b"")
        data += self.connection.send(h11.EndOfMessage()) or b""
        await self.stream.send_all(data)
        response_headers: dict[str, str] = {}
        chunks = []
        while True:
            event = self.connection.next_event()
            if event is h11.NEED_DATA:
                received = await self.stream.receive_some(65536)
                if not received:
                    raise trio.BrokenResourceError("the Runtime API closed the connection")
                self.connection.receive_data(received)
            elif isinstance(event, h11.Response):
                response_headers = {
                    name.decode().lower(): value.decode() for name, value in event.headers
                }
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return response_headers, b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise trio.BrokenResourceError("the Runtime API closed the connection")


@attrs.define(eq=False)
class FakeCredentialsProvider:
    """Credentials that expire `session_seconds` after they are handed out."""

    session_seconds: float = 3600.0
    issued: int = attrs.field(default=0, init=False)

    async def for_function(self, function_name: str, role_arn: str) -> Credentials:
        await trio.lowlevel.checkpoint()
        self.issued += 1
        expiration = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
            seconds=self.session_seconds
        )
        return Credentials(
            access_key_id=f"ASIAFAKE{self.issued:08d}",
            secret_access_key="fake-secret",
            session_token="fake-token",
            expiration=expiration,
            assumed_role_arn=f"arn:aws:sts::000000000000:assumed-role/fake/{function_name}",
        )
