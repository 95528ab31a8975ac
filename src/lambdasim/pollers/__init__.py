"""Event source mappings: pollers that invoke functions with records from queues and streams.

`EventSourceMappings` contains a simulator's mappings and runs one `Poller` per
enabled mapping: `SqsPoller` for SQS queues and `StreamPoller` for Kinesis and
DynamoDB streams. Each reads the embedded services through moto's backends in
worker threads, batches records, applies the mapping's `FilterCriteria` and
invokes the function synchronously.
"""

from __future__ import annotations

from .filters import FilterCriteria
from .mappings import EventSourceMapping, EventSourceMappings
from .poller import Poller
from .settings import EventSource, MappingSettings, SourceKind

__all__ = [
    "EventSource",
    "EventSourceMapping",
    "EventSourceMappings",
    "FilterCriteria",
    "MappingSettings",
    "Poller",
    "SourceKind",
]
