"""Event source mappings: pollers that invoke functions with records from queues and streams."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import trio

if TYPE_CHECKING:
    from ..simulator import Simulator


@attrs.define(eq=False)
class EventSourceMappings:
    """The event source mappings of one simulator and their pollers."""

    simulator: Simulator

    async def run(self, *, task_status: trio.TaskStatus[EventSourceMappings] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the pollers until cancelled. Use with `nursery.start`."""
        task_status.started(self)
        await trio.sleep_forever()
