"""The one-port gateway: route each request to lambdasim or to the embedded AWS services.

Every AWS SDK sends requests for all services to the one endpoint URL, so only
the signature of a request names its service. A SigV4 signature carries a
credential scope, `AKID/DATE/REGION/SERVICE/aws4_request`, in the
`Authorization` header or, for presigned URLs, in the `X-Amz-Credential` query
parameter. `classify` reads that scope:

- Scope service `lambda` goes to lambdasim's Lambda API.
- Any other scope goes to moto, which picks the backend from the same scope.
- A request without a SigV4 scope goes to the image registry if its path starts
  with `/v2/`, because docker sends Basic or Bearer authorization at most.
- An unsigned request whose path starts with a Lambda REST prefix such as
  `/2015-03-31/` goes to the Lambda API.
- Any other unsigned request goes to moto, which treats it as S3.

Paths under `/_lambdasim/` belong to lambdasim whatever their signature.

`WSGIBridge` runs moto's WSGI application behind ASGI. Generic adapters do not
work here: a2wsgi needs asyncio, and Hypercorn's WSGI wrapper (0.18) sends no
response start when the body is empty, which breaks S3 HEAD and DELETE. The
bridge buffers the request body, calls the WSGI application in a worker thread
under the `EmbeddedServices` limiter, buffers the response and then sends it.
"""

from __future__ import annotations

import enum
import io
import logging
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

import attrs

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from lambdasim.services import EmbeddedServices

