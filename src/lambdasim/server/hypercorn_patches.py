"""One write per HTTP/1.1 response in Hypercorn.

Hypercorn 0.18 writes a response's head, its body and the end of the message as
separate socket writes. Each write is a system call, and on the client's side
each segment can be a separate wakeup and read. For a small response such as an
Invoke result, joining them raised warm throughput with 8 raw clients from 1,121
to 1,206 invokes/s (mean of three alternating 10 s runs of each, on the 2-vCPU VM
that benchmarks/README.md describes).

`install()` makes Hypercorn's HTTP/1.1 protocol hold a response head back until
the next write, which it then joins. The body, or the end of a response without
a body, follows in the same task without waiting, so the client sees no delay.
Only the Hypercorn versions named in `SUPPORTED_VERSIONS` are changed, because
the change relies on how their protocol classes call each other. With any other
version the server runs Hypercorn unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

from hypercorn.events import RawData

logger = logging.getLogger("lambdasim.server")

#: The Hypercorn minor versions whose HTTP/1.1 protocol `install()` changes.
SUPPORTED_VERSIONS = ("0.18",)

_installed = False


class HeadHoldingSend:
    """A protocol's send callable, wrapped to join a response head to the next write.

    After `hold_next()`, the next raw write is kept back. The write after it is
    sent with the kept bytes in front. Any other event sends the kept bytes first.
    """

    def __init__(self, send: Callable[[Any], Awaitable[None]]) -> None:
        self._send = send
        self._hold = False
        #: The response head kept back, if any.
        self._head: bytes | None = None

    def hold_next(self) -> None:
        self._hold = True

    def release_hold(self) -> None:
        """Stop waiting for a write to hold. Bytes already held stay held."""
        self._hold = False

    async def __call__(self, event: Any) -> None:
        if self._hold and isinstance(event, RawData):
            self._hold = False
            self._head = event.data
            return
        head, self._head = self._head, None
        if head is None and isinstance(event, RawData) and not event.data:
            # The end of a Content-Length message is written as no bytes at all.
            return
        if head is not None:
            if isinstance(event, RawData):
                event = RawData(data=head + event.data, address=event.address)
            else:
                await self._send(RawData(data=head))
        await self._send(event)


def install() -> bool:
    """Make Hypercorn write each HTTP/1.1 response head together with what follows it.

    Returns whether Hypercorn's protocol is changed. Calling it again does nothing.
    """
    global _installed
    if _installed:
        return True
    try:
        version = metadata.version("hypercorn")
    except metadata.PackageNotFoundError:
        version = "(unknown version)"
    if not any(version == v or version.startswith(f"{v}.") for v in SUPPORTED_VERSIONS):
        logger.info(
            "Hypercorn %s is not one of %s, so responses keep Hypercorn's own writes",
            version,
            ", ".join(SUPPORTED_VERSIONS),
        )
        return False

    import hypercorn.protocol
    from hypercorn.protocol.events import Response
    from hypercorn.protocol.h11 import H11Protocol

    class HeadJoiningH11Protocol(H11Protocol):
        """Hypercorn's HTTP/1.1 protocol, with each response head joined to the next write."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.send = HeadHoldingSend(self.send)

        async def stream_send(self, event: Any) -> None:
            send = self.send
            assert isinstance(send, HeadHoldingSend)
            if not (isinstance(event, Response) and event.status_code >= 200):
                await super().stream_send(event)
                return
            # Hypercorn writes the head inside this call. If it writes nothing, for
            # example after a protocol error, no later write may be held instead.
            send.hold_next()
            try:
                await super().stream_send(event)
            finally:
                send.release_hold()

    hypercorn.protocol.H11Protocol = HeadJoiningH11Protocol  # type: ignore[misc]
    _installed = True
    return True
