"""The Runtime API's HTTP handling, over real loopback sockets.

The requests are written as raw bytes, so that each case controls the framing
(chunked bodies, `Expect: 100-continue`, pipelining, malformed input), and the
responses are parsed with h11 as a client would.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import h11
import pytest
import trio

from lambdasim.runtime_api import MAX_RESPONSE_BYTES, Invocation, RuntimeAPI, RuntimeResult

NEXT = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: runtime\r\n\r\n"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:fn"


@pytest.fixture
async def api() -> AsyncIterator[RuntimeAPI]:
    api = RuntimeAPI("test-environment")
    async with trio.open_nursery() as nursery:
        await nursery.start(api.serve)
        yield api
        nursery.cancel_scope.cancel()


class Client:
    """A raw connection to the Runtime API that reads responses with h11."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        #: Bytes received after the last response read, such as a pipelined response.
        self.buffer = b""

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def response(self) -> tuple[int, dict[bytes, bytes], bytes]:
        """Read one final response, skipping informational ones."""
        # A fresh h11 connection per response, because this client writes its requests
        # as raw bytes and h11 would wait for them before a second cycle.
        connection = h11.Connection(h11.CLIENT)
        if self.buffer:
            connection.receive_data(self.buffer)
        status, headers, chunks = 0, {}, []
        with trio.fail_after(5):
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    connection.receive_data(await self.stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    headers = {name.lower(): value for name, value in event.headers}
                elif isinstance(event, h11.Data):
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    self.buffer = connection.trailing_data[0]
                    return status, headers, b"".join(chunks)
                elif isinstance(event, h11.ConnectionClosed):
                    raise AssertionError("the Runtime API closed the connection early")

    async def closed(self) -> bool:
        """Tell whether the server closed the connection (after any pending bytes)."""
        if self.buffer:
            return False
        with trio.fail_after(5):
            while True:
                data = await self.stream.receive_some(65536)
                if not data:
                    return True


async def connect(api: RuntimeAPI) -> Client:
    assert api.port is not None
    return Client(await trio.open_tcp_stream("127.0.0.1", api.port))


def post(request_id: str, action: str, body: bytes, *headers: bytes) -> bytes:
    head = [
        f"POST /2018-06-01/runtime/invocation/{request_id}/{action} HTTP/1.1".encode(),
        b"Host: runtime",
        f"Content-Length: {len(body)}".encode(),
        *headers,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def invocation(request_id: str = "req-1", **fields: str) -> Invocation:
    return Invocation(request_id, b'{"n": 1}', ARN, deadline_ms=1_700_000_000_000, **fields)


async def dispatch(api: RuntimeAPI, item: Invocation, results: list[RuntimeResult]) -> None:
    results.append(await api.dispatch(item))


Response = tuple[int, dict[bytes, bytes], bytes]


async def run_invocation(
    api: RuntimeAPI, *reply: bytes, item: Invocation | None = None
) -> tuple[Response, Response, list[RuntimeResult]]:
    """Dispatch `item`, take it with `/next` and send `reply` in pieces.

    Returns the event's response, the response to the reply and the dispatch result.
    """
    client = await connect(api)
    results: list[RuntimeResult] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dispatch, api, item or invocation(), results)
        await client.send(NEXT)
        event = await client.response()
        for piece in reply:
            await client.send(piece)
        answer = await client.response()
    return event, answer, results


async def test_next_and_response(api: RuntimeAPI) -> None:
    event, answer, results = await run_invocation(api, post("req-1", "response", b'{"ok": true}'))

    status, headers, body = event
    assert status == 200
    assert body == b'{"n": 1}'
    assert headers[b"lambda-runtime-aws-request-id"] == b"req-1"
    assert headers[b"lambda-runtime-deadline-ms"] == b"1700000000000"
    assert headers[b"lambda-runtime-invoked-function-arn"] == ARN.encode()
    assert headers[b"content-type"] == b"application/json"
    assert answer[0] == 202
    assert answer[2] == b'{"status":"OK"}'
    assert results == [RuntimeResult(b'{"ok": true}')]
    assert api.ready


async def test_chunked_response_body(api: RuntimeAPI) -> None:
    _, answer, results = await run_invocation(
        api,
        b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\n"
        b"Host: runtime\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\n[1, 2\r\n",
        b"3\r\n, 3\r\n1\r\n]\r\n0\r\n\r\n",
    )

    assert answer[0] == 202
    assert results == [RuntimeResult(b"[1, 2, 3]")]


async def test_expect_continue_answered(api: RuntimeAPI) -> None:
    client = await connect(api)
    results: list[RuntimeResult] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dispatch, api, invocation(), results)
        await client.send(NEXT)
        await client.response()
        request = post("req-1", "response", b'"done"', b"Expect: 100-continue")
        head, _, body = request.partition(b"\r\n\r\n")
        await client.send(head + b"\r\n\r\n")
        with trio.fail_after(5):
            interim = await client.stream.receive_some(65536)
        await client.send(body)
        status, _, _ = await client.response()

    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert status == 202
    assert results == [RuntimeResult(b'"done"')]