logger = logging.getLogger("lambdasim.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: Any ASGI application. The arguments are Any because frameworks annotate them
#: with their own TypedDicts (Quart, Hypercorn), which plain mappings do not match.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class Route(enum.Enum):
    """Destination of a request in the gateway."""

    #: lambdasim's Lambda API and control paths (the Quart application).
    LAMBDA = "lambda"
    #: The image registry for docker push and pull (also the Quart application).
    REGISTRY = "registry"
    #: The embedded AWS services (moto).
    AWS = "aws"


#: Path prefixes of the Lambda REST API: the first segment of every requestUri
#: in botocore's Lambda models (data/lambda/2015-03-31 and 2014-11-11, botocore
#: 1.44.8). The API version in a path is the date the operation was added.
LAMBDA_PATH_PREFIXES: tuple[str, ...] = (
    "/2014-11-13/",
    "/2015-03-31/",
    "/2016-08-19/",
    "/2017-03-31/",
    "/2017-10-31/",
    "/2018-10-31/",
    "/2019-09-25/",
    "/2019-09-30/",
    "/2020-04-22/",
    "/2020-06-30/",
    "/2021-07-20/",
    "/2021-10-31/",
    "/2021-11-15/",
    "/2024-08-31/",
    "/2025-11-30/",
    "/2025-12-01/",
    "/2026-07-09/",
)

#: Prefix of lambdasim's own control paths, which no AWS service uses.
CONTROL_PATH_PREFIX = "/_lambdasim/"

REGISTRY_PATH_PREFIX = "/v2/"


def _service_from_credential(credential: str) -> str | None:
    # A SigV4 scope is AKID/DATE/REGION/SERVICE/aws4_request. SigV4a scopes have no REGION.
    parts = credential.strip().split("/")
    if len(parts) < 4 or parts[-1] != "aws4_request":
        return None
    return parts[-2].lower() or None


def signing_service(scope: Scope) -> str | None:
    """Return the service of the request's SigV4 credential scope, or None if it has none.

    Looks in the `Authorization` header first and then in the `X-Amz-Credential`
    query parameter of presigned URLs. Other authorization schemes (SigV2,
    Basic, Bearer) count as no scope.
    """
    for name, value in scope.get("headers", ()):
        if name.lower() != b"authorization":
            continue
        authorization = value.decode("latin-1")
        start = authorization.find("Credential=")
        if start < 0:
            return None
        start += len("Credential=")
        end = len(authorization)
        for separator in (",", " "):
            found = authorization.find(separator, start)
            if found >= 0:
                end = min(end, found)
        return _service_from_credential(authorization[start:end])

    query_string: bytes = scope.get("query_string", b"")
    if b"x-amz-credential=" in query_string.lower():
        for key, value in parse_qsl(query_string.decode("latin-1")):
            if key.lower() == "x-amz-credential":
                return _service_from_credential(value)
    return None


def classify(scope: Scope) -> Route:
    """Return the route of an HTTP or WebSocket request, by the rules in the module docstring."""
    path: str = scope.get("path", "")
    if path.startswith(CONTROL_PATH_PREFIX):
        return Route.LAMBDA

    service = signing_service(scope)
    if service is not None:
        return Route.LAMBDA if service == "lambda" else Route.AWS

    if path.startswith(REGISTRY_PATH_PREFIX):
        return Route.REGISTRY
    if path.startswith(LAMBDA_PATH_PREFIXES):
        return Route.LAMBDA
    return Route.AWS


@attrs.define(eq=False)
class Gateway:
    """The ASGI application of the one endpoint.

    `lifespan` events, WebSocket connections and LAMBDA and REGISTRY requests go
    to `lambda_app`. AWS requests go to `aws_app`, in practice a `WSGIBridge`
    around moto. Each request is classified once, when it arrives.
    """

    lambda_app: ASGIApp
    aws_app: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and classify(scope) is Route.AWS:
            await self.aws_app(scope, receive, send)
        else:
            await self.lambda_app(scope, receive, send)


def _wsgi_string(text: str) -> str:
    # PEP 3333 environ strings carry bytes as ISO-8859-1 code points.
    return text.encode("utf-8").decode("latin-1")


def _add_headers(environ: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    from moto.core.request import (
        PRESERVED_HEADER_NAMES_ENVIRON_KEY,
        should_preserve_original_header_name,
    )

    def environ_key(name: str) -> str:
        key = name.upper().replace("-", "_")
        return key if key == "CONTENT_TYPE" else f"HTTP_{key}"

    # WSGI spells "-" and "_" in header names alike, so one header could pose
    # as another. Like werkzeug's server, drop names with "_", except S3
    # metadata headers (moto's rule), which never replace a dashed header.
    # moto reads their original spelling from the preserved-names entry.
    dashed_keys = {environ_key(name.decode("latin-1")) for name, _ in headers if b"_" not in name}
    values: dict[str, list[str]] = {}
    preserved_names: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1")
        lowered = name.lower()
        # The body arrives de-chunked and whole: CONTENT_LENGTH is set from it,
        # and Transfer-Encoding no longer applies.
        if lowered in ("content-length", "transfer-encoding"):
            continue
        key = environ_key(name)
        if "_" in name:
            if not should_preserve_original_header_name(name) or key in dashed_keys:
                continue
            preserved_names.setdefault(key, name)
        values.setdefault(key, []).append(raw_value.decode("latin-1"))

    for key, key_values in values.items():
        environ[key] = ",".join(key_values)
    environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = preserved_names


def build_environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """Build the WSGI environ of an ASGI HTTP request whose whole body is `body`.

    Besides the PEP 3333 keys, sets `RAW_URI` and `REQUEST_URI` to the path and
    query as sent, before percent-decoding, because moto matches S3 keys such
    as `a%2Fb` against them. Also sets moto's preserved-header-names entry,
    which keeps `_` in S3 metadata names.
    """
    root_path: str = scope.get("root_path", "")
    path: str = scope["path"]
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    query_string = scope.get("query_string", b"").decode("latin-1")

    raw_path: bytes | None = scope.get("raw_path")
    raw_uri = raw_path.decode("latin-1") if raw_path else quote(scope["path"])
    if query_string:
        raw_uri = f"{raw_uri}?{query_string}"

    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": _wsgi_string(root_path),
        "PATH_INFO": _wsgi_string(path),
        "QUERY_STRING": query_string,
        "RAW_URI": raw_uri,
        "REQUEST_URI": raw_uri,
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if client:
        environ["REMOTE_ADDR"] = str(client[0])
        environ["REMOTE_PORT"] = str(client[1])
    _add_headers(environ, scope.get("headers", []))
    # moto reads HTTP_HOST unconditionally for S3, and HTTP/1.0 may omit it.
    environ.setdefault("HTTP_HOST", f"{server[0]}:{server[1]}")
    return environ


@attrs.frozen
class WSGIResponse:
    """A complete WSGI response, ready to send over ASGI."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body_chunks: list[bytes]


def call_wsgi(app: WSGIApplication, environ: dict[str, Any]) -> WSGIResponse:
    """Call a WSGI application and collect its whole response. Blocking."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks: list[bytes] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        # Nothing is sent before the application returns, so a second call
        # (with exc_info, after an error) simply replaces the first.
        started[:] = [(status, headers)]
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(chunk for chunk in result if chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()

    if not started:
        raise RuntimeError("the WSGI application returned without calling start_response")
    status, headers = started[0]
    return WSGIResponse(
        status=int(status.split(" ", 1)[0]),
        headers=[(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers],
        body_chunks=chunks,
    )


def _error_response(exc: Exception) -> WSGIResponse:
    message = f"Internal error in the embedded AWS service: {type(exc).__name__}: {exc}\n"
    body = message.encode("utf-8", "replace")
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    return WSGIResponse(status=500, headers=headers, body_chunks=[body])


@attrs.define(eq=False)
class WSGIBridge:
    """An ASGI application that serves HTTP requests with a WSGI application in worker threads.

    `wsgi_app` defaults to the moto application of `services`. Every call runs
    under `services.limiter`, the same limiter as lambdasim's direct moto
    calls. When the request task is cancelled (server shutdown), the bridge
    stops waiting at once and abandons the thread to finish alone. An exception
    in the WSGI application is logged and becomes a 500 response.
    """

    services: EmbeddedServices
    wsgi_app: WSGIApplication | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"WSGIBridge serves only HTTP, got an ASGI {scope['type']!r} scope")

        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break

        response = await self.services.run_sync(
            self._respond, scope, b"".join(chunks), abandon_on_cancel=True
        )

        # ASGI needs the start message even when the body is empty (HEAD, 204, 304).
        await send(
            {"type": "http.response.start", "status": response.status, "headers": response.headers}
        )
        last = len(response.body_chunks) - 1
        if last < 0:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        for index, chunk in enumerate(response.body_chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": index < last})

    def _respond(self, scope: Scope, body: bytes) -> WSGIResponse:
        # Runs in a worker thread, so the environ is built here too.
        try:
            app = self.wsgi_app if self.wsgi_app is not None else self.services.wsgi_app
            return call_wsgi(app, build_environ(scope, body))
        except Exception as exc:
            logger.exception("embedded AWS service failed on %s %s", scope["method"], scope["path"])
            return _error_response(exc)
