"""The Lambda REST API: HTTP requests translated to simulator calls.

Requests are matched against the operations of the botocore Lambda model, so
every operation of the API gets a response. Implemented operations have a
handler here, and the others return an AWS-shaped error that names the operation.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import botocore
from quart import Blueprint, Response, request

from ..errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    LambdaError,
    ResourceNotFoundException,
    UnsupportedOperationException,
    ValidationException,
)
from ..function import Function, ImageConfig
from ..function_settings import validate_tags
from ..simulator import Simulator
from .responses import empty_response, error_response, json_body, json_response, required
from .shapes import alias_configuration, function_configuration

logger = logging.getLogger("lambdasim.server")

#: An operation's handler: gets the simulator and the path parameters.
Handler = Callable[[Simulator, dict[str, str]], Awaitable[Response]]


@attrs.frozen
class Operation:
    """One operation of the Lambda model and the request line that selects it."""

    name: str
    method: str
    pattern: re.Pattern[str]
    #: The first path segment, the API version date such as `2015-03-31`.
    prefix: str
    #: How many literal characters the URI template has; more specific routes win.
    specificity: int
    #: Query parameters the URI template fixes, such as `find=LayerVersion`.
    query: tuple[tuple[str, str], ...] = ()


def _load_operations() -> list[Operation]:
    path = f"{botocore.__path__[0]}/data/lambda/2015-03-31/service-2.json.gz"
    with gzip.open(path, "rt") as model_file:
        model = json.load(model_file)
    operations = []
    for name, operation in model["operations"].items():
        uri, _, query = operation["http"]["requestUri"].partition("?")
        fixed = tuple(
            (key, value)
            for key, _, value in (part.partition("=") for part in query.split("&") if part)
        )
        regex = ""
        for piece in re.split(r"(\{[^}]+\})", uri):
            if piece.startswith("{"):
                label = piece.strip("{}+")
                regex += f"(?P<{label}>.+)" if piece.endswith("+}") else f"(?P<{label}>[^/]+)"
            else:
                regex += re.escape(piece)
        literal = len(re.sub(r"\{[^}]+\}", "", uri))
        operations.append(
            Operation(
                name,
                operation["http"]["method"],
                re.compile(regex + "/?"),
                uri.split("/")[1],
                literal + 100 * len(fixed),
                fixed,
            )
        )
    operations.sort(key=lambda op: -op.specificity)
    return operations


OPERATIONS = _load_operations()


def match_operation(
    method: str, path: str, args: Mapping[str, str] | None = None
) -> tuple[Operation, dict[str, str]] | None:
    """Return the model operation for a request line and its path parameters."""
    for operation in OPERATIONS:
        if operation.method != method:
            continue
        if any((args or {}).get(key) != value for key, value in operation.query):
            continue
        match = operation.pattern.fullmatch(path)
        if match is not None:
            return operation, match.groupdict()
    return None


def _int_parameter(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{key[0].lower() + key[1:]}' "
            "failed to satisfy constraint: Member must be an integer"
        )
    return value


async def _deployment_package(simulator: Simulator, code: Any) -> bytes:
    if not isinstance(code, dict):
        raise InvalidParameterValueException("Please provide a source for function code.")
    if code.get("ImageUri"):
        raise InvalidParameterValueException(
            "Please don't provide ImageUri when the function's PackageType is Zip."
        )
    zip_file = code.get("ZipFile")
    if zip_file is not None:
        if code.get("S3Bucket") or code.get("S3Key"):
            raise InvalidParameterValueException(
                "Please do not provide other FunctionCode parameters when providing a ZipFile."
            )
        try:
            return base64.b64decode(zip_file, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise InvalidParameterValueException(
                "Could not unzip uploaded file. Please check your file, then try to upload again."
            ) from None
    bucket, key = code.get("S3Bucket"), code.get("S3Key")
    if bucket and key:
        return await simulator.fetch_s3_code(bucket, key, code.get("S3ObjectVersion"))
    raise InvalidParameterValueException("Please provide a source for function code.")


def _configuration_changes(body: dict[str, Any]) -> dict[str, Any]:
    """Return the `Function` fields that a create or update request sets."""
    changes: dict[str, Any] = {}
    if "Layers" in body:
        layers = body.get("Layers") or []
        if not isinstance(layers, list) or not all(isinstance(arn, str) for arn in layers):
            raise InvalidParameterValueException(f"Layers must be a list of ARNs, got {layers!r}")
        changes["layers"] = layers
    if "ImageConfig" in body:
        image_config = body.get("ImageConfig") or {}
        changes["image_config"] = ImageConfig(
            entry_point=image_config.get("EntryPoint"),
            command=image_config.get("Command"),
            working_directory=image_config.get("WorkingDirectory"),
        )
    simple = {
        "Runtime": "runtime",
        "Handler": "handler",
        "Role": "role",
        "Timeout": "timeout",
        "MemorySize": "memory_size",
    }
    for key, field in simple.items():
        if key in body and body[key] is not None:
            changes[field] = body[key]
    if "Description" in body:
        changes["description"] = body["Description"] or ""
    if "Environment" in body:
        environment = (body.get("Environment") or {}).get("Variables") or {}
        if not isinstance(environment, dict):
            raise InvalidParameterValueException(
                f"Environment.Variables must be a map of strings, got {environment!r}"
            )
        changes["environment"] = environment
    if "DeadLetterConfig" in body:
        changes["dead_letter_target"] = (body.get("DeadLetterConfig") or {}).get(
            "TargetArn"
        ) or None
    if body.get("EphemeralStorage") is not None:
        changes["ephemeral_storage"] = _int_parameter(body["EphemeralStorage"], "Size", 512)
    for field in ("timeout", "memory_size"):
        value = changes.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            member = "timeout" if field == "timeout" else "memorySize"
            raise ValidationException(
                f"1 validation error detected: Value '{value}' at '{member}' failed to "
                "satisfy constraint: Member must be an integer"
            )
    return changes


async def create_function(simulator: Simulator, params: dict[str, str]) -> Response:
    body = await json_body()
    name = required(body, "FunctionName", "functionName")
    required(body, "Role", "role")
    package_type = body.get("PackageType") or "Zip"
    changes = _configuration_changes(body)
    code_parameters = body.get("Code")
    if not isinstance(code_parameters, dict):
        raise InvalidParameterValueException("Please provide a source for function code.")
    if package_type == "Image":
        if not code_parameters.get("ImageUri"):
            raise InvalidParameterValueException(
                "ImageUri is a mandatory parameter for functions created with PackageType Image."
            )
        if code_parameters.get("ZipFile") or code_parameters.get("S3Key"):
            raise InvalidParameterValueException(
                "Please don't provide a zip file or S3 object when the PackageType is Image."
            )
        function = Function(
            name=name,
            runtime=changes.pop("runtime", None),
            handler=changes.pop("handler", None),
            package_type="Image",
            image_uri=code_parameters["ImageUri"],
            architectures=body.get("Architectures") or ["x86_64"],
            **changes,
        )
    else:
        if not body.get("Runtime") or not body.get("Handler"):
            raise InvalidParameterValueException(
                "Runtime and Handler are mandatory parameters for functions created with "
                "deployment packages."
            )
        code = await _deployment_package(simulator, code_parameters)
        function = Function(
            name=name,
            code=code,
            package_type=package_type,
            architectures=body.get("Architectures") or ["x86_64"],
            **changes,
        )
    tags = body.get("Tags") or {}
    validate_tags(tags)
    deployed = await simulator.create_function(function)
    if tags:
        simulator.settings.set_tags(deployed.name, tags)
    response = function_configuration(deployed, creating=True)
    if body.get("Publish"):
        published = simulator.publish_version(deployed.name)
        response["Version"] = published.version
        response["FunctionArn"] = published.qualified_arn
    return json_response(response, status=201)


async def update_function_code(simulator: Simulator, params: dict[str, str]) -> Response:
    body = await json_body()
    current = simulator.get_function(params["FunctionName"])
    if current.function.package_type == "Image":
        if not body.get("ImageUri"):
            raise InvalidParameterValueException(
                "Please provide ImageUri when updating a function with PackageType Image."
            )
        deployed = await simulator.update_function_code(
            params["FunctionName"],
            image_uri=body["ImageUri"],
            revision_id=body.get("RevisionId"),
            publish=bool(body.get("Publish")),
        )
    else:
        code = await _deployment_package(simulator, body)
        deployed = await simulator.update_function_code(
            params["FunctionName"],
            code,
            revision_id=body.get("RevisionId"),
            publish=bool(body.get("Publish")),
        )
    return json_response(function_configuration(deployed, updating=deployed.version == "$LATEST"))


async def update_function_configuration(simulator: Simulator, params: dict[str, str]) -> Response:
    body = await json_body()
    changes = _configuration_changes(body)
    deployed = await simulator.update_function_configuration(
        params["FunctionName"], revision_id=body.get("RevisionId"), **changes
    )
    return json_response(function_configuration(deployed, updating=True))


async def publish_version(simulator: Simulator, params: dict[str, str]) -> Response:
    body = await json_body()
    published = simulator.publish_version(
        params["FunctionName"],
        code_sha256=body.get("CodeSha256"),
        description=body.get("Description"),
        revision_id=body.get("RevisionId"),
    )
    return json_response(function_configuration(published), status=201)


def _page(items: list[Any], key: str) -> tuple[list[Any], str | None]:
    """Return one page of `items` for `Marker` and `MaxItems`, and the next marker."""
    max_items = request.args.get("MaxItems", "50")
    if not max_items.isdigit() or not 1 <= int(max_items) <= 10000:
        raise ValidationException(
            f"1 validation error detected: Value '{max_items}' at 'maxItems' failed to satisfy "
            "constraint: Member must have value between 1 and 10000, inclusive"
        )
    start = 0
    marker = request.args.get("Marker")
    if marker:
        try:
            start = int(base64.urlsafe_b64decode(marker.encode()).decode())
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidParameterValueException(f"Invalid Marker: {marker}") from None
    page = items[start : start + int(max_items)]
    end = start + len(page)
    next_marker = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return page, next_marker


async def list_versions_by_function(simulator: Simulator, params: dict[str, str]) -> Response:
    versions = simulator.list_versions(params["FunctionName"])
    page, next_marker = _page(versions, "Versions")
    body: dict[str, Any] = {"Versions": [function_configuration(v) for v in page]}
    if next_marker:
        body["NextMarker"] = next_marker
    return json_response(body)


def _weights(body: dict[str, Any]) -> dict[str, float] | None:
    routing = body.get("RoutingConfig")
    if routing is None:
        return None
    weights = routing.get("AdditionalVersionWeights") or {}
    if not isinstance(weights, dict):
        raise InvalidParameterValueException(
            f"RoutingConfig.AdditionalVersionWeights must be a map, got {weights!r}"
        )
    return weights


async def create_alias(simulator: Simulator, params: dict[str, str]) -> Response:
    body = await json_body()
    alias = simulator.catalog.create_alias(
        params["FunctionName"],
        required(body, "Name", "name"),
        required(body, "FunctionVersion", "functionVersion"),
        description=body.get("Description") or "",
        weights=_weights(body),
    )
    return json_response(alias_configuration(alias), status=201)


async def get_alias(simulator: Simulator, params: dict[str, str]) -> Response:
    alias = simulator.catalog.get_alias(params["FunctionName"], params["Name"])
    return json_response(alias_configuration(alias))


async def list_aliases(simulator: Simulator, params: dict[str, str]) -> Response:
    entry = simulator.catalog.entry(params["FunctionName"])
    version = request.args.get("FunctionVersion")
    aliases = [
        a
        for name, a in sorted(entry.aliases.items())
        if version is None or a.function_version == version
    ]
    page, next_marker = _page(aliases, "Aliases")
    body: dict[str, Any] = {"Aliases": [alias_configuration(a) for a in page]}
    if next_marker:
        body["NextMarker"] = next_marker
    return json_response(body)


async def update_alias(simulator: Simulator, params: dict[str, str]) -> Response:
    body = await json_body()
    alias = simulator.catalog.update_alias(
        params["FunctionName"],
        params["Name"],
        version=body.get("FunctionVersion"),
        description=body.get("Description"),
        weights=_weights(body),
        revision_id=body.get("RevisionId"),
    )
    return json_response(alias_configuration(alias))


async def delete_alias(simulator: Simulator, params: dict[str, str]) -> Response:
    simulator.catalog.delete_alias(params["FunctionName"], params["Name"])
    name = simulator.catalog.entry(params["FunctionName"]).latest.name
    simulator.settings.forget(name, params["Name"])
    return empty_response()


async def function_url_operation(simulator: Simulator, params: dict[str, str]) -> Response:
    # NOTE: function URLs are not implemented; AWS's not-found message still applies.
    try:
        simulator.get_function(params["FunctionName"], request.args.get("Qualifier"))
    except ResourceNotFoundException:
        raise ResourceNotFoundException("The resource you requested does not exist.") from None
    operation = match_operation(request.method, request.path, request.args)
    assert operation is not None
    raise UnsupportedOperationException(
        f"The {operation[0].name} operation is not supported by lambdasim yet."
    )


async def put_function_concurrency(simulator: Simulator, params: dict[str, str]) -> Response:
    body = await json_body()
    reserved = required(body, "ReservedConcurrentExecutions", "reservedConcurrentExecutions")
    value = simulator.put_function_concurrency(params["FunctionName"], reserved)
    return json_response({"ReservedConcurrentExecutions": value})


async def get_function_concurrency(simulator: Simulator, params: dict[str, str]) -> Response:
    reserved = simulator.get_function_concurrency(params["FunctionName"])
    return json_response({} if reserved is None else {"ReservedConcurrentExecutions": reserved})


async def delete_function_concurrency(simulator: Simulator, params: dict[str, str]) -> Response:
    simulator.delete_function_concurrency(params["FunctionName"])
    return empty_response()


async def get_account_settings(simulator: Simulator, params: dict[str, str]) -> Response:
    functions = simulator.list_functions()
    code_size = sum(f.code_size for f in functions)
    return json_response(
        {
            "AccountLimit": {
                "TotalCodeSize": 80530636800,
                "CodeSizeUnzipped": 262144000,
                "CodeSizeZipped": 52428800,
                "ConcurrentExecutions": simulator.pool.account_limit,
                "UnreservedConcurrentExecutions": simulator.unreserved_concurrency(),
            },
            "AccountUsage": {"TotalCodeSize": code_size, "FunctionCount": len(functions)},
        }
    )


async def get_function(simulator: Simulator, params: dict[str, str]) -> Response:
    deployed = simulator.get_function(params["FunctionName"], request.args.get("Qualifier"))
    location = f"{request.host_url.rstrip('/')}/_lambdasim/code/{deployed.name}"
    code: dict[str, Any] = {"RepositoryType": "S3", "Location": location}
    if deployed.function.package_type == "Image":
        code = {
            "RepositoryType": "ECR",
            "ImageUri": deployed.function.image_uri,
            "ResolvedImageUri": deployed.resolved_image_uri,
        }
    body: dict[str, Any] = {"Configuration": function_configuration(deployed), "Code": code}
    tags = simulator.settings.tags(deployed.name)
    if tags:
        body["Tags"] = tags
    reserved = simulator.get_function_concurrency(deployed.name)
    if reserved is not None:
        body["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
    return json_response(body)


async def get_function_configuration(simulator: Simulator, params: dict[str, str]) -> Response:
    deployed = simulator.get_function(params["FunctionName"], request.args.get("Qualifier"))
    return json_response(function_configuration(deployed))


async def list_functions(simulator: Simulator, params: dict[str, str]) -> Response:
    functions = simulator.list_functions()
    page, next_marker = _page(functions, "Functions")
    body: dict[str, Any] = {"Functions": [function_configuration(f) for f in page]}
    if next_marker:
        body["NextMarker"] = next_marker
    return json_response(body)


async def delete_function(simulator: Simulator, params: dict[str, str]) -> Response:
    await simulator.delete_function(params["FunctionName"], request.args.get("Qualifier"))
    return empty_response()


async def invoke(simulator: Simulator, params: dict[str, str]) -> Response:
    status, headers, body = await invoke_operation(
        simulator,
        params["FunctionName"],
        request.args.get("Qualifier"),
        request.headers,
        await request.get_data(),
    )
    response = Response(body, status=status)
    for key, value in headers:
        response.headers[key] = value
    return response


async def invoke_operation(
    simulator: Simulator,
    name: str,
    qualifier: str | None,
    headers: Mapping[str, str],
    payload: bytes,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Run the Invoke operation; return the status, headers and body to send.

    `headers` are the request's, looked up case-insensitively by their canonical
    names. Raises LambdaError for what AWS rejects.
    """
    invocation_type = headers.get("X-Amz-Invocation-Type") or "RequestResponse"
    if invocation_type not in ("RequestResponse", "Event", "DryRun"):
        raise ValidationException(
            f"1 validation error detected: Value '{invocation_type}' at 'invocationType' failed "
            "to satisfy constraint: Member must satisfy enum value set: "
            "[Event, RequestResponse, DryRun]"
        )
    if invocation_type == "DryRun":
        simulator.get_function(name, qualifier)
        return 204, [], b""
    if invocation_type == "Event":
        request_id = simulator.async_invoker.submit(name, payload, qualifier=qualifier)
        return 202, [("x-amzn-RequestId", request_id)], b""
    client_context = headers.get("X-Amz-Client-Context")
    if client_context:
        try:
            client_context = base64.b64decode(client_context, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidRequestContentException(
                "Client context must be a valid Base64-encoded JSON object."
            ) from None
    log_type = headers.get("X-Amz-Log-Type") or "None"
    if log_type not in ("None", "Tail"):
        raise ValidationException(
            f"1 validation error detected: Value '{log_type}' at 'logType' failed to satisfy "
            "constraint: Member must satisfy enum value set: [Tail, None]"
        )
    result = await simulator.invoke(
        name,
        payload,
        qualifier=qualifier,
        client_context=client_context,
        log_tail=log_type == "Tail",
    )
    response_headers = [
        ("Content-Type", "application/json"),
        ("X-Amz-Executed-Version", result.executed_version),
        ("x-amzn-RequestId", result.request_id),
    ]
    if result.function_error:
        response_headers.append(("X-Amz-Function-Error", result.function_error))
    if result.log_result is not None:
        response_headers.append(("X-Amz-Log-Result", result.log_result))
    return result.status_code, response_headers, result.payload


HANDLERS: dict[str, Handler] = {
    "CreateFunction": create_function,
    "GetFunction": get_function,
    "GetFunctionConfiguration": get_function_configuration,
    "ListFunctions": list_functions,
    "DeleteFunction": delete_function,
    "Invoke": invoke,
    "UpdateFunctionCode": update_function_code,
    "UpdateFunctionConfiguration": update_function_configuration,
    "PutFunctionConcurrency": put_function_concurrency,
    "GetFunctionConcurrency": get_function_concurrency,
    "DeleteFunctionConcurrency": delete_function_concurrency,
    "GetAccountSettings": get_account_settings,
    "PublishVersion": publish_version,
    "ListVersionsByFunction": list_versions_by_function,
    "CreateAlias": create_alias,
    "GetAlias": get_alias,
    "ListAliases": list_aliases,
    "UpdateAlias": update_alias,
    "DeleteAlias": delete_alias,
    "CreateFunctionUrlConfig": function_url_operation,
    "GetFunctionUrlConfig": function_url_operation,
    "UpdateFunctionUrlConfig": function_url_operation,
    "DeleteFunctionUrlConfig": function_url_operation,
    "ListFunctionUrlConfigs": function_url_operation,
}


def create_lambda_blueprint(simulator: Simulator) -> Blueprint:
    """Return the blueprint that serves the Lambda API for `simulator`."""
    from . import event_source_api, layer_api, settings_api

    handlers = {
        **HANDLERS,
        **event_source_api.HANDLERS,
        **layer_api.HANDLERS,
        **settings_api.HANDLERS,
    }
    blueprint = Blueprint("lambda_api", __name__)

    @blueprint.errorhandler(LambdaError)
    async def lambda_error(error: LambdaError) -> Response:
        return error_response(error)

    async def dispatch(path: str) -> Response:
        # Read the whole body before any handler can respond early. Hypercorn 0.18
        # stops serving a keep-alive connection whose request body arrives after
        # the response was sent (boto3 sends the body in its own packet).
        await request.get_data()
        found = match_operation(request.method, request.path, request.args)
        if found is None:
            raise ResourceNotFoundException(
                f"No Lambda API operation matches {request.method} {request.path}"
            )
        operation, params = found
        handler = handlers.get(operation.name)
        if handler is None:
            raise UnsupportedOperationException(
                f"The {operation.name} operation is not supported by lambdasim yet."
            )
        return await handler(simulator, params)

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]
    for prefix in sorted({op.prefix for op in OPERATIONS}):
        blueprint.add_url_rule(
            f"/{prefix}/<path:path>", f"dispatch_{prefix}", dispatch, methods=methods
        )
    return blueprint