async def test_error_with_type_header(api: RuntimeAPI) -> None:
    error_type = b"Lambda-Runtime-Function-Error-Type: Custom.Kind"
    _, answer, results = await run_invocation(api, post("req-1", "error", b"not json", error_type))

    assert answer[0] == 202
    assert results == [RuntimeResult(b"not json", "Custom.Kind")]


async def test_pipelined_requests(api: RuntimeAPI) -> None:
    client = await connect(api)
    results: list[RuntimeResult] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dispatch, api, invocation("req-1"), results)
        await client.send(NEXT)
        await client.response()
        # The result and the next request arrive in one segment.
        await client.send(post("req-1", "response", b"1") + NEXT)
        first = await client.response()
        nursery.start_soon(dispatch, api, invocation("req-2"), results)
        second = await client.response()
        await client.send(post("req-2", "response", b"2"))
        await client.response()

    assert first[0] == 202
    assert second[0] == 200
    assert second[1][b"lambda-runtime-aws-request-id"] == b"req-2"
    assert results == [RuntimeResult(b"1"), RuntimeResult(b"2")]


async def test_connection_close_honoured(api: RuntimeAPI) -> None:
    client = await connect(api)
    await client.send(post("unknown", "response", b"{}", b"Connection: close"))

    status, headers, body = await client.response()

    assert status == 400
    assert json.loads(body)["errorType"] == "InvalidRequestID"
    assert headers[b"connection"] == b"close"
    assert await client.closed()


async def test_http10_closes_after_response(api: RuntimeAPI) -> None:
    client = await connect(api)
    await client.send(b"GET /2018-06-01/runtime/unknown HTTP/1.0\r\n\r\n")

    status, _, _ = await client.response()

    assert status == 404
    assert await client.closed()


async def test_unknown_path_keeps_connection(api: RuntimeAPI) -> None:
    client = await connect(api)
    await client.send(b"GET /nowhere HTTP/1.1\r\nHost: runtime\r\n\r\n")
    first = await client.response()
    await client.send(b"GET /elsewhere HTTP/1.1\r\nHost: runtime\r\n\r\n")
    second = await client.response()

    assert first[0] == 404
    assert json.loads(first[2]) == {
        "errorMessage": "Unknown path /nowhere",
        "errorType": "NotFound",
    }
    assert second[0] == 404


async def test_malformed_request_rejected(api: RuntimeAPI) -> None:
    client = await connect(api)
    await client.send(b"NOT HTTP AT ALL\r\n\r\n")

    status, _, body = await client.response()

    assert status == 400
    assert json.loads(body)["errorMessage"].startswith("Invalid HTTP request: ")
    assert await client.closed()


async def test_oversized_head_rejected(api: RuntimeAPI) -> None:
    client = await connect(api)
    filler = b"X-Filler: " + b"a" * 70_000 + b"\r\n"
    await client.send(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n" + filler + b"\r\n")

    status, _, body = await client.response()

    assert status == 431
    assert "larger than 65536 bytes" in json.loads(body)["errorMessage"]
    assert await client.closed()
    assert not api.ready


async def test_unending_head_rejected(api: RuntimeAPI) -> None:
    client = await connect(api)
    head = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n"
    while len(head) < 64 * 1024:
        head += b"X-Filler: " + b"a" * 1000 + b"\r\n"
    # One byte over the limit, so that the server has read everything when it
    # rejects the head, and its close cannot reset the connection before the reply.
    head = head[: 64 * 1024 + 1]
    await client.send(head)

    status, _, _ = await client.response()

    assert status == 431
    assert await client.closed()


async def test_oversized_response_reported(api: RuntimeAPI) -> None:
    oversized = b"x" * (MAX_RESPONSE_BYTES + 1)
    _, answer, results = await run_invocation(api, post("req-1", "response", oversized))

    status, _, body = answer
    assert status == 413
    assert json.loads(body)["errorType"] == "Function.ResponseSizeTooLarge"
    assert results[0].error_type == "Function.ResponseSizeTooLarge"
    assert f"({MAX_RESPONSE_BYTES + 1} bytes)" in results[0].payload.decode()


async def test_client_context_stays_one_header(api: RuntimeAPI) -> None:
    context = '{"custom":\r\n{"a": 1}}'
    event, _, _ = await run_invocation(
        api, post("req-1", "response", b"{}"), item=invocation(client_context=context)
    )

    status, headers, _ = event
    assert status == 200
    received = headers[b"lambda-runtime-client-context"]
    assert json.loads(received) == {"custom": {"a": 1}}
    assert b"\r" not in received
    assert b"\n" not in received


async def test_init_error_recorded(api: RuntimeAPI) -> None:
    client = await connect(api)
    await client.send(
        b"POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: runtime\r\n"
        b"Lambda-Runtime-Function-Error-Type: Runtime.ImportModuleError\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )

    status, _, _ = await client.response()
    with trio.fail_after(5):
        await api.wait_init()

    assert status == 202
    assert api.init_error is not None
    assert api.init_error.error_type == "Runtime.ImportModuleError"
    assert not api.ready
