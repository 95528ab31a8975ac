"""Lambda API operations for event source mappings."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from quart import Response, request

from ..errors import InvalidParameterValueException, ValidationException
from ..simulator import Simulator
from .lambda_api import Handler
from .responses import json_body, json_response

#: Mappings per ListEventSourceMappings page when the request sets no MaxItems.
DEFAULT_MAX_ITEMS = 100


async def create_event_source_mapping(simulator: Simulator, params: dict[str, str]) -> Response:
    body = await json_body()
    mapping = await simulator.event_sources.create(**body)
    return json_response(mapping.describe(), status=202)


async def get_event_source_mapping(simulator: Simulator, params: dict[str, str]) -> Response:
    mapping = simulator.event_sources.get(params["UUID"])
    return json_response(mapping.describe())


async def update_event_source_mapping(simulator: Simulator, params: dict[str, str]) -> Response:
    body = await json_body()
    mapping = await simulator.event_sources.update(params["UUID"], **body)
    return json_response(mapping.describe(), status=202)


async def delete_event_source_mapping(simulator: Simulator, params: dict[str, str]) -> Response:
    mapping = await simulator.event_sources.delete(params["UUID"])
    return json_response(mapping.describe(), status=202)


def _max_items() -> int:
    raw = request.args.get("MaxItems", str(DEFAULT_MAX_ITEMS))
    if not raw.isdigit() or not 1 <= int(raw) <= 10000:
        raise ValidationException(
            f"1 validation error detected: Value '{raw}' at 'maxItems' failed to satisfy "
            "constraint: Member must have value between 1 and 10000, inclusive"
        )
    return int(raw)


def _after_marker() -> int:
    """Return the creation number after which the requested page starts."""
    marker = request.args.get("Marker")
    if not marker:
        return 0
    try:
        return int(base64.urlsafe_b64decode(marker.encode()).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidParameterValueException(f"Invalid Marker: {marker}") from None


async def list_event_source_mappings(simulator: Simulator, params: dict[str, str]) -> Response:
    max_items = _max_items()
    mappings = simulator.event_sources.list(
        function_name=request.args.get("FunctionName"),
        event_source_arn=request.args.get("EventSourceArn"),
    )
    after = _after_marker()
    remaining = [m for m in mappings if m.number > after]
    page = remaining[:max_items]
    body: dict[str, Any] = {"EventSourceMappings": [m.describe() for m in page]}
    if len(page) < len(remaining):
        body["NextMarker"] = base64.urlsafe_b64encode(str(page[-1].number).encode()).decode()
    return json_response(body)


#: Handlers by operation name of the botocore Lambda model.
HANDLERS: dict[str, Handler] = {
    "CreateEventSourceMapping": create_event_source_mapping,
    "GetEventSourceMapping": get_event_source_mapping,
    "ListEventSourceMappings": list_event_source_mappings,
    "UpdateEventSourceMapping": update_event_source_mapping,
    "DeleteEventSourceMapping": delete_event_source_mapping,
}
