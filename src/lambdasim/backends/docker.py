"""Containers in a Docker engine, driven with docker-py from worker threads."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import attrs
import trio

from ..errors import ImageNotAvailableError, ServiceException
from .base import (
    INSTANCE_LABEL,
    MANAGED_LABEL,
    OWNER_PID_LABEL,
    ContainerHandle,
    ContainerSpec,
    OutputCallback,
)

logger = logging.getLogger("lambdasim.docker")

_IMAGE_HELP = (
    "On a machine without access to public.ecr.aws, build the stand-in images with "
    "`scripts/build-images`, or mirror the official images into a registry you can reach "
    "and set LAMBDASIM_LAMBDA_IMAGE_REGISTRY to it."
)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _split_reference(image: str) -> tuple[str, str]:
    """Split an image reference into the repository and the tag or digest to pull."""
    if "@" in image:
        repository, _, digest = image.partition("@")
        return repository, digest
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:
        return image, "latest"
    return repository, tag


@attrs.define(eq=False)
class DockerBackend:
    """A `ContainerBackend` for a Docker engine reached the usual way (DOCKER_HOST).

    Short engine calls share one capacity limiter. Each running container also has
    one worker thread that streams its output and then collects its exit status.
    """

    max_engine_calls: int = 16
    _client: Any = attrs.field(default=None, init=False)
    _limiter: trio.CapacityLimiter = attrs.field(init=False)
    _container_threads: trio.CapacityLimiter = attrs.field(init=False)
    _streams: dict[str, Any] = attrs.field(factory=dict, init=False)
    _images: set[str] = attrs.field(factory=set, init=False)
    _image_locks: dict[str, trio.Lock] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        self._limiter = trio.CapacityLimiter(self.max_engine_calls)
        self._container_threads = trio.CapacityLimiter(math.inf)

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    def _docker(self) -> Any:
        if self._client is None:
            import docker

            self._client = docker.from_env(timeout=120, max_pool_size=self.max_engine_calls + 8)
        return self._client

    async def ping(self) -> bool:
        def ping() -> bool:
            try:
                return bool(self._docker().ping())
            except Exception:  # any failure means "not reachable"
                return False

        return await self._call(ping)

    async def has_image(self, image: str) -> bool:
        if image in self._images:
            return True

        def look_up() -> bool:
            import docker.errors

            try:
                self._docker().images.get(image)
            except docker.errors.ImageNotFound:
                return False
            except docker.errors.DockerException as exc:
                logger.warning("could not look up image %s: %s", image, exc)
                return False
            return True

        present = await self._call(look_up)
        if present:
            self._images.add(image)
        return present

    async def ensure_image(self, image: str) -> None:
        if image in self._images:
            return
        lock = self._image_locks.setdefault(image, trio.Lock())
        async with lock:
            if image in self._images:
                return
            await self._call(self._ensure_image_sync, image)
            self._images.add(image)

    def _ensure_image_sync(self, image: str) -> None:
        import docker.errors

        client = self._docker()
        try:
            client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.DockerException as exc:
            raise ServiceException(
                f"The Docker engine failed to look up image {image}: {exc}"
            ) from exc
        repository, tag = _split_reference(image)
        logger.info("pulling image %s", image)
        layers: dict[str, int] = {}
        try:
            for progress in client.api.pull(repository, tag=tag, stream=True, decode=True):
                if "error" in progress:
                    raise ImageNotAvailableError(
                        f"Image {image} is not in the Docker engine and pulling it failed: "
                        f"{progress['error']}. {_IMAGE_HELP}"
                    )
                detail = progress.get("progressDetail") or {}
                if progress.get("id") and detail.get("total"):
                    layers[progress["id"]] = detail["total"]
                if progress.get("status", "").startswith(("Pull complete", "Digest", "Status")):
                    logger.info(
                        "pulling %s: %s (%d layers, %d bytes so far)",
                        image,
                        progress["status"],
                        len(layers),
                        sum(layers.values()),
                    )
        except docker.errors.DockerException as exc:
            raise ImageNotAvailableError(
                f"Image {image} is not in the Docker engine and pulling it failed: {exc}. "
                f"{_IMAGE_HELP}"
            ) from exc

    async def start(self, spec: ContainerSpec, on_output: OutputCallback) -> ContainerHandle:
        handle = await self._call(self._create_and_start, spec)
        self._streams[handle.id] = (self._streams.pop(handle.id), on_output)
        return handle

    def _create_and_start(self, spec: ContainerSpec) -> ContainerHandle:
        import docker.errors
        import docker.types

        client = self._docker()
        options: dict[str, Any] = {
            "environment": dict(spec.environment),
            "labels": dict(spec.labels),
            "name": spec.name,
            "network_mode": spec.network,
            "mounts": [
                docker.types.Mount(
                    target=mount.target, source=mount.source, type="bind", read_only=mount.read_only
                )
                for mount in spec.mounts
            ],
            "detach": True,
        }
        if spec.command:
            options["command"] = list(spec.command)
        if spec.memory_mb:
            options["mem_limit"] = f"{spec.memory_mb}m"
            options["memswap_limit"] = f"{spec.memory_mb}m"
        if spec.entrypoint is not None:
            options["entrypoint"] = list(spec.entrypoint)
        if spec.working_dir:
            options["working_dir"] = spec.working_dir
        if spec.platform:
            options["platform"] = spec.platform
        try:
            container = client.containers.create(spec.image, **options)
        except docker.errors.ImageNotFound as exc:
            self._images.discard(spec.image)
            # NOTE: images are looked up and pulled for the engine's own platform; a
            # function of another architecture needs its image present already.
            platform = f" for platform {spec.platform}" if spec.platform else ""
            raise ImageNotAvailableError(
                f"Image {spec.image}{platform} is not available. {_IMAGE_HELP}"
            ) from exc
        except docker.errors.DockerException as exc:
            raise ServiceException(
                f"The Docker engine failed to create a container: {exc}"
            ) from exc
        try:
            # Attach before starting so that no early output is lost.
            stream = container.attach(stdout=True, stderr=True, stream=True, demux=True, logs=False)
            container.start()
        except docker.errors.DockerException as exc:
            try:
                container.remove(force=True)
            except docker.errors.DockerException:
                logger.warning(
                    "could not remove container %s after a failed start", container.short_id
                )
            raise ServiceException(f"The Docker engine failed to start a container: {exc}") from exc
        self._streams[container.id] = stream
        return ContainerHandle(id=container.id, name=spec.name)

    async def wait(self, handle: ContainerHandle) -> int | None:
        stream, on_output = self._streams.pop(handle.id, (None, None))
        # This thread lives as long as the container, so it must not take a token of
        # a bounded limiter (trio's default has 40), or other blocking calls would
        # wait once that many containers run.
        return await trio.to_thread.run_sync(
            self._follow_until_exit,
            handle,
            stream,
            on_output,
            abandon_on_cancel=True,
            limiter=self._container_threads,
        )

    def _follow_until_exit(
        self, handle: ContainerHandle, stream: Any, on_output: OutputCallback | None
    ) -> int | None:
        import docker.errors

        forwarding = on_output is not None
        if stream is not None:
            try:
                for stdout, stderr in stream:
                    if not forwarding:
                        continue
                    try:
                        if stdout:
                            trio.from_thread.run_sync(on_output, "stdout", stdout)
                        if stderr:
                            trio.from_thread.run_sync(on_output, "stderr", stderr)
                    except trio.RunFinishedError:
                        forwarding = False
            except Exception as exc:  # the stream breaks when the container is removed
                logger.debug("output stream of %s ended: %r", handle.short_id, exc)
        try:
            result = self._docker().api.wait(handle.id, timeout=30)
        except docker.errors.NotFound:
            return None
        except Exception as exc:
            logger.warning("could not read the exit status of %s: %r", handle.short_id, exc)
            return None
        return result.get("StatusCode")

    async def memory_peak_bytes(self, handle: ContainerHandle) -> int | None:
        # The cgroup's own counter: cgroup v1 with the cgroupfs driver, then the
        # cgroup v2 layouts of the systemd and cgroupfs drivers.
        candidates = (
            f"/sys/fs/cgroup/memory/docker/{handle.id}/memory.max_usage_in_bytes",
            f"/sys/fs/cgroup/system.slice/docker-{handle.id}.scope/memory.peak",
            f"/sys/fs/cgroup/docker/{handle.id}/memory.peak",
        )

        def read() -> int | None:
            for path in candidates:
                try:
                    with open(path) as counter:
                        return int(counter.read().strip())
                except (OSError, ValueError):
                    continue
            return None

        # cgroup counters live in kernel memory, so a read does not wait for a disk.
        # It runs on the event loop instead of paying a thread hop per invocation.
        await trio.lowlevel.checkpoint()
        return read()

    async def remove(self, handle: ContainerHandle) -> None:
        await self._call(self._remove_sync, handle.id)

    def _remove_sync(self, container_id: str) -> None:
        import docker.errors

        try:
            self._docker().api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # removal already in progress
                return
            raise ServiceException(
                f"The Docker engine failed to remove {container_id[:12]}: {exc}"
            ) from exc

    async def remove_instance(self, instance_id: str) -> list[str]:
        """Remove every container of simulator `instance_id`; return their names."""
        return await self._call(self._remove_matching, f"{INSTANCE_LABEL}={instance_id}", None)

    async def remove_orphans(self, instance_id: str) -> list[str]:
        return await self._call(self._remove_matching, f"{MANAGED_LABEL}=true", instance_id)

    def _remove_matching(self, label: str, keep_instance: str | None) -> list[str]:
        import docker.errors

        removed = []
        try:
            containers = self._docker().api.containers(all=True, filters={"label": label})
        except docker.errors.DockerException as exc:
            raise ServiceException(f"The Docker engine failed to list containers: {exc}") from exc
        for container in containers:
            labels = container.get("Labels") or {}
            if keep_instance is not None:
                if labels.get(INSTANCE_LABEL) == keep_instance:
                    continue
                pid = labels.get(OWNER_PID_LABEL, "")
                if pid.isdigit() and _pid_alive(int(pid)):
                    continue
            name = (container.get("Names") or [container["Id"][:12]])[0].lstrip("/")
            self._remove_sync(container["Id"])
            removed.append(name)
        return removed

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await self._call(client.close)
