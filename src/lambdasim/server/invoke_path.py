"""A direct ASGI route for Invoke, the operation whose latency matters most.

Invoke requests skip Quart's routing and request objects, which cost several
hundred microseconds per call; everything else goes to the Quart application.
Both paths run the same `invoke_operation`.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping

import attrs

from ..errors import LambdaError, ServiceException
from ..simulator import Simulator
from .gateway import ASGIApp, Receive, Scope, Send
from .lambda_api import invoke_operation

logger = logging.getLogger("lambdasim.server")

_INVOKE_PATH = re.compile(r"/2015-03-31/functions/(?P<name>[^/]+)/invocations/?")


@attrs.frozen
class _Headers(Mapping[str, str]):
    """Request headers looked up case-insensitively."""

    values: dict[str, str]

    @classmethod
    def from_scope(cls, scope: Scope) -> _Headers:
        return cls(
            {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in scope["headers"]
            }
        )

    def __getitem__(self, key: str) -> str:
        return self.values[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


@attrs.define(eq=False)
class InvokePath:
    """An ASGI application that serves Invoke itself and passes the rest to `app`."""

    simulator: Simulator
    app: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _INVOKE_PATH.fullmatch(scope["path"])
            if match is not None:
                await self._invoke(scope, receive, send, urllib.parse.unquote(match["name"]))
                return
        await self.app(scope, receive, send)

    async def _invoke(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        qualifier = query.get("Qualifier", [None])[0]
        try:
            status, headers, body = await invoke_operation(
                self.simulator, name, qualifier, _Headers.from_scope(scope), b"".join(chunks)
            )
        except LambdaError as error:
            status, headers, body = _error(error)
        except Exception as exc:
            logger.exception("Invoke of %s failed", name)
            status, headers, body = _error(ServiceException(f"Invoke failed: {exc}"))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(key.encode(), value.encode()) for key, value in headers]
                + [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _error(error: LambdaError) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [
        ("Content-Type", "application/json"),
        ("x-amzn-ErrorType", error.error_type),
        ("x-amzn-RequestId", str(uuid.uuid4())),
    ]
    return error.status, headers, json.dumps(error.to_body()).encode()
