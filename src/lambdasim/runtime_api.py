"""The Lambda Runtime API that one execution environment's runtime talks to.

Theory of operation: each environment gets its own listener on 127.0.0.1 and an
ephemeral port, because runtime clients take `AWS_LAMBDA_RUNTIME_API` as a bare
`host:port` and cannot tell their endpoint apart by path. The runtime signals that
init is done by its first `GET /invocation/next`; that request then blocks until
`dispatch()` hands over an invocation. The runtime replies with `/response` or
`/error`, which completes the invocation. When the container exits, the driver
calls `container_exited()`: a pending `dispatch()` fails and the invocation in
flight completes with `Runtime.ExitError`.

Requests are parsed with httptools (the llhttp parser), and responses are written
as bytes. Each invocation makes two requests here. Parsing one and writing its
response took about 45 µs with h11 and about 1 µs with httptools in a loop on the
2-vCPU VM that benchmarks/README.md describes. The Python client keeps one
connection alive across invocations while the Node client opens one per request.
Both work here.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from typing import Any

import attrs
import httptools
import trio

logger = logging.getLogger("lambdasim.runtime_api")

_PREFIX = "/2018-06-01/runtime"
#: Largest response payload of a synchronous invocation (6 MB, as AWS).
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
#: Bodies beyond this are counted but not kept; the count reports the size.
_MAX_KEPT_BODY_BYTES = MAX_RESPONSE_BYTES + 1024 * 1024
_READ_SIZE = 64 * 1024
#: Maximum size of a request line plus headers. A runtime's requests need a few hundred bytes.
_MAX_HEAD_BYTES = 64 * 1024
_REASONS = {
    200: b"OK",
    202: b"Accepted",
    400: b"Bad Request",
    404: b"Not Found",
    413: b"Payload Too Large",
    431: b"Request Header Fields Too Large",
}


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
            headers.append((b"lambda-runtime-client-context", _header_value(self.client_context)))
        if self.cognito_identity:
            headers.append(
                (b"lambda-runtime-cognito-identity", _header_value(self.cognito_identity))
            )
        return headers


def _header_value(text: str) -> bytes:
    """Encode caller-supplied text for a header, with line breaks turned into spaces.

    A client context is JSON, where a raw line break can only be whitespace between
    tokens, so the replacement keeps its meaning and cannot end the header early.
    """
    return text.encode().translate(_LINE_BREAKS)


_LINE_BREAKS = bytes.maketrans(b"\r\n\0", b"   ")


@attrs.frozen
class _Oversized:
    """A request body too large to keep: only its size."""

    size: int

    def __len__(self) -> int:
        return self.size


@attrs.frozen
class _Request:
    """One parsed Runtime API request."""

    method: str
    path: str
    #: Header values by lower-case name. A repeated header keeps its last value.
    headers: dict[bytes, bytes]
    body: bytes | _Oversized
    keep_alive: bool


@attrs.define(eq=False)
class _RequestReader:
    """The request parser of one connection, built on httptools' callbacks."""

    finished: collections.deque[_Request] = attrs.field(factory=collections.deque, init=False)
    #: Set when the client sent `Expect: 100-continue` and still waits for the reply.
    continue_expected: bool = attrs.field(default=False, init=False)
    #: Set when a request's line and headers exceed `_MAX_HEAD_BYTES`.
    head_too_large: bool = attrs.field(default=False, init=False)
    _parser: httptools.HttpRequestParser = attrs.field(init=False)
    _in_head: bool = attrs.field(default=True, init=False)
    #: Bytes received while the current head was incomplete, which bounds a head
    #: that never ends. A head that ends is measured exactly by `_head_size`.
    _head_bytes: int = attrs.field(default=0, init=False)
    _head_size: int = attrs.field(default=0, init=False)
    _url: bytes = attrs.field(default=b"", init=False)
    _headers: dict[bytes, bytes] = attrs.field(factory=dict, init=False)
    _body: bytearray = attrs.field(factory=bytearray, init=False)
    _body_size: int = attrs.field(default=0, init=False)
    _method: str = attrs.field(default="", init=False)
    _keep_alive: bool = attrs.field(default=True, init=False)

    def __attrs_post_init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)

    def feed(self, data: bytes) -> None:
        """Parse `data`. A malformed request raises httptools' HttpParserError."""
        if self._in_head:
            self._head_bytes += len(data)
        self._parser.feed_data(data)
        if self._in_head and self._head_bytes > _MAX_HEAD_BYTES:
            self.head_too_large = True

    # httptools callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        self._head_size = 0
        self._url = b""
        self._headers = {}
        self._body = bytearray()
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        if self._head_size > _MAX_HEAD_BYTES:
            self.head_too_large = True
        self._method = self._parser.get_method().decode("latin-1")
        self._keep_alive = self._parser.should_keep_alive()
        self.continue_expected = self._headers.get(b"expect", b"").lower() == b"100-continue"

    def on_body(self, data: bytes) -> None:
        self._body_size += len(data)
        if self._body_size <= _MAX_KEPT_BODY_BYTES:
            self._body += data

    def on_message_complete(self) -> None:
        self._in_head = True
        self.continue_expected = False
        body: bytes | _Oversized
        if self._body_size > _MAX_KEPT_BODY_BYTES:
            # Too large to keep: pass on a marker of the size, not the bytes.
            body = _Oversized(self._body_size)
        else:
            body = bytes(self._body)
        path = self._url.decode("latin-1").split("?", 1)[0]
        self.finished.append(_Request(self._method, path, self._headers, body, self._keep_alive))


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
        reader = _RequestReader()
        try:
            while True:
                while not reader.finished:
                    data = await stream.receive_some(_READ_SIZE)
                    if not data:
                        return
                    try:
                        reader.feed(data)
                    except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
                        await self._reject(stream, 400, f"Invalid HTTP request: {exc}")
                        return
                    if reader.head_too_large:
                        await self._reject(
                            stream, 431, f"Request head larger than {_MAX_HEAD_BYTES} bytes"
                        )
                        return
                    if reader.continue_expected:
                        reader.continue_expected = False
                        await stream.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                request = reader.finished.popleft()
                await self._route(stream, request)
                if not request.keep_alive:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            await stream.aclose()

    async def _reject(self, stream: trio.SocketStream, status: int, message: str) -> None:
        """Send an error that ends the connection, for a request that could not be parsed."""
        logger.warning("environment %s: %s", self.environment_id, message)
        body = json.dumps({"errorMessage": message, "errorType": "InvalidRequest"}).encode()
        await _respond(stream, status, body, close=True)

    async def _route(self, stream: trio.SocketStream, request: _Request) -> None:
        method, path = request.method, request.path
        close = not request.keep_alive
        if method == "GET" and path == f"{_PREFIX}/invocation/next":
            await self._next(stream, close)
            return
        if method == "POST" and path == f"{_PREFIX}/init/error":
            self._init_failed(request)
            await _respond(stream, 202, b'{"status":"OK"}', close=close)
            return
        if method == "POST" and path.startswith(f"{_PREFIX}/invocation/"):
            request_id, _, action = path[len(f"{_PREFIX}/invocation/") :].partition("/")
            if action in ("response", "error"):
                status, answer = self._complete(request_id, action, request)
                await _respond(stream, status, answer, close=close)
                return
        logger.warning(
            "environment %s: unknown Runtime API request %s %s", self.environment_id, method, path
        )
        body = json.dumps({"errorMessage": f"Unknown path {path}", "errorType": "NotFound"})
        await _respond(stream, 404, body.encode(), close=close)

    async def _next(self, stream: trio.SocketStream, close: bool) -> None:
        if not self._ready.is_set():
            self._ready.set()
            self._init_done.set()
        try:
            invocation = await self._receive.receive()
        except trio.EndOfChannel:
            return
        invocation.taken_at = time.monotonic()
        await _respond(stream, 200, invocation.payload, invocation.headers(), close=close)

    def _init_failed(self, request: _Request) -> None:
        body = request.body if isinstance(request.body, bytes) else b""
        error_type = request.headers.get(b"lambda-runtime-function-error-type", b"").decode()
        if not error_type:
            error_type = _error_type_from_body(body) or "Runtime.Unknown"
        self.init_error = InitError(error_type, body)
        logger.info("environment %s: init failed with %s", self.environment_id, error_type)
        self._init_done.set()

    def _complete(self, request_id: str, action: str, request: _Request) -> tuple[int, bytes]:
        body = request.body
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
            error_type = (
                _error_type_from_body(body)
                or request.headers.get(b"lambda-runtime-function-error-type", b"").decode()
                or "Unhandled"
            )
            current.complete(RuntimeResult(body, error_type))
        return 202, b'{"status":"OK"}'


async def _respond(
    stream: trio.SocketStream,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    close: bool = False,
) -> None:
    """Send one response with a Content-Length body, in one write."""
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
    content_type = False
    for name, value in headers or ():
        parts.append(b"%s: %s\r\n" % (name, value))
        content_type = content_type or name == b"content-type"
    if not content_type:
        parts.append(b"content-type: application/json\r\n")
    parts.append(b"content-length: %d\r\n" % len(body))
    if close:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    parts.append(body)
    await stream.send_all(b"".join(parts))


def _error_type_from_body(body: bytes) -> str | None:
    try:
        document: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(document, dict) and isinstance(document.get("errorType"), str):
        return document["errorType"]
    return None
