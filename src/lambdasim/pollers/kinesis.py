"""Reading Kinesis streams from moto's backend, and the Kinesis event record.

Every function here reads moto's backend and blocks: call them in worker threads
through `EmbeddedServices.run_sync`. moto numbers the records of each shard 1, 2,
3, ... (AWS uses long digit strings). A position is the sequence number of the
last record read, 0 before the first.

NOTE: moto's SplitShard and MergeShards put the parent shards' records into the
new shards again, under new sequence numbers, where AWS leaves them only in the
closed parents. A mapping therefore delivers again the records it had read before
a resharding.
"""

from __future__ import annotations

import base64
import datetime
import itertools
import zlib
from typing import Any

import attrs

from .filters import decode_json_object
from .settings import EventSource
from .stream_records import ShardInfo, StreamRecord


def _stream(source: EventSource) -> Any | None:
    from moto.kinesis.models import kinesis_backends

    return kinesis_backends[source.account_id][source.region].streams.get(source.name)


def _epoch(moment: datetime.datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def kinesis_record(
    source: EventSource, shard_id: str, record: Any, identity_arn: str
) -> dict[str, Any]:
    """Return the Lambda event record of a moto Kinesis record, as AWS sends it.

    `data` is the base64 of the bytes put, and the arrival time is in seconds
    since the epoch with millisecond precision.
    """
    sequence = str(record.sequence_number)
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record.partition_key,
            "sequenceNumber": sequence,
            "data": base64.b64encode(record.data).decode(),
            "approximateArrivalTimestamp": round(_epoch(record.created_at), 3),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": identity_arn,
        "awsRegion": source.region,
        "eventSourceARN": source.arn,
    }


def kinesis_filter_view(record: dict[str, Any]) -> dict[str, Any]:
    """Return what filter patterns see: the `kinesis` fields at the top, `data` decoded."""
    view = {key: value for key, value in record.items() if key != "kinesis"}
    view.update(record["kinesis"])
    decoded = decode_json_object(base64.b64decode(record["kinesis"]["data"]))
    if decoded is not None:
        view["data"] = decoded
    return view


@attrs.frozen
class KinesisReader:
    """Reads one Kinesis stream of the embedded services."""

    source: EventSource
    #: The key of the batch description in on-failure records.
    batch_info_key = "KinesisBatchInfo"

    def exists(self) -> bool:
        return _stream(self.source) is not None

    def shards(self) -> list[ShardInfo]:
        stream = _stream(self.source)
        if stream is None:
            raise LookupError(f"stream {self.source.arn} does not exist")
        return [
            ShardInfo(
                shard.shard_id,
                tuple(p for p in (shard.parent, shard.adjacent_parent) if p),
                shard.is_open,
            )
            for shard in list(stream.shards.values())
        ]

    def _shard(self, shard_id: str) -> Any:
        stream = _stream(self.source)
        if stream is None or shard_id not in stream.shards:
            raise LookupError(f"shard {shard_id} of {self.source.arn} does not exist")
        return stream.shards[shard_id]

    def trim_horizon(self, shard_id: str) -> int:
        shard = self._shard(shard_id)
        return shard.get_min_sequence_number() - 1 if shard.records else 0

    def latest(self, shard_id: str) -> int:
        return self._shard(shard_id).get_max_sequence_number()

    def at_timestamp(self, shard_id: str, timestamp: float) -> int:
        """Return the position just before the first record that arrived at or after `timestamp`."""
        position = self.trim_horizon(shard_id)
        for sequence, record in list(self._shard(shard_id).records.items()):
            if _epoch(record.created_at) >= timestamp:
                break
            position = sequence
        return position

    def read(
        self, shard_id: str, after: int, limit: int, identity_arn: str
    ) -> tuple[list[StreamRecord], bool]:
        """Return up to `limit` records after position `after`, in order.

        The second value is whether the shard is closed: reading a closed
        shard has ended when no records were returned.
        """
        shard = self._shard(shard_id)
        records = shard.records
        found = []
        if not records or next(reversed(records)) <= after:
            return [], not shard.is_open
        if after + 1 in records:
            # Sequence numbers of a moto shard are consecutive: index directly.
            for sequence in itertools.count(after + 1):
                record = records.get(sequence)
                if record is None or len(found) >= limit:
                    break
                found.append(record)
        else:
            for sequence, record in list(records.items()):
                if sequence > after:
                    found.append(record)
                    if len(found) >= limit:
                        break
        converted = [self._convert(shard_id, record, identity_arn) for record in found]
        return converted, not shard.is_open

    def _convert(self, shard_id: str, record: Any, identity_arn: str) -> StreamRecord:
        event_record = kinesis_record(self.source, shard_id, record, identity_arn)
        return StreamRecord(
            sequence=record.sequence_number,
            partition_key=record.partition_key,
            lane_key=zlib.crc32(record.partition_key.encode()),
            arrival=event_record["kinesis"]["approximateArrivalTimestamp"],
            record=event_record,
            size=len(record.data) + 400,
        )

    def filter_view(self, record: dict[str, Any]) -> dict[str, Any]:
        return kinesis_filter_view(record)
