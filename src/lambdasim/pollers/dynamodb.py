"""Reading DynamoDB streams from moto's backend, and the DynamoDB event record.

Every function here reads moto's backend and blocks: call them in worker threads
through `EmbeddedServices.run_sync`. moto keeps one shard per table stream and
numbers its records from a fixed starting sequence number. A position is the
sequence number of the last record read.
"""

from __future__ import annotations

import copy
import datetime
import json
import zlib
from typing import Any

import attrs

from .settings import EventSource
from .stream_records import ShardInfo, StreamRecord


def _stream_shard(source: EventSource) -> Any | None:
    """Return the moto shard of the stream `source` names, or None if that stream is gone."""
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends[source.account_id][source.region].tables.get(source.name)
    if table is None or table.stream_shard is None:
        return None
    label = source.arn.rsplit("/stream/", 1)[1]
    if table.latest_stream_label != label:
        return None
    return table.stream_shard


def _epoch_seconds(value: Any) -> float:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return float(int(value.timestamp()))
    return float(value)


def dynamodb_record(source: EventSource, item: Any) -> dict[str, Any]:
    """Return the Lambda event record of a moto stream record, as AWS sends it.

    `eventName` is INSERT, MODIFY or REMOVE. `dynamodb` contains `Keys`, the
    images that the stream view type includes, `SequenceNumber`, `SizeBytes`,
    `StreamViewType` and `ApproximateCreationDateTime` in seconds since the epoch.
    """
    stored = item.to_json()
    change = copy.deepcopy(stored["dynamodb"])
    change["ApproximateCreationDateTime"] = _epoch_seconds(change["ApproximateCreationDateTime"])
    return {
        "eventID": stored["eventID"],
        "eventName": stored["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": source.region,
        "dynamodb": change,
        "eventSourceARN": source.arn,
    }


@attrs.frozen
class DynamoDBStreamReader:
    """Reads one DynamoDB stream of the embedded services."""

    source: EventSource
    #: The key of the batch description in on-failure records.
    batch_info_key = "DDBStreamBatchInfo"

    def exists(self) -> bool:
        return _stream_shard(self.source) is not None

    def _shard(self, shard_id: str) -> Any:
        shard = _stream_shard(self.source)
        if shard is None or shard.id != shard_id:
            raise LookupError(f"shard {shard_id} of {self.source.arn} does not exist")
        return shard

    def shards(self) -> list[ShardInfo]:
        shard = _stream_shard(self.source)
        if shard is None:
            raise LookupError(f"stream {self.source.arn} does not exist")
        return [ShardInfo(shard.id, (), True)]

    def trim_horizon(self, shard_id: str) -> int:
        return int(self._shard(shard_id).starting_sequence_number) - 1

    def latest(self, shard_id: str) -> int:
        shard = self._shard(shard_id)
        return int(shard.starting_sequence_number) + len(shard.items) - 1

    def at_timestamp(self, shard_id: str, timestamp: float) -> int:
        # Settings validation rejects AT_TIMESTAMP for DynamoDB streams, as AWS does.
        raise ValueError("DynamoDB streams have no AT_TIMESTAMP position")

    def read(
        self, shard_id: str, after: int, limit: int, identity_arn: str
    ) -> tuple[list[StreamRecord], bool]:
        """Return up to `limit` records after position `after`, in order.

        The second value is whether the shard is closed. The shard of a moto
        table stream never closes, so it is always False.
        """
        shard = self._shard(shard_id)
        start = int(shard.starting_sequence_number)
        index = max(0, after + 1 - start)
        items = shard.items[index : index + limit]
        records = [self._convert(start + index + offset, item) for offset, item in enumerate(items)]
        return records, False

    def _convert(self, sequence: int, item: Any) -> StreamRecord:
        record = dynamodb_record(self.source, item)
        keys = json.dumps(record["dynamodb"]["Keys"], sort_keys=True)
        return StreamRecord(
            sequence=sequence,
            partition_key=keys,
            lane_key=zlib.crc32(keys.encode()),
            arrival=record["dynamodb"]["ApproximateCreationDateTime"],
            record=record,
            size=int(record["dynamodb"].get("SizeBytes", 0)) + 300,
        )

    def filter_view(self, record: dict[str, Any]) -> dict[str, Any]:
        return record
