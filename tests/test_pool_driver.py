"""The container pool driven on trio's MockClock with the in-loop fake backend."""

from __future__ import annotations

import functools
import json
import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from lambdasim.config import Config
from lambdasim.environment import FunctionSnapshot
from lambdasim.errors import ServiceException, TooManyRequestsException
from lambdasim.pool import ContainerPool
from lambdasim.runtime_api import Invocation
from lambdasim.runtimes import lookup_runtime
from lambdasim.testing import FakeBackend, FakeCredentialsProvider


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    # Jump only after 20 ms of real idleness, so loopback I/O between the pool and
    # the fake runtimes completes before virtual time moves.
    return trio.testing.MockClock(autojump_threshold=0.02)


def snapshot(name: str = "fn", revision: int = 1, timeout: int = 3) -> FunctionSnapshot:
    return FunctionSnapshot(
        name=name,
        version="$LATEST",
        revision=revision,
        arn=f"arn:aws:lambda:us-east-1:000000000000:function:{name}",
        runtime=lookup_runtime("python3.12"),
        handler="app.handler",
        role="arn:aws:iam::000000000000:role/fake",
        timeout=timeout,
        memory_size=128,
        environment={},
        code_path="/nonexistent",
        image="fake-image",
    )


def invocation(payload: object = None) -> Invocation:
    return Invocation(
        request_id=str(uuid.uuid4()),
        payload=json.dumps(payload if payload is not None else {}).encode(),
        function_arn="arn:aws:lambda:us-east-1:000000000000:function:fn",
        deadline_ms=0,
    )


@attrs.define
class Harness:
    pool: ContainerPool
    backend: FakeBackend
    credentials: FakeCredentialsProvider

    async def invoke(self, payload: object = None, **kwargs: object) -> object:
        result = await self.pool.invoke(snapshot(**kwargs), invocation(payload))  # type: ignore[arg-type]
        assert result.error_type is None, result.payload
        return json.loads(result.payload)


