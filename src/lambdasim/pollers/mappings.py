"""Event source mappings: their records, states and the pollers that run them.

Theory of operation
-------------------

A mapping changes state the way AWS shows it: `Creating`, `Enabling`,
`Updating`, `Disabling` and `Deleting` while a change is under way, and then
`Enabled` or `Disabled`. The API calls (`create`, `update`, `delete`) validate
and record the wanted configuration at once and return the mapping in its
transitional state. A reconcile task in the `EventSourceMappings` nursery then
makes the pollers match. It starts a `Poller` with `nursery.start` when the
mapping should run and has none, and stops it when the mapping is disabled or
deleted. It restarts a stream poller when the settings that divide shards into
lanes changed.
Reconciles of one mapping run one at a time under the mapping's lock and always
act on the newest configuration, so quick successive calls converge.

An update changes the settings object that the running poller reads before each
batch, so SQS batch sizes, windows, filters and concurrency change without a
restart and without losing messages. Stream checkpoints live in the mapping, so a
restarted or re-enabled stream poller resumes after the last processed record.
"""

from __future__ import annotations

import logging
import time
import uuid as uuid_module
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ..arns import function_arn
from ..errors import (
    InvalidParameterValueException,
    ResourceConflictException,
    ResourceInUseException,
    ResourceNotFoundException,
    ValidationException,
)
from .permissions import check_read_access
from .poller import Poller
from .settings import EventSource, MappingSettings, SourceKind

if TYPE_CHECKING:
    from ..simulator import Simulator

logger = logging.getLogger("lambdasim.poller")

#: `StateTransitionReason` of user changes, which AWS spells differently per source.
_USER_REASON = {
    SourceKind.SQS: "USER_INITIATED",
    SourceKind.KINESIS: "User action",
    SourceKind.DYNAMODB_STREAMS: "User action",
}

#: Request members of CreateEventSourceMapping that lambdasim implements.
CREATE_MEMBERS = frozenset(
    {
        "FunctionName",
        "EventSourceArn",
        "Enabled",
        "BatchSize",
        "FilterCriteria",
        "MaximumBatchingWindowInSeconds",
        "ParallelizationFactor",
        "StartingPosition",
        "StartingPositionTimestamp",
        "DestinationConfig",
        "MaximumRecordAgeInSeconds",
        "BisectBatchOnFunctionError",
        "MaximumRetryAttempts",
        "TumblingWindowInSeconds",
        "FunctionResponseTypes",
        "ScalingConfig",
        "Tags",
    }
)
UPDATE_MEMBERS = CREATE_MEMBERS - {
    "EventSourceArn",
    "StartingPosition",
    "StartingPositionTimestamp",
    "Tags",
}
#: Stream settings that decide how a poller divides shards into lanes; a change restarts it.
_RESTART_FIELDS = ("parallelization_factor", "tumbling_window")


