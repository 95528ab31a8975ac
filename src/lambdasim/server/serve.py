"""Serve an ASGI application over HTTP with Hypercorn's trio worker."""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import hypercorn.config
import hypercorn.trio
import trio

from lambdasim.server import hypercorn_patches
from lambdasim.server.gateway import ASGIApp

logger = logging.getLogger("lambdasim.server")

#: Seconds that requests in flight get to finish once the server stops.
GRACEFUL_TIMEOUT = 5.0
#: Seconds that the application's lifespan shutdown handlers get.
LIFESPAN_SHUTDOWN_TIMEOUT = 10.0
#: Seconds after a stop request until every remaining task is cancelled.
STOP_TIMEOUT = GRACEFUL_TIMEOUT + LIFESPAN_SHUTDOWN_TIMEOUT + 1.0


def _hypercorn_config(host: str, port: int) -> hypercorn.config.Config:
    config = hypercorn.config.Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    # Hypercorn closes a keep-alive connection after 1000 requests by default.
    # SDK clients reconnect, but each reconnect costs time and can race a
    # request on the closing connection, so never close for that reason.
    config.keep_alive_max_requests = sys.maxsize
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.shutdown_timeout = LIFESPAN_SHUTDOWN_TIMEOUT
    # A Logger object (not Hypercorn's default "-") keeps Hypercorn from adding
    # its own stderr handler, so the application's logging setup applies.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.accesslog = None
    return config


def _address_of(bind: str) -> tuple[str, int]:
    # Hypercorn reports each listening socket as "http://HOST:PORT".
    parts = urlsplit(bind)
    if parts.hostname is None or parts.port is None:
        raise RuntimeError(f"cannot parse Hypercorn's bind {bind!r}")
    return parts.hostname, parts.port


def _only_os_error(group: BaseExceptionGroup[BaseException]) -> OSError | None:
    matched, rest = group.split(OSError)
    if matched is None or rest is not None:
        return None
    errors = [exc for exc in _leaves(matched) if isinstance(exc, OSError)]
    return errors[0] if len(errors) == 1 else None


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            leaves.extend(_leaves(exc))
        else:
            leaves.append(exc)
    return leaves


async def serve_http(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Serve `app` over HTTP/1.1 on `host`:`port` until cancelled or `shutdown_trigger` returns.

    Use with `nursery.start`. It runs the app's lifespan startup, opens the
    listening socket and then calls `task_status.started((host, port))` with
    the bound address, so with `port=0` the real port is reported. Connections
    made after that are accepted.

    Either way of stopping is graceful. Hypercorn stops accepting connections,
    gives requests in flight `GRACEFUL_TIMEOUT` seconds and then runs the app's
    lifespan shutdown. After `STOP_TIMEOUT` seconds whatever is left is
    cancelled. When `shutdown_trigger` returns, `serve_http` returns. When the
    caller is cancelled, it raises `trio.Cancelled` after the same steps.

    If the socket cannot be bound, raises OSError naming the address.
    """
    hypercorn_patches.install()
    config = _hypercorn_config(host, port)
    stop_requested = trio.Event()
    hypercorn_done = trio.Event()
    serve_scope = trio.CancelScope()

    async def wait_for_stop() -> None:
        async with trio.open_nursery() as nursery:

            async def wait_then_stop(wait: Callable[[], Awaitable[object]]) -> None:
                await wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(wait_then_stop, stop_requested.wait)
            if shutdown_trigger is not None:
                nursery.start_soon(wait_then_stop, shutdown_trigger)

    async def run_hypercorn(task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            with serve_scope:
                await hypercorn.trio.serve(
                    app,
                    config,
                    shutdown_trigger=wait_for_stop,
                    task_status=task_status,
                    mode="asgi",
                )
        finally:
            hypercorn_done.set()

    address: tuple[str, int] | None = None
    try:
        async with trio.open_nursery() as nursery:
            binds: list[str] = await nursery.start(run_hypercorn)
            # From here on, cancelling the caller stops the server gracefully
            # instead of tearing it down, and STOP_TIMEOUT bounds the shield.
            serve_scope.shield = True
            address = _address_of(binds[0])
            logger.info("listening on http://%s:%d", *address)
            task_status.started(address)
            try:
                await hypercorn_done.wait()
            finally:
                if not hypercorn_done.is_set():
                    logger.info("stopping the server on http://%s:%d", *address)
                    stop_requested.set()
                    serve_scope.deadline = trio.current_time() + STOP_TIMEOUT
    except BaseExceptionGroup as group:
        bind_error = _only_os_error(group) if address is None else None
        if bind_error is None:
            raise
        raise OSError(
            bind_error.errno, f"cannot listen on {host}:{port}: {bind_error.strerror}"
        ) from bind_error
    finally:
        if address is not None:
            logger.info("server on http://%s:%d stopped", *address)
