"""The embedded AWS services: moto, run in-process in worker threads.

Every request that is not for Lambda or the image registry reaches moto's WSGI
application (`EmbeddedServices.wsgi_app`), and lambdasim reads moto's backends
directly for its own needs (execution roles, STS credentials, log writes).
moto's backends are plain dicts that request threads mutate without locks of
their own, so every call into moto, HTTP or direct, goes through
`EmbeddedServices.run_sync`. That keeps moto off the trio thread and bounds the
number of threads touching it.

moto reads most of its settings from environment variables, some of them only
when it is imported or when a backend is first created. `configure_moto_environment`
sets them, and `EmbeddedServices` calls it when it is created, so create the
services before anything imports moto.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import trio

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

logger = logging.getLogger("lambdasim.services")

T = TypeVar("T")

#: The account moto uses when `MOTO_ACCOUNT_ID` is not set (moto 5).
MOTO_DEFAULT_ACCOUNT_ID = "123456789012"

#: Settings that lambdasim needs from moto, besides `MOTO_ACCOUNT_ID`.
#: With MOTO_IAM_LOAD_MANAGED_POLICIES unset, AWS managed policy ARNs such as
#: arn:aws:iam::aws:policy/AmazonS3FullAccess do not exist in moto's IAM.
_MOTO_SETTINGS = {"MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}


def _validate_account_id(account_id: str) -> None:
    if len(account_id) != 12 or not account_id.isdigit():
        raise ValueError(f"account_id must be 12 digits, got {account_id!r}")


def configure_moto_environment(account_id: str) -> None:
    """Set the environment variables that configure moto for `account_id`.

    Sets `MOTO_ACCOUNT_ID`, which moto reads on every request, and
    `MOTO_IAM_LOAD_MANAGED_POLICIES=true`, which moto reads when it creates an
    account's IAM backend. Calling it again with the same account is harmless.

    Raises ValueError if `account_id` is not 12 digits, and RuntimeError if moto
    is already imported and configured for another account, because the
    resources created so far would then belong to an account that lambdasim
    does not use.
    """
    _validate_account_id(account_id)
    if "moto" in sys.modules:
        current = os.environ.get("MOTO_ACCOUNT_ID", MOTO_DEFAULT_ACCOUNT_ID)
        if current != account_id:
            raise RuntimeError(
                f"moto is already imported with account {current}, so lambdasim "
                f"cannot switch it to account {account_id}. Create the embedded "
                "services (or call configure_moto_environment) before anything "
                "imports moto, or use the same account id."
            )
    os.environ["MOTO_ACCOUNT_ID"] = account_id
    os.environ.update(_MOTO_SETTINGS)


def _build_wsgi_app() -> WSGIApplication:
    # Importing moto takes about 0.2 s, which is why this happens lazily.
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        create_backend_app,
    )

    from .moto_patches import apply_moto_patches

    apply_moto_patches()
    return DomainDispatcherApplication(create_backend_app)


@attrs.define(eq=False)
class EmbeddedServices:
    """The moto services of one simulator, with the thread limiter for all calls into moto.

    Creating an instance configures moto's environment for `account_id` (see
    `configure_moto_environment`) but does not import moto. moto is imported
    on the first use of `wsgi_app`, or earlier by `load`.

    Nothing here needs closing. moto keeps its state in module globals, so
    every instance in one process shares the same resources.
    """

    account_id: str = attrs.field(default="000000000000")
    region: str = "us-east-1"
    #: Maximum number of worker threads running moto code at once, HTTP
    #: requests and direct backend calls together.
    # NOTE: an SQS ReceiveMessage with WaitTimeSeconds occupies one thread for
    # the whole wait, so `max_threads` concurrent long polls stall every other
    # moto call until one of them returns.
    max_threads: int = attrs.field(default=40)
    _limiter: trio.CapacityLimiter = attrs.field(init=False)
    _wsgi_app: WSGIApplication | None = attrs.field(init=False, default=None)
    _wsgi_app_lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)

    @account_id.validator
    def _check_account_id(self, attribute: attrs.Attribute[str], value: str) -> None:
        _validate_account_id(value)

    @max_threads.validator
    def _check_max_threads(self, attribute: attrs.Attribute[int], value: int) -> None:
        if value < 1:
            raise ValueError(f"max_threads must be at least 1, got {value!r}")

    def __attrs_post_init__(self) -> None:
        configure_moto_environment(self.account_id)
        self._limiter = trio.CapacityLimiter(self.max_threads)

    @property
    def limiter(self) -> trio.CapacityLimiter:
        """The capacity limiter of every worker thread that runs moto code."""
        return self._limiter

    @property
    def wsgi_app(self) -> WSGIApplication:
        """moto's WSGI application, which routes each request to a moto backend.

        The first access imports moto and blocks for about 0.2 s, so make it
        from a worker thread or call `load` first. Safe to use from any thread.
        """
        app = self._wsgi_app
        if app is None:
            with self._wsgi_app_lock:
                if self._wsgi_app is None:
                    self._wsgi_app = _build_wsgi_app()
                    logger.debug("moto WSGI application created")
                app = self._wsgi_app
        return app

    async def load(self) -> None:
        """Import moto and create `wsgi_app` in a worker thread.

        Optional: it moves the import cost from the first request to start-up.
        """
        await self.run_sync(lambda: self.wsgi_app)

    async def run_sync(
        self,
        fn: Callable[..., T],
        *args: Any,
        abandon_on_cancel: bool = False,
    ) -> T:
        """Run `fn(*args)` in a worker thread under the moto thread limiter.

        Use it for every call that reads or changes moto's backends. With the
        default `abandon_on_cancel=False`, cancellation waits until `fn`
        returns, so the caller always knows whether the change happened. With
        `abandon_on_cancel=True`, cancellation returns at once and `fn` keeps
        running in its thread. The thread keeps its limiter slot until `fn`
        returns in either case.
        """
        return await trio.to_thread.run_sync(
            fn, *args, limiter=self._limiter, abandon_on_cancel=abandon_on_cancel
        )

    def reset(self) -> None:
        """Delete every resource in every moto backend, in all accounts and regions.

        Blocking and not thread-safe against running requests: call it through
        `run_sync` while no request is in flight, e.g. between tests.
        """
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()
        logger.info("moto backends reset")