@asynccontextmanager
async def open_pool(
    tmp_path: Path,
    backend: FakeBackend | None = None,
    *,
    session_seconds: float = 3600,
    **config: object,
) -> AsyncIterator[Harness]:
    backend = backend or FakeBackend()
    credentials = FakeCredentialsProvider(session_seconds)
    pool = ContainerPool(
        backend=backend,
        credentials=credentials,
        config=Config(data_dir=tmp_path, **config),  # type: ignore[arg-type]
        instance_id="test",
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(backend.run)
        await nursery.start(pool.run)
        yield Harness(pool, backend, credentials)
        nursery.cancel_scope.cancel()


async def sleeping_handler(event: dict) -> dict:
    await trio.sleep(event.get("sleep", 0))
    return event


async def test_warm_environment_reused(tmp_path: Path) -> None:
    async with open_pool(tmp_path) as harness:
        assert await harness.invoke({"n": 1}) == {"n": 1}
        assert await harness.invoke({"n": 2}) == {"n": 2}

        assert len(harness.backend.containers) == 1
        assert harness.pool.statistics().idle == 1


async def test_keep_alive_stops_idle(tmp_path: Path, mock_clock: trio.testing.MockClock) -> None:
    async with open_pool(tmp_path, keep_alive=300.0) as harness:
        await harness.invoke()
        first_done = trio.current_time()
        await trio.sleep(200)
        await harness.invoke()  # taking the environment cancels its timer
        second_done = trio.current_time()
        await trio.sleep(299)
        assert harness.pool.statistics().idle == 1
        await trio.sleep(2)

        container = harness.backend.containers[0]
        assert len(harness.backend.containers) == 1
        assert container.removed_at == pytest.approx(second_done + 300, abs=1e-6)
        assert container.removed_at > first_done + 300
        assert harness.pool.statistics().environments == ()


async def test_credentials_recycled_when_idle(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    # A 305 s session is recycled 5 s after the environment gets its credentials.
    async with open_pool(tmp_path, session_seconds=305) as harness:
        await harness.invoke()
        ready = harness.backend.containers[0].started_at + harness.backend.start_delay
        await trio.sleep(3)
        await harness.invoke()
        assert len(harness.backend.containers) == 1
        await trio.sleep(3)

        first = harness.backend.containers[0]
        assert first.removed_at == pytest.approx(ready + 5, abs=0.05)
        await harness.invoke()
        assert len(harness.backend.containers) == 2
        assert harness.credentials.issued == 2


async def test_busy_environment_recycled_after(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend(handler=sleeping_handler)
    async with open_pool(tmp_path, backend, session_seconds=305) as harness:
        await harness.invoke({"sleep": 0}, timeout=20)
        # Runs across the recycle time (5 s after start): finishes, then stops.
        assert await harness.invoke({"sleep": 8}, timeout=20) == {"sleep": 8}
        finished = trio.current_time()
        await trio.sleep(0.5)

        assert harness.backend.containers[0].removed_at == pytest.approx(finished, abs=1e-6)
        await harness.invoke({"sleep": 0}, timeout=20)
        assert len(harness.backend.containers) == 2


async def test_concurrent_invokes_separate(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend(handler=sleeping_handler)
    async with open_pool(tmp_path, backend, max_concurrent_starts=8) as harness:
        results = []

        async def one(index: int) -> None:
            results.append(await harness.invoke({"sleep": 1, "i": index}))

        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            for index in range(5):
                nursery.start_soon(one, index)

        assert sorted(r["i"] for r in results) == [0, 1, 2, 3, 4]
        assert len(harness.backend.containers) == 5
        # In parallel: one start delay plus one second, not five seconds.
        assert trio.current_time() - started == pytest.approx(1 + backend.start_delay, abs=0.01)
        await harness.invoke({"sleep": 0})
        assert len(harness.backend.containers) == 5


async def test_reserved_concurrency_throttles(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend(handler=sleeping_handler)
    async with open_pool(tmp_path, backend) as harness:
        harness.pool.set_reserved_concurrency("fn", 1)
        outcomes: list[object] = []

        async def one() -> None:
            try:
                outcomes.append(await harness.invoke({"sleep": 2}))
            except TooManyRequestsException as exc:
                outcomes.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one)
            await trio.sleep(0.5)
            nursery.start_soon(one)

        errors = [o for o in outcomes if isinstance(o, TooManyRequestsException)]
        assert len(errors) == 1
        assert errors[0].fields == {"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}
        assert errors[0].message == "Rate Exceeded."
        harness.pool.set_reserved_concurrency("fn", 0)
        with pytest.raises(TooManyRequestsException):
            await harness.invoke()


async def test_account_limit_throttles(tmp_path: Path, mock_clock: trio.testing.MockClock) -> None:
    backend = FakeBackend(handler=sleeping_handler)
    async with open_pool(tmp_path, backend, account_concurrency=2) as harness:
        reasons = []

        async def one(name: str) -> None:
            try:
                await harness.invoke({"sleep": 2}, name=name)
            except TooManyRequestsException as exc:
                reasons.append(exc.fields["Reason"])

        async with trio.open_nursery() as nursery:
            for name in ("a", "b", "c"):
                nursery.start_soon(one, name)
                await trio.sleep(0.1)

        assert reasons == ["ConcurrentInvocationLimitExceeded"]


async def test_bounded_starts(tmp_path: Path, mock_clock: trio.testing.MockClock) -> None:
    backend = FakeBackend(handler=sleeping_handler, start_delay=1.0)
    async with open_pool(tmp_path, backend, max_concurrent_starts=2) as harness:
        results = []

        async def one(index: int) -> None:
            results.append(await harness.invoke({"i": index}))

        async with trio.open_nursery() as nursery:
            for index in range(7):
                nursery.start_soon(one, index)

        assert sorted(r["i"] for r in results) == list(range(7))
        assert backend.max_starting == 2


async def test_init_failure_not_retried(tmp_path: Path, mock_clock: trio.testing.MockClock) -> None:
    backend = FakeBackend(init_error="Runtime.ImportModuleError")
    async with open_pool(tmp_path, backend) as harness:
        first = await harness.pool.invoke(snapshot(), invocation())
        await trio.sleep(10)
        assert len(backend.containers) == 1
        second = await harness.pool.invoke(snapshot(), invocation())

        assert first.error_type == "Runtime.ImportModuleError"
        assert second.error_type == "Runtime.ImportModuleError"
        assert len(backend.containers) == 2
        assert harness.pool.statistics().environments == ()


async def test_engine_error_keeps_pool_consistent(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend(engine_error=ServiceException("engine down"))
    async with open_pool(tmp_path, backend) as harness:
        with pytest.raises(ServiceException, match="engine down"):
            await harness.invoke()
        statistics = harness.pool.statistics()
        assert statistics.environments == ()
        assert statistics.waiting == 0

        backend.engine_error = None
        assert await harness.invoke({"ok": True}) == {"ok": True}


async def test_timeout_replaces_environment(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend(handler=sleeping_handler)
    async with open_pool(tmp_path, backend) as harness:
        result = await harness.pool.invoke(snapshot(timeout=1), invocation({"sleep": 5}))
        assert result.error_type == "Sandbox.Timedout"
        await trio.sleep(0.1)
        assert backend.containers[0].removed_at is not None
        assert await harness.invoke({"sleep": 0}, timeout=1) == {"sleep": 0}
        assert len(backend.containers) == 2


async def test_new_revision_retires_old(tmp_path: Path, mock_clock: trio.testing.MockClock) -> None:
    backend = FakeBackend(handler=sleeping_handler)
    async with open_pool(tmp_path, backend) as harness:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(harness.invoke, {"sleep": 1}, revision=1))
            nursery.start_soon(functools.partial(harness.invoke, {"sleep": 2.5}, revision=1))
            await trio.sleep(2)
            # Two environments of revision 1: one idle, one busy.
            statistics = harness.pool.statistics()
            assert (statistics.idle, statistics.busy) == (1, 1)
            harness.pool.stop_function("fn", keep=snapshot(revision=2).pool_key)
            await trio.sleep(0.1)
            removed = [c for c in backend.containers if c.removed_at is not None]
            assert len(removed) == 1
        await trio.sleep(0.1)

        assert all(c.removed_at is not None for c in backend.containers)
        await harness.invoke({"sleep": 0}, revision=2)
        assert len(backend.containers) == 3


async def test_cancelled_caller_returns_environment(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    backend = FakeBackend(handler=sleeping_handler, start_delay=1.0)
    async with open_pool(tmp_path, backend) as harness:
        with trio.move_on_after(0.5):
            await harness.invoke()
        await trio.sleep(2)

        # The start went on without its caller; the environment is idle, not lost.
        statistics = harness.pool.statistics()
        assert statistics.idle == 1
        assert statistics.waiting == 0
        assert await harness.invoke({"after": True}) == {"after": True}
        assert len(backend.containers) == 1


async def test_statistics_snapshot_frozen(tmp_path: Path) -> None:
    async with open_pool(tmp_path) as harness:
        await harness.invoke()
        statistics = harness.pool.statistics()

        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            statistics.idle = 5  # type: ignore[misc]
        (info,) = statistics.environments
        assert info.function == "fn"
        assert info.state == "idle"
        assert info.invocations == 1
        assert info.container_id == "fake-0"
        assert info.credential_expiry is not None
        assert not math.isinf(harness.pool.account_limit)
