"""Lambda API operations for tags, resource policies and asynchronous invocation settings.

Each handler reads the request's parameters, calls `simulator.settings` and
renders the result in the model's shapes. Validation and AWS's error messages
live in `lambdasim.function_settings`.
"""

from __future__ import annotations

import json
from typing import Any

from quart import Response, request

from ..errors import InvalidParameterValueException, ValidationException
from ..function_settings import EventInvokeConfig
from ..simulator import Simulator
from .lambda_api import Handler
from .responses import empty_response, json_body, json_response, required

#: Range of ListFunctionEventInvokeConfigs' `MaxItems`, from the model.
_MAX_ITEMS_RANGE = (1, 50)


def _compact_json(value: Any) -> str:
    # AWS returns policy documents as JSON strings without spaces.
    return json.dumps(value, separators=(",", ":"))


def event_invoke_config_shape(config: EventInvokeConfig) -> dict[str, Any]:
    """Return a configuration in the `FunctionEventInvokeConfig` shape.

    AWS leaves out the limits that the configuration does not set and always
    shows both destinations, `{}` when unset.
    """
    shape: dict[str, Any] = {
        "LastModified": config.last_modified,
        "FunctionArn": config.function_arn,
    }
    if config.maximum_retry_attempts is not None:
        shape["MaximumRetryAttempts"] = config.maximum_retry_attempts
    if config.maximum_event_age is not None:
        shape["MaximumEventAgeInSeconds"] = config.maximum_event_age
    shape["DestinationConfig"] = {
        "OnSuccess": {"Destination": config.on_success} if config.on_success else {},
        "OnFailure": {"Destination": config.on_failure} if config.on_failure else {},
    }
    return shape


# Tags ----------------------------------------------------------------------------------


async def tag_resource(simulator: Simulator, params: dict[str, str]) -> Response:
    body = await json_body()
    simulator.settings.tag_resource(simulator, params["Resource"], body.get("Tags"))
    return empty_response()


async def untag_resource(simulator: Simulator, params: dict[str, str]) -> Response:
    keys = request.args.getlist("tagKeys")
    simulator.settings.untag_resource(simulator, params["Resource"], keys)
    return empty_response()


async def list_tags(simulator: Simulator, params: dict[str, str]) -> Response:
    tags = simulator.settings.list_tags(simulator, params["Resource"])
    return json_response({"Tags": tags})


# Resource policies -----------------------------------------------------------------------


async def add_permission(simulator: Simulator, params: dict[str, str]) -> Response:
    body = await json_body()
    statement = simulator.settings.add_permission(
        simulator,
        params["FunctionName"],
        statement_id=required(body, "StatementId", "statementId"),
        action=required(body, "Action", "action"),
        principal=required(body, "Principal", "principal"),
        qualifier=request.args.get("Qualifier"),
        source_arn=body.get("SourceArn"),
        source_account=body.get("SourceAccount"),
        principal_org_id=body.get("PrincipalOrgID"),
        function_url_auth_type=body.get("FunctionUrlAuthType"),
        event_source_token=body.get("EventSourceToken"),
        invoked_via_function_url=body.get("InvokedViaFunctionUrl"),
        revision_id=body.get("RevisionId"),
    )
    return json_response({"Statement": _compact_json(statement)}, status=201)


async def remove_permission(simulator: Simulator, params: dict[str, str]) -> Response:
    simulator.settings.remove_permission(
        simulator,
        params["FunctionName"],
        params["StatementId"],
        qualifier=request.args.get("Qualifier"),
        revision_id=request.args.get("RevisionId"),
    )
    return empty_response()


async def get_policy(simulator: Simulator, params: dict[str, str]) -> Response:
    policy = simulator.settings.get_policy(
        simulator, params["FunctionName"], request.args.get("Qualifier")
    )
    return json_response(
        {"Policy": _compact_json(policy.document()), "RevisionId": policy.revision_id}
    )


# Asynchronous invocation ------------------------------------------------------------------


async def _event_invoke_config_fields() -> dict[str, Any]:
    """Return the settings a Put or Update of an event invoke configuration sends."""
    body = await json_body()
    return {
        "maximum_retry_attempts": body.get("MaximumRetryAttempts"),
        "maximum_event_age": body.get("MaximumEventAgeInSeconds"),
        "destination_config": body.get("DestinationConfig"),
    }


async def put_function_event_invoke_config(
    simulator: Simulator, params: dict[str, str]
) -> Response:
    config = simulator.settings.put_event_invoke_config(
        simulator,
        params["FunctionName"],
        request.args.get("Qualifier"),
        **await _event_invoke_config_fields(),
    )
    return json_response(event_invoke_config_shape(config))


async def update_function_event_invoke_config(
    simulator: Simulator, params: dict[str, str]
) -> Response:
    config = simulator.settings.update_event_invoke_config(
        simulator,
        params["FunctionName"],
        request.args.get("Qualifier"),
        **await _event_invoke_config_fields(),
    )
    return json_response(event_invoke_config_shape(config))


async def get_function_event_invoke_config(
    simulator: Simulator, params: dict[str, str]
) -> Response:
    config = simulator.settings.get_event_invoke_config(
        simulator, params["FunctionName"], request.args.get("Qualifier")
    )
    return json_response(event_invoke_config_shape(config))


async def delete_function_event_invoke_config(
    simulator: Simulator, params: dict[str, str]
) -> Response:
    simulator.settings.delete_event_invoke_config(
        simulator, params["FunctionName"], request.args.get("Qualifier")
    )
    return empty_response()


def _page_bounds(marker: str | None, max_items: str | None) -> tuple[int, int]:
    """Return the start index and page size that `Marker` and `MaxItems` select."""
    size = _MAX_ITEMS_RANGE[1]
    if max_items is not None:
        low, high = _MAX_ITEMS_RANGE
        if not max_items.isdigit() or not low <= int(max_items) <= high:
            raise ValidationException(
                f"1 validation error detected: Value '{max_items}' at 'maxItems' failed to "
                f"satisfy constraint: Member must have value between {low} and {high}, inclusive"
            )
        size = int(max_items)
    start = 0
    if marker:
        if not marker.isdigit():
            raise InvalidParameterValueException(f"Invalid Marker: {marker}")
        start = int(marker)
    return start, size


async def list_function_event_invoke_configs(
    simulator: Simulator, params: dict[str, str]
) -> Response:
    configs = simulator.settings.list_event_invoke_configs(simulator, params["FunctionName"])
    start, size = _page_bounds(request.args.get("Marker"), request.args.get("MaxItems"))
    page = configs[start : start + size]
    body: dict[str, Any] = {
        "FunctionEventInvokeConfigs": [event_invoke_config_shape(c) for c in page]
    }
    if start + size < len(configs):
        body["NextMarker"] = str(start + size)
    return json_response(body)


#: Handlers by operation name of the botocore Lambda model.
HANDLERS: dict[str, Handler] = {
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTags": list_tags,
    "AddPermission": add_permission,
    "RemovePermission": remove_permission,
    "GetPolicy": get_policy,
    "PutFunctionEventInvokeConfig": put_function_event_invoke_config,
    "UpdateFunctionEventInvokeConfig": update_function_event_invoke_config,
    "GetFunctionEventInvokeConfig": get_function_event_invoke_config,
    "DeleteFunctionEventInvokeConfig": delete_function_event_invoke_config,
    "ListFunctionEventInvokeConfigs": list_function_event_invoke_configs,
}
