"""Values that the stream sources hand to the stream poller."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class ShardInfo:
    """One shard of a stream, as listed."""

    shard_id: str
    #: The shards this one was split or merged from; read them to the end first.
    parents: tuple[str, ...]
    is_open: bool


@attrs.frozen
class StreamRecord:
    """One record read from a shard, with its Lambda event record."""

    sequence: int
    partition_key: str
    #: Records with equal keys stay in order across parallel batches of a shard.
    lane_key: int
    #: Arrival in the stream, in seconds since the epoch.
    arrival: float
    record: dict[str, Any] = attrs.field(repr=False)
    #: Approximate size of the record in an event payload, in bytes.
    size: int
