"""The interface between execution environments and a container engine."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

import attrs

#: Label on every container lambdasim starts.
MANAGED_LABEL = "io.lambdasim.managed"
#: Label naming the simulator instance that owns a container.
INSTANCE_LABEL = "io.lambdasim.instance"
#: Label with the process id of the owning lambdasim process.
OWNER_PID_LABEL = "io.lambdasim.owner-pid"
FUNCTION_LABEL = "io.lambdasim.function"
VERSION_LABEL = "io.lambdasim.version"
ENVIRONMENT_LABEL = "io.lambdasim.environment"

#: Called with the stream name ("stdout" or "stderr") and a chunk of output.
OutputCallback = Callable[[str, bytes], None]


@attrs.frozen
class Mount:
    """A host folder bound into a container."""

    source: str
    target: str
    read_only: bool = True


@attrs.frozen
class ContainerSpec:
    """Everything needed to create one execution environment's container."""

    image: str
    name: str
    command: tuple[str, ...] = attrs.field(converter=tuple)
    environment: Mapping[str, str] = attrs.field(factory=dict)
    mounts: tuple[Mount, ...] = attrs.field(default=(), converter=tuple)
    labels: Mapping[str, str] = attrs.field(factory=dict)
    network: str = "host"
    memory_mb: int | None = None
    entrypoint: tuple[str, ...] | None = None
    working_dir: str | None = None
    #: The image platform to run, such as `linux/arm64`; None takes the image's own.
    platform: str | None = None


@attrs.frozen
class ContainerHandle:
    """A started container."""

    id: str
    name: str

    @property
    def short_id(self) -> str:
        return self.id[:12]


class ContainerBackend(Protocol):
    """The container engine operations that execution environments use.

    Every method may block on the engine for a while; implementations must not
    block the trio event loop.
    """

    async def ping(self) -> bool:
        """Tell whether the engine is reachable."""
        ...

    async def has_image(self, image: str) -> bool:
        """Tell whether `image` is present in the engine, without pulling it."""
        ...

    async def ensure_image(self, image: str) -> None:
        """Make `image` available, pulling it if needed.

        Raises ImageNotAvailableError naming the image and what to do about it.
        """
        ...

    async def start(self, spec: ContainerSpec, on_output: OutputCallback) -> ContainerHandle:
        """Create and start a container, with its output going to `on_output`."""
        ...

    async def wait(self, handle: ContainerHandle) -> int | None:
        """Wait until the container exits and return its exit status."""
        ...

    async def memory_peak_bytes(self, handle: ContainerHandle) -> int | None:
        """Return the container's peak memory use so far, or None if unknown."""
        ...

    async def remove(self, handle: ContainerHandle) -> None:
        """Kill the container if it runs, and remove it. Missing containers are fine."""
        ...

    async def remove_instance(self, instance_id: str) -> list[str]:
        """Remove every container of simulator `instance_id`; return their names."""
        ...

    async def remove_orphans(self, instance_id: str) -> list[str]:
        """Remove containers of lambdasim processes that no longer run.

        Returns the names of the removed containers.
        """
        ...

    async def aclose(self) -> None:
        """Release the engine connection."""
        ...
