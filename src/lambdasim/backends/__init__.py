"""Container backends: where execution environments' containers run."""

from .base import ContainerBackend, ContainerHandle, ContainerSpec, Mount, OutputCallback

__all__ = ["ContainerBackend", "ContainerHandle", "ContainerSpec", "Mount", "OutputCallback"]
