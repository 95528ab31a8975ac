"""The Lambda Runtime API that one execution environment's runtime talks to.

Theory of operation: each environment gets its own listener on 127.0.0.1 and an
ephemeral port, because runtime clients take `AWS_LAMBDA_RUNTIME_API` as a bare
`host:port` and cannot tell their endpoint apart by path. The runtime signals that
init is done by its first `GET /invocation/next`; that request then blocks until
`dispatch()` hands over an invocation. The runtime replies with `/response` or
`/error`, which completes the invocation. When the container exits, the driver
calls `container_exited()`: a pending `dispatch()` fails and the invocation in
flight completes with `Runtime.ExitError`.

HTTP/1.1 is spoken with h11. The Python client keeps one connection alive across
invocations while the Node client opens one per request; both work here.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import attrs
import h11
import trio

logger = logging.getLogger("lambdasim.runtime_api")

_PREFIX = "/2018-06-01/runtime"
#: Largest response payload of a synchronous invocation (6 MB, as AWS).
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
#: Bodies beyond this are counted but not kept; the count reports the size.
_MAX_KEPT_BODY_BYTES = MAX_RESPONSE_BYTES + 1024 * 1024
_READ_SIZE = 64 * 1024


@attrs.frozen
class RuntimeResult:
    """The outcome the runtime reported for one invocation."""

    payload: bytes
    #: None on success; otherwise the error type, such as `Runtime.ExitError`.
    error_type: str | None = None


@attrs.frozen
class InitError:
    """An init failure posted to `/runtime/init/error`."""

    error_type: str
    payload: bytes


@attrs.define(eq=False)
class Invocation:
    """One event on its way to the runtime and back."""

    request_id: str
    payload: bytes
    function_arn: str
    #: Epoch milliseconds after which the invocation has timed out.
    deadline_ms: int
    trace_id: str = ""
    client_context: str | None = None
    cognito_identity: str | None = None
    result: RuntimeResult | None = attrs.field(default=None, init=False)
    #: The invocation's log (a `lambdasim.logs.InvocationLog`), set by the environment.
    log: Any = attrs.field(default=None, init=False)
    #: Monotonic time at which the runtime took the event.
    taken_at: float | None = attrs.field(default=None, init=False)
    _done: trio.Event = attrs.field(factory=trio.Event, init=False)

    def complete(self, result: RuntimeResult) -> bool:
        """Record the result unless one was recorded already; tell whether it was."""
        if self.result is not None:
            return False
        self.result = result
        self._done.set()
        return True

    async def wait(self) -> RuntimeResult:
        await self._done.wait()
        assert self.result is not None
        return self.result

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-type", b"application/json"),
            (b"lambda-runtime-aws-request-id", self.request_id.encode()),
            (b"lambda-runtime-deadline-ms", str(self.deadline_ms).encode()),
            (b"lambda-runtime-invoked-function-arn", self.function_arn.encode()),
            (b"lambda-runtime-trace-id", self.trace_id.encode()),
        ]
        if self.client_context:
            headers.append((b"lambda-runtime-client-context", self.client_context.encode()))
        if self.cognito_identity:
            headers.append((b"lambda-runtime-cognito-identity", self.cognito_identity.encode()))
        return headers


@attrs.frozen
class _Oversized:
    """A request body too large to keep: only its size."""

    size: int

    def __len__(self) -> int:
        return self.size


class ContainerExited(Exception):
    """The container exited before it took the invocation."""

    def __init__(self, status: int | None) -> None:
        super().__init__(f"the container exited with status {status}")
        self.status = status


def exit_error(request_id: str, status: int | None) -> RuntimeResult:
    """Return the result AWS reports when the runtime process exits."""
    detail = "signal: killed" if status == 137 else f"exit status {status}"
    body = {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {detail}",
    }
    return RuntimeResult(json.dumps(body).encode(), "Runtime.ExitError")


@attrs.define(eq=False)
class RuntimeAPI:
    """The Runtime API listener of one execution environment."""

    environment_id: str
    port: int | None = attrs.field(default=None, init=False)
    init_error: InitError | None = attrs.field(default=None, init=False)
    exit_status: int | None = attrs.field(default=None, init=False)
    _ready: trio.Event = attrs.field(factory=trio.Event, init=False)
    _init_done: trio.Event = attrs.field(factory=trio.Event, init=False)
    _exited: bool = attrs.field(default=False, init=False)
    _send: trio.MemorySendChannel[Invocation] = attrs.field(init=False)
    _receive: trio.MemoryReceiveChannel[Invocation] = attrs.field(init=False)
    _current: Invocation | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel(0)

    @property
    def ready(self) -> bool:
        """Whether the runtime has finished init and asked for an event."""
        return self._ready.is_set()

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on 127.0.0.1 until cancelled.

        Use with `nursery.start`: `started()` returns the port once the listener accepts
        connections.
        """
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._serve_connection, listeners, handler_nursery=nursery)

    async def wait_init(self) -> None:
        """Wait until init ends: the first `/next`, an init error, or the container's exit."""
        await self._init_done.wait()

    async def dispatch(self, invocation: Invocation) -> RuntimeResult:
        """Hand `invocation` to the runtime and wait for its result.

        Raises ContainerExited if the container exits before taking the event. If it
        exits later, the result is a `Runtime.ExitError`. The caller enforces the deadline
        by cancelling this call and killing the container.
        """
        if self._exited:
            raise ContainerExited(self.exit_status)
        self._current = invocation
        try:
            await self._send.send(invocation)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self._current = None
            raise ContainerExited(self.exit_status) from None
        try:
            return await invocation.wait()
        finally:
            self._current = None

    def container_exited(self, status: int | None) -> None:
        """Record the container's exit and fail whatever waited on the runtime."""
        self.exit_status = status
        self._exited = True
        self._init_done.set()
        self._send.close()
        if self._current is not None and self._current.taken_at is not None:
            self._current.complete(exit_error(self._current.request_id, status))

    # HTTP handling ---------------------------------------------------------------

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        try:
            while True:
                request, body = await self._read_request(connection, stream)
                if request is None:
                    return
                await self._route(connection, stream, request, body)
                if connection.our_state is h11.MUST_CLOSE:
                    return
                try:
                    connection.start_next_cycle()
                except h11.LocalProtocolError:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            return
        finally:
            await stream.aclose()

    async def _read_request(
        self, connection: h11.Connection, stream: trio.SocketStream
    ) -> tuple[h11.Request | None, bytes | _Oversized]:
        request: h11.Request | None = None
        body = bytearray()
        size = 0
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(_READ_SIZE)
                connection.receive_data(data)
                if not data and connection.their_state is h11.IDLE:
                    return None, b""
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size <= _MAX_KEPT_BODY_BYTES:
                    body += event.data
            elif isinstance(event, h11.EndOfMessage) and size > _MAX_KEPT_BODY_BYTES:
                # Too large to keep: pass on a marker of the size, not the bytes.
                return request, _Oversized(size)
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                return None, b""

    async def _respond(
        self,
        connection: h11.Connection,
        stream: trio.SocketStream,
        status: int,
        body: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        all_headers = list(headers or [])
        if not any(name == b"content-type" for name, _ in all_headers):
            all_headers.append((b"content-type", b"application/json"))
        all_headers.append((b"content-length", str(len(body)).encode()))
        data = connection.send(h11.Response(status_code=status, headers=all_headers))
        assert data is not None
        data += connection.send(h11.Data(data=body)) or b""
        data += connection.send(h11.EndOfMessage()) or b""
        await stream.send_all(data)

    async def _route(
        self,
        connection: h11.Connection,
        stream: trio.SocketStream,
        request: h11.Request,
        body: bytes | _Oversized,
    ) -> None:
        method = request.method.decode()
        path = request.target.decode().split("?", 1)[0]
        if method == "GET" and path == f"{_PREFIX}/invocation/next":
            await self._next(connection, stream)
            return
        if method == "POST" and path == f"{_PREFIX}/init/error":
            self._init_failed(request, bytes(body) if isinstance(body, bytes) else b"")
            await self._respond(connection, stream, 202, b'{"status":"OK"}')
            return
        if method == "POST" and path.startswith(f"{_PREFIX}/invocation/"):
            request_id, _, action = path[len(f"{_PREFIX}/invocation/") :].partition("/")
            if action in ("response", "error"):
                status, answer = self._complete(request_id, action, request, body)
                await self._respond(connection, stream, status, answer)
                return
        logger.warning(
            "environment %s: unknown Runtime API request %s %s", self.environment_id, method, path
        )
        await self._respond(
            connection,
            stream,
            404,
            json.dumps({"errorMessage": f"Unknown path {path}", "errorType": "NotFound"}).encode(),
        )

    async def _next(self, connection: h11.Connection, stream: trio.SocketStream) -> None:
        if not self._ready.is_set():
            self._ready.set()
            self._init_done.set()
        try:
            invocation = await self._receive.receive()
        except trio.EndOfChannel:
            return
        invocation.taken_at = time.monotonic()
        await self._respond(connection, stream, 200, invocation.payload, invocation.headers())

    def _init_failed(self, request: h11.Request, body: bytes) -> None:
        headers = {name.lower(): value for name, value in request.headers}
        error_type = headers.get(b"lambda-runtime-function-error-type", b"").decode()
        if not error_type:
            error_type = _error_type_from_body(body) or "Runtime.Unknown"
        self.init_error = InitError(error_type, body)
        logger.info("environment %s: init failed with %s", self.environment_id, error_type)
        self._init_done.set()

    def _complete(
        self, request_id: str, action: str, request: h11.Request, body: bytes | _Oversized
    ) -> tuple[int, bytes]:
        current = self._current
        if current is None or current.request_id != request_id:
            message = f"Invalid request ID: {request_id}"
            return 400, json.dumps(
                {"errorMessage": message, "errorType": "InvalidRequestID"}
            ).encode()
        if action == "response":
            if len(body) > MAX_RESPONSE_BYTES:
                error = {
                    "errorMessage": (
                        f"Response payload size ({len(body)} bytes) exceeded maximum allowed "
                        f"payload size ({MAX_RESPONSE_BYTES} bytes)."
                    ),
                    "errorType": "Function.ResponseSizeTooLarge",
                }
                current.complete(
                    RuntimeResult(json.dumps(error).encode(), "Function.ResponseSizeTooLarge")
                )
                return 413, json.dumps(error).encode()
            assert isinstance(body, bytes)
            current.complete(RuntimeResult(body))
        else:
            if isinstance(body, _Oversized):
                body = json.dumps(
                    {"errorType": "Unhandled", "errorMessage": "The error report was too large."}
                ).encode()
            headers = {name.lower(): value for name, value in request.headers}
            error_type = (
                _error_type_from_body(body)
                or headers.get(b"lambda-runtime-function-error-type", b"").decode()
                or "Unhandled"
            )
            current.complete(RuntimeResult(body, error_type))
        return 202, b'{"status":"OK"}'


def _error_type_from_body(body: bytes) -> str | None:
    try:
        document: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(document, dict) and isinstance(document.get("errorType"), str):
        return document["errorType"]
    return None