def _check_members(request: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key, value in request.items():
        if key not in allowed and value is not None:
            raise InvalidParameterValueException(
                f"{key} is not supported by lambdasim; its event source mappings read SQS "
                "queues, Kinesis streams and DynamoDB streams."
            )


@attrs.define(eq=False)
class EventSourceMapping:
    """One event source mapping and its processing state."""

    uuid: str
    arn: str
    source: EventSource
    #: The function's ARN, qualified when the mapping names a version or alias.
    function_arn: str
    settings: MappingSettings
    #: Position in creation order, from 1; list pages continue after a number.
    number: int = 0
    state: str = "Creating"
    #: Seconds since the epoch of the last create or update.
    last_modified: float = attrs.field(factory=time.time)
    #: Streams report "OK" or "PROBLEM: ..." after each batch.
    last_processing_result: str = "No records processed"
    tags: dict[str, str] = attrs.field(factory=dict)
    #: Stream shard id -> sequence number of the last record processed, as an int.
    checkpoints: dict[str, int] = attrs.field(factory=dict)
    _lock: trio.Lock = attrs.field(factory=trio.Lock, init=False)
    _poller: Poller | None = attrs.field(default=None, init=False)
    _deleting: bool = attrs.field(default=False, init=False)
    _restart: bool = attrs.field(default=False, init=False)
    _settled: trio.Event = attrs.field(factory=trio.Event, init=False)

    @property
    def poller(self) -> Poller | None:
        """The running poller, or None while the mapping is not enabled."""
        return self._poller

    @property
    def state_transition_reason(self) -> str:
        return _USER_REASON[self.source.kind]

    async def wait_settled(self) -> None:
        """Wait until the latest change has been applied (`Enabled` or `Disabled`)."""
        await self._settled.wait()

    def describe(self) -> dict[str, Any]:
        """Return the mapping as the `EventSourceMappingConfiguration` shape."""
        settings = self.settings
        body: dict[str, Any] = {
            "UUID": self.uuid,
            "BatchSize": settings.batch_size,
            "MaximumBatchingWindowInSeconds": settings.maximum_batching_window,
            "EventSourceArn": self.source.arn,
            "FunctionArn": self.function_arn,
            "LastModified": self.last_modified,
            "State": self.state,
            "StateTransitionReason": self.state_transition_reason,
            "FunctionResponseTypes": list(settings.function_response_types),
            "EventSourceMappingArn": self.arn,
        }
        if settings.filter_criteria is not None:
            body["FilterCriteria"] = settings.filter_criteria.to_request()
        if self.source.kind is SourceKind.SQS:
            if settings.maximum_concurrency is not None:
                body["ScalingConfig"] = {"MaximumConcurrency": settings.maximum_concurrency}
            return body
        on_failure = (
            {"Destination": settings.on_failure_destination}
            if settings.on_failure_destination
            else {}
        )
        body.update(
            {
                "StartingPosition": settings.starting_position,
                "ParallelizationFactor": settings.parallelization_factor,
                "LastProcessingResult": self.last_processing_result,
                "DestinationConfig": {"OnFailure": on_failure},
                "MaximumRecordAgeInSeconds": settings.maximum_record_age,
                "BisectBatchOnFunctionError": settings.bisect_batch_on_function_error,
                "MaximumRetryAttempts": settings.maximum_retry_attempts,
                "TumblingWindowInSeconds": settings.tumbling_window,
            }
        )
        if settings.starting_position_timestamp is not None:
            body["StartingPositionTimestamp"] = settings.starting_position_timestamp
        return body

    def _mark_changing(self, state: str) -> None:
        self.state = state
        self._settled = trio.Event()


def _make_poller(mapping: EventSourceMapping, simulator: Simulator) -> Poller:
    if mapping.source.kind is SourceKind.SQS:
        from .sqs import SqsPoller

        return SqsPoller(mapping, simulator)
    from .streams import StreamPoller

    return StreamPoller(mapping, simulator)


def _check_source(simulator: Simulator, source: EventSource, role: str) -> None:
    """Check that `source` exists and `role` may read it. Blocking: runs in a worker thread."""
    from ..moto_patches import apply_moto_patches

    apply_moto_patches()
    if source.kind is SourceKind.SQS:
        from .sqs import queue_exists

        if not queue_exists(source):
            raise InvalidParameterValueException(
                "Error occurred while ReceiveMessage. SQS Error Code: "
                "AWS.SimpleQueueService.NonExistentQueue. SQS Error Message: The specified "
                "queue does not exist or you do not have access to it."
            )
    else:
        from .streams import stream_exists

        if not stream_exists(source):
            raise InvalidParameterValueException(f"Stream not found: {source.arn}")
    check_read_access(simulator.config.account_id, role, source)


@attrs.define(eq=False)
class EventSourceMappings:
    """The event source mappings of one simulator and their pollers.

    Start it with `nursery.start(mappings.run)`; every poller runs in its nursery.
    """

    simulator: Simulator
    _mappings: dict[str, EventSourceMapping] = attrs.field(factory=dict, init=False)
    _created: int = attrs.field(default=0, init=False)
    _nursery: trio.Nursery | None = attrs.field(default=None, init=False)

    async def run(
        self, *, task_status: trio.TaskStatus[EventSourceMappings] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the pollers until cancelled. Use with `nursery.start`."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started(self)
                await trio.sleep_forever()
        finally:
            self._nursery = None

    # API ---------------------------------------------------------------------------

    def get(self, uuid: str) -> EventSourceMapping:
        """Return the mapping with `uuid`; raise ResourceNotFoundException if there is none."""
        mapping = self._mappings.get(uuid)
        if mapping is None:
            raise ResourceNotFoundException("The resource you requested does not exist.")
        return mapping

    def list(
        self, *, function_name: str | None = None, event_source_arn: str | None = None
    ) -> list[EventSourceMapping]:
        """Return the mappings in creation order, optionally of one function or source.

        A `function_name` without a qualifier selects every mapping of that
        function; with one, only the mappings of that version or alias.
        """
        mappings = list(self._mappings.values())
        if event_source_arn is not None:
            mappings = [m for m in mappings if m.source.arn == event_source_arn]
        if function_name is not None:
            selected = self._function_arn(function_name)
            unqualified = selected.count(":") == 6
            mappings = [
                m
                for m in mappings
                if m.function_arn == selected
                or (unqualified and m.function_arn.startswith(selected + ":"))
            ]
        return mappings

    async def create(self, **request: Any) -> EventSourceMapping:
        """Create a mapping from the members of a CreateEventSourceMapping request.

        The members are those of boto3's `create_event_source_mapping`. The
        mapping is returned in state `Creating` (its poller starts just after) and
        reaches `Enabled`, or `Disabled` with `Enabled=False`.

        Raises ResourceNotFoundException for an unknown function and
        ValidationException for values outside the API model. Raises
        InvalidParameterValueException for an unknown or missing source, for
        invalid settings, and when the execution role may not read the source.
        Raises ResourceConflictException for a second mapping of the same
        function and source.
        """
        _check_members(request, CREATE_MEMBERS)
        name = request.get("FunctionName")
        if name is None:
            raise ValidationException(
                "1 validation error detected: Value null at 'functionName' failed to satisfy "
                "constraint: Member must not be null"
            )
        resolved = self.simulator.resolve(name)
        target_arn = resolved.invoked_arn
        if request.get("EventSourceArn") is None:
            raise InvalidParameterValueException(
                "Unrecognized event source, must specify an EventSourceArn."
            )
        source = EventSource.parse(request["EventSourceArn"])
        settings = MappingSettings.from_request(source.kind, request)
        self._check_duplicate(source, target_arn)
        role = resolved.deployed.function.role
        await self.simulator.services.run_sync(_check_source, self.simulator, source, role)
        # Another create of the same pair may have finished during the check.
        self._check_duplicate(source, target_arn)

        mapping_uuid = str(uuid_module.uuid4())
        self._created += 1
        config = self.simulator.config
        tags = request.get("Tags") or {}
        mapping = EventSourceMapping(
            uuid=mapping_uuid,
            arn=f"arn:aws:lambda:{config.region}:{config.account_id}:event-source-mapping:{mapping_uuid}",
            source=source,
            function_arn=target_arn,
            settings=settings,
            number=self._created,
            tags=dict(tags) if isinstance(tags, dict) else {},
        )
        self._mappings[mapping_uuid] = mapping
        logger.info(
            "created event source mapping %s: %s -> %s", mapping_uuid, source.arn, target_arn
        )
        self._reconcile_soon(mapping)
        return mapping

    async def update(self, uuid: str, **request: Any) -> EventSourceMapping:
        """Change a mapping with the members of an UpdateEventSourceMapping request.

        Returns the mapping in state `Updating`, `Enabling` or `Disabling`; the
        change is applied just after, without losing messages or records.
        """
        mapping = self.get(uuid)
        _check_members(request, UPDATE_MEMBERS)
        if mapping._deleting:
            raise ResourceInUseException(
                f"Cannot update the event source mapping {uuid} because it is being deleted."
            )
        target_arn = mapping.function_arn
        if request.get("FunctionName") is not None:
            target_arn = self.simulator.resolve(request["FunctionName"]).invoked_arn
        settings = MappingSettings.from_request(mapping.source.kind, request, mapping.settings)
        if target_arn != mapping.function_arn:
            self._check_duplicate(mapping.source, target_arn)
            role = self.simulator.resolve(target_arn).deployed.function.role
            await self.simulator.services.run_sync(
                _check_source, self.simulator, mapping.source, role
            )

        was_enabled = mapping.settings.enabled
        if mapping.source.kind.is_stream and any(
            getattr(settings, field) != getattr(mapping.settings, field)
            for field in _RESTART_FIELDS
        ):
            mapping._restart = True
        mapping.settings = settings
        mapping.function_arn = target_arn
        mapping.last_modified = time.time()
        if settings.enabled and not was_enabled:
            mapping._mark_changing("Enabling")
        elif was_enabled and not settings.enabled:
            mapping._mark_changing("Disabling")
        else:
            mapping._mark_changing("Updating")
        logger.info("updating event source mapping %s", uuid)
        self._reconcile_soon(mapping)
        return mapping

    async def delete(self, uuid: str) -> EventSourceMapping:
        """Delete a mapping: stop its poller and forget it. Returns it in state `Deleting`."""
        mapping = self.get(uuid)
        if not mapping._deleting:
            mapping._deleting = True
            mapping._mark_changing("Deleting")
            logger.info("deleting event source mapping %s", uuid)
            self._reconcile_soon(mapping)
        return mapping

    # Reconciling ---------------------------------------------------------------------

    def _function_arn(self, name: str) -> str:
        from ..arns import parse_function_ref

        config = self.simulator.config
        ref = parse_function_ref(name, region=config.region, account_id=config.account_id)
        return function_arn(config.region, config.account_id, ref.name, ref.qualifier)

    def _check_duplicate(self, source: EventSource, target_arn: str) -> None:
        for other in self._mappings.values():
            if other.source.arn != source.arn or other.function_arn != target_arn:
                continue
            function = target_arn.split(":")[6]
            if source.kind is SourceKind.SQS:
                raise ResourceConflictException(
                    f'An event source mapping with SQS arn (" {source.arn} ") and function '
                    f'(" {function} ") already exists. Please update or delete the existing '
                    f"mapping with UUID {other.uuid}"
                )
            raise ResourceConflictException(
                f'The event source arn (" {source.arn} ") and function (" {function} ") '
                "provided mapping already exists. Please update or delete the existing "
                f"mapping with UUID {other.uuid}"
            )

    def _reconcile_soon(self, mapping: EventSourceMapping) -> None:
        if self._nursery is None:
            raise RuntimeError(
                "event source mappings are not running; start them with "
                "nursery.start(mappings.run) (the simulator does)"
            )
        self._nursery.start_soon(self._reconcile, mapping)

    async def _reconcile(self, mapping: EventSourceMapping) -> None:
        async with mapping._lock:
            assert self._nursery is not None
            should_run = mapping.settings.enabled and not mapping._deleting
            poller = mapping._poller
            if poller is not None and (not should_run or mapping._restart):
                await poller.stop()
                mapping._poller = None
                logger.info("stopped the poller of event source mapping %s", mapping.uuid)
            mapping._restart = False
            if should_run and mapping._poller is None:
                poller = _make_poller(mapping, self.simulator)
                await self._nursery.start(poller.run)
                mapping._poller = poller
                logger.info("started the poller of event source mapping %s", mapping.uuid)
            if mapping._deleting:
                self._mappings.pop(mapping.uuid, None)
                logger.info("deleted event source mapping %s", mapping.uuid)
            else:
                mapping.state = "Enabled" if mapping._poller is not None else "Disabled"
            mapping._settled.set()
