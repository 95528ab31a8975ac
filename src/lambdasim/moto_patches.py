"""Fixes for moto code paths whose cost grows with the size of a queue or stream.

Checked against moto 5.2.6. Each fix keeps moto's observable behaviour and changes
only how much work a call does:

- SQS `Queue.attributes` built every queue attribute, including three scans of all
  messages, and `SendMessage` reads it up to three times per message, while
  `ReceiveMessage` reads it three times per message returned (for the retention
  check). The attributes become a read-only mapping that computes only the
  attribute asked for.
- SQS `Queue.messages` built the list of all visible messages before
  `ReceiveMessage` took the first ones. It becomes a lazy view, so a receive stops
  after the messages it returns and the in-flight ones before them.
- SQS `Queue.delete_message` scanned every message twice, rebuilding each one's
  list of receipt handles. Receipt handles are now indexed when a message is
  received, so a delete finds its message at once.
- SQS receipt handles were drawn one character per call of moto's random
  generator (about 40 us each); one call now draws all 185 characters.
- Kinesis `Shard.get_min_sequence_number` and `get_max_sequence_number` copied all
  keys of the shard, and `PutRecord` calls the latter on every record.

One fix changes behaviour, to AWS's. Kinesis `PutRecord` chose the first shard
whose hash range contains the key, closed or not, so after a split every record
went to the closed parent shard. It now goes to the open shard of that range.

`apply_moto_patches` applies them once per process; later calls do nothing.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any

_applied = False
_lock = threading.Lock()

#: Receipt handle -> the moto `Message` that was given it, for every handle issued
#: since the patches were applied. Entries go when their message is deleted. Those
#: of purged messages and of messages moved to a dead-letter queue stay, like the
#: model objects that moto itself keeps.
_receipts: dict[str, Any] = {}


def apply_moto_patches() -> None:
    """Patch moto's SQS and Kinesis models in place; safe to call more than once."""
    global _applied
    with _lock:
        if _applied:
            return
        _patch_sqs()
        _patch_kinesis()
        _applied = True


@functools.cache
def _attribute_field(name: str) -> str:
    """Return the `Queue` field of an attribute name; moto's conversion takes about 60 us."""
    from moto.core.utils import camelcase_to_underscores

    return camelcase_to_underscores(name)


class _QueueAttributes(Mapping[str, Any]):
    """The attributes of a moto SQS queue, each computed when it is read.

    It has the keys and values that moto's own `Queue.attributes` dictionary had,
    but reading `ContentBasedDeduplication` no longer counts the queue's messages.
    """

    __slots__ = ("_queue", "_names")

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        self._names = dict.fromkeys(names)

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(name)
        queue = self._queue
        value = getattr(queue, _attribute_field(name))
        if name == "RedrivePolicy" and queue.redrive_policy:
            value = json.dumps(queue.redrive_policy)
        if isinstance(value, bool):
            value = str(value).lower()
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class _VisibleMessages:
    """The visible, undelayed messages of a moto SQS queue, found while iterating.

    One clock reading serves a whole iteration, where moto read the clock twice per
    message. `len()` and truth tests still scan, as moto's list did.
    """

    __slots__ = ("_messages",)

    def __init__(self, messages: list[Any]) -> None:
        self._messages = messages

    def __iter__(self) -> Iterator[Any]:
        from moto.core.utils import unix_time_millis

        now = unix_time_millis()
        for message in self._messages:
            if now > message.visible_at and not now < message.delayed_until:
                yield message

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return any(True for _ in self)

    def __getitem__(self, index: int) -> Any:
        return list(self)[index]


def _patch_sqs() -> None:
    import string

    from moto.moto_api._internal import mock_random
    from moto.sqs import models

    queue_class = models.Queue
    message_class = models.Message
    backend_class = models.SQSBackend
    original_mark_received = message_class.mark_received
    original_delete = queue_class.delete_message
    original_get_attributes = backend_class.get_queue_attributes

    def attributes(self: Any) -> Mapping[str, Any]:
        return _QueueAttributes(self)

    def messages(self: Any) -> _VisibleMessages:
        return _VisibleMessages(self._messages)

    def mark_received(self: Any, visibility_timeout: int | None = None) -> None:
        original_mark_received(self, visibility_timeout)
        _receipts[self.receipt_handle] = self

    def delete_message(self: Any, receipt_handle: str) -> None:
        message = _receipts.get(receipt_handle)
        if receipt_handle in self.deleted_messages or message is None:
            original_delete(self, receipt_handle)
            return
        try:
            # Consumers delete the oldest messages, which sit near the front.
            position = self._messages.index(message)
        except ValueError:
            # Deleted meanwhile, or moved to the dead-letter queue: moto decides.
            original_delete(self, receipt_handle)
            return
        del self._messages[position]
        self.pending_messages.discard(message)
        handles = message.all_receipt_handles
        self.deleted_messages.update(handles)
        for handle in handles:
            _receipts.pop(handle, None)

    def get_queue_attributes(
        self: Any, queue_name: str, attribute_names: list[str]
    ) -> dict[str, Any]:
        # Callers of the backend get a plain dictionary, as before.
        return dict(original_get_attributes(self, queue_name, attribute_names))

    def generate_receipt_handle() -> str:
        # Same length and alphabet as moto's, from the same seeded generator.
        return "".join(mock_random.choices(string.ascii_lowercase, k=185))

    queue_class.attributes = property(attributes)  # type: ignore[assignment]
    queue_class.messages = property(messages)  # type: ignore[assignment]
    queue_class.delete_message = delete_message  # type: ignore[method-assign]
    message_class.mark_received = mark_received  # type: ignore[method-assign]
    backend_class.get_queue_attributes = get_queue_attributes  # type: ignore[method-assign]
    models.generate_receipt_handle = generate_receipt_handle


def _patch_kinesis() -> None:
    from moto.kinesis.models import Shard, Stream
    from moto.utilities.utils import md5_hash

    original_shard_for_key = Stream.get_shard_for_key

    def get_shard_for_key(self: Any, partition_key: str, explicit_hash_key: str) -> Any:
        shard = original_shard_for_key(self, partition_key, explicit_hash_key)
        if shard is None or shard.is_open:
            return shard
        if explicit_hash_key:
            key = int(explicit_hash_key)
        else:
            key = int(md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
        for candidate in self.shards.values():
            if candidate.is_open and candidate.starting_hash <= key <= candidate.ending_hash:
                return candidate
        return shard

    def get_min_sequence_number(self: Any) -> int:
        return next(iter(self.records), 0)

    def get_max_sequence_number(self: Any) -> int:
        return next(reversed(self.records), 0)

    Shard.get_min_sequence_number = get_min_sequence_number  # type: ignore[method-assign]
    Shard.get_max_sequence_number = get_max_sequence_number  # type: ignore[method-assign]
    Stream.get_shard_for_key = get_shard_for_key  # type: ignore[method-assign]
