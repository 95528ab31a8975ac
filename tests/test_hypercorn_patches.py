"""Hypercorn with each HTTP/1.1 response head joined to the write that follows it."""

from __future__ import annotations

import http.client
from collections.abc import AsyncIterator
from typing import Any

import hypercorn.protocol
import hypercorn.trio.tcp_server
import pytest
import trio
from hypercorn.events import Closed, RawData

from lambdasim.server import hypercorn_patches
from lambdasim.server.serve import serve_http


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def __call__(self, event: Any) -> None:
        await trio.lowlevel.checkpoint()
        self.events.append(event)


async def test_head_joined_to_body() -> None:
    recorder = Recorder()
    send = hypercorn_patches.HeadHoldingSend(recorder)

    send.hold_next()
    await send(RawData(data=b"HEAD"))
    send.release_hold()
    await send(RawData(data=b"BODY"))
    await send(RawData(data=b""))

    assert recorder.events == [RawData(data=b"HEADBODY")]


async def test_head_sent_before_other_event() -> None:
    recorder = Recorder()
    send = hypercorn_patches.HeadHoldingSend(recorder)

    send.hold_next()
    await send(RawData(data=b"HEAD"))
    send.release_hold()
    await send(Closed())

    assert recorder.events == [RawData(data=b"HEAD"), Closed()]


async def test_head_alone_with_empty_end() -> None:
    recorder = Recorder()
    send = hypercorn_patches.HeadHoldingSend(recorder)

    send.hold_next()
    await send(RawData(data=b"HEAD"))
    send.release_hold()
    await send(RawData(data=b""))

    assert recorder.events == [RawData(data=b"HEAD")]


async def test_released_hold_keeps_next_write() -> None:
    recorder = Recorder()
    send = hypercorn_patches.HeadHoldingSend(recorder)

    send.hold_next()
    send.release_hold()
    await send(RawData(data=b"NEXT"))

    assert recorder.events == [RawData(data=b"NEXT")]


def test_install_replaces_protocol() -> None:
    assert hypercorn_patches.install()
    assert hypercorn_patches.install()

    protocol = hypercorn.protocol.H11Protocol
    assert protocol.__name__ == "HeadJoiningH11Protocol"
    assert protocol.__mro__[1].__module__ == "hypercorn.protocol.h11"


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/chunks":
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    body = b'{"hello": "world"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"18")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def writes(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[int, list[bytes]]]:
    """Serve `_app` on 127.0.0.1 and record every socket write of the server."""
    recorded: list[bytes] = []
    original = hypercorn.trio.tcp_server.TCPServer.protocol_send

    async def recording_send(self: Any, event: Any) -> None:
        if isinstance(event, RawData):
            recorded.append(event.data)
        await original(self, event)

    monkeypatch.setattr(hypercorn.trio.tcp_server.TCPServer, "protocol_send", recording_send)
    async with trio.open_nursery() as nursery:
        _, port = await nursery.start(
            lambda task_status: serve_http(_app, host="127.0.0.1", port=0, task_status=task_status)
        )
        yield port, recorded
        nursery.cancel_scope.cancel()


def _requests(port: int, paths: list[str]) -> list[tuple[int, bytes]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        results = []
        for path in paths:
            connection.request("GET", path)
            response = connection.getresponse()
            results.append((response.status, response.read()))
        return results
    finally:
        connection.close()


async def test_server_writes_once_per_response(writes: tuple[int, list[bytes]]) -> None:
    port, recorded = writes

    results = await trio.to_thread.run_sync(_requests, port, ["/json", "/json"])

    assert results == [(200, b'{"hello": "world"}')] * 2
    assert len(recorded) == 2
    for data in recorded:
        assert data.startswith(b"HTTP/1.1 200 ")
        assert data.endswith(b'\r\n\r\n{"hello": "world"}')


async def test_server_empty_and_streamed(writes: tuple[int, list[bytes]]) -> None:
    port, recorded = writes

    results = await trio.to_thread.run_sync(_requests, port, ["/empty", "/chunks", "/json"])

    assert results == [(204, b""), (200, b"one two three"), (200, b'{"hello": "world"}')]
    assert recorded[0].startswith(b"HTTP/1.1 204 ")
    assert recorded[0].endswith(b"\r\n\r\n")
    # The streamed response: its head joined to the first chunk, then the others.
    assert recorded[1].startswith(b"HTTP/1.1 200 ")
    assert recorded[1].endswith(b"\r\n\r\n4\r\none \r\n")
    assert recorded[2:5] == [b"4\r\ntwo \r\n", b"5\r\nthree\r\n", b"0\r\n\r\n"]
    assert len(recorded) == 6
