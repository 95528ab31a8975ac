"""Lambda API operations for layers, and the route that serves layer zips.

Each handler reads the request's parameters, calls `simulator.layers` and renders
the result in the model's shapes. Validation and AWS's error messages live in
`lambdasim.layers`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from quart import Blueprint, Response, request

from ..errors import InvalidParameterValueException, ValidationException
from ..layers import LayerVersion
from ..simulator import Simulator
from .lambda_api import Handler
from .responses import empty_response, json_body, json_response, required

_UNZIP_FAILED = "Could not unzip uploaded file. Please check your file, then try to upload again."


def content_location(layer: LayerVersion) -> str:
    """Return the URL on this endpoint that serves the zip of `layer`."""
    return f"{request.host_url.rstrip('/')}/_lambdasim/layers/{layer.name}/{layer.version}/content"


def _compatibility(layer: LayerVersion, shape: dict[str, Any]) -> None:
    # AWS leaves out the lists and the license that the publish request left out.
    if layer.compatible_architectures is not None:
        shape["CompatibleArchitectures"] = list(layer.compatible_architectures)
    if layer.compatible_runtimes is not None:
        shape["CompatibleRuntimes"] = list(layer.compatible_runtimes)
    if layer.license_info is not None:
        shape["LicenseInfo"] = layer.license_info


def layer_version_shape(layer: LayerVersion) -> dict[str, Any]:
    """Return `layer` in the shape of `GetLayerVersionResponse`."""
    shape: dict[str, Any] = {
        "Content": {
            "Location": content_location(layer),
            "CodeSha256": layer.code_sha256,
            "CodeSize": layer.code_size,
        },
        "LayerArn": layer.layer_arn,
        "LayerVersionArn": layer.arn,
        "Description": layer.description,
        "CreatedDate": layer.created_date,
        "Version": layer.version,
    }
    _compatibility(layer, shape)
    return shape


def layer_versions_list_item(layer: LayerVersion) -> dict[str, Any]:
    """Return `layer` in the shape of `LayerVersionsListItem`."""
    shape: dict[str, Any] = {
        "LayerVersionArn": layer.arn,
        "Version": layer.version,
        "Description": layer.description,
        "CreatedDate": layer.created_date,
    }
    _compatibility(layer, shape)
    return shape


def _version_number(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at 'versionNumber' failed to satisfy "
            "constraint: Member must be a number"
        ) from None


def _max_items() -> int | None:
    value = request.args.get("MaxItems")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at 'maxItems' failed to satisfy "
            "constraint: Member must be a number"
        ) from None


async def _layer_zip(simulator: Simulator, content: Any) -> bytes:
    """Return the zip that `Content` names: inline base64, or an object of the embedded S3."""
    if not isinstance(content, dict):
        raise InvalidParameterValueException(f"Content must be an object, got {content!r}")
    zip_file = content.get("ZipFile")
    if zip_file is not None:
        if content.get("S3Bucket") or content.get("S3Key"):
            raise InvalidParameterValueException(
                "Please do not provide other LayerVersionContentInput parameters when providing "
                "a ZipFile."
            )
        try:
            return base64.b64decode(zip_file, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise InvalidParameterValueException(_UNZIP_FAILED) from None
    bucket, key = content.get("S3Bucket"), content.get("S3Key")
    if bucket and key:
        return await simulator.fetch_s3_code(bucket, key, content.get("S3ObjectVersion"))
    # NOTE: AWS's message for a Content without ZipFile or S3Bucket and S3Key is not known.
    raise InvalidParameterValueException(
        "Please provide a source for the layer content: ZipFile, or S3Bucket and S3Key."
    )


# Versions --------------------------------------------------------------------------------


async def publish_layer_version(simulator: Simulator, params: dict[str, str]) -> Response:
    body = await json_body()
    content = required(body, "Content", "content")
    zip_file = await _layer_zip(simulator, content)
    layer = await simulator.layers.publish_layer_version(
        params["LayerName"],
        zip_file,
        description=body.get("Description"),
        compatible_runtimes=body.get("CompatibleRuntimes"),
        compatible_architectures=body.get("CompatibleArchitectures"),
        license_info=body.get("LicenseInfo"),
    )
    return json_response(layer_version_shape(layer), status=201)


async def get_layer_version(simulator: Simulator, params: dict[str, str]) -> Response:
    layer = simulator.layers.get_layer_version(
        params["LayerName"], _version_number(params["VersionNumber"])
    )
    return json_response(layer_version_shape(layer))


async def get_layer_version_by_arn(simulator: Simulator, params: dict[str, str]) -> Response:
    arn = request.args.get("Arn")
    if arn is None:
        raise ValidationException(
            "1 validation error detected: Value null at 'arn' failed to satisfy constraint: "
            "Member must not be null"
        )
    return json_response(layer_version_shape(simulator.layers.get_layer_version_by_arn(arn)))


async def list_layers(simulator: Simulator, params: dict[str, str]) -> Response:
    page = simulator.layers.list_layers(
        compatible_runtime=request.args.get("CompatibleRuntime"),
        compatible_architecture=request.args.get("CompatibleArchitecture"),
        marker=request.args.get("Marker"),
        max_items=_max_items(),
    )
    body: dict[str, Any] = {
        "Layers": [
            {
                "LayerName": layer.name,
                "LayerArn": layer.layer_arn,
                "LatestMatchingVersion": layer_versions_list_item(layer),
            }
            for layer in page.items
        ]
    }
    if page.next_marker:
        body["NextMarker"] = page.next_marker
    return json_response(body)


async def list_layer_versions(simulator: Simulator, params: dict[str, str]) -> Response:
    page = simulator.layers.list_layer_versions(
        params["LayerName"],
        compatible_runtime=request.args.get("CompatibleRuntime"),
        compatible_architecture=request.args.get("CompatibleArchitecture"),
        marker=request.args.get("Marker"),
        max_items=_max_items(),
    )
    body: dict[str, Any] = {"LayerVersions": [layer_versions_list_item(v) for v in page.items]}
    if page.next_marker:
        body["NextMarker"] = page.next_marker
    return json_response(body)


async def delete_layer_version(simulator: Simulator, params: dict[str, str]) -> Response:
    simulator.layers.delete_layer_version(
        params["LayerName"], _version_number(params["VersionNumber"])
    )
    return empty_response()


# Permissions -----------------------------------------------------------------------------


def _compact_json(value: Any) -> str:
    # AWS returns policy documents and statements as JSON strings without spaces.
    return json.dumps(value, separators=(",", ":"))


async def add_layer_version_permission(simulator: Simulator, params: dict[str, str]) -> Response:
    body = await json_body()
    statement, revision_id = simulator.layers.add_layer_version_permission(
        params["LayerName"],
        _version_number(params["VersionNumber"]),
        statement_id=required(body, "StatementId", "statementId"),
        action=required(body, "Action", "action"),
        principal=required(body, "Principal", "principal"),
        organization_id=body.get("OrganizationId"),
        revision_id=request.args.get("RevisionId"),
    )
    return json_response(
        {"Statement": _compact_json(statement), "RevisionId": revision_id}, status=201
    )


async def remove_layer_version_permission(simulator: Simulator, params: dict[str, str]) -> Response:
    simulator.layers.remove_layer_version_permission(
        params["LayerName"],
        _version_number(params["VersionNumber"]),
        params["StatementId"],
        revision_id=request.args.get("RevisionId"),
    )
    return empty_response()


async def get_layer_version_policy(simulator: Simulator, params: dict[str, str]) -> Response:
    policy = simulator.layers.get_layer_version_policy(
        params["LayerName"], _version_number(params["VersionNumber"])
    )
    return json_response(
        {"Policy": _compact_json(policy.document()), "RevisionId": policy.revision_id}
    )


#: Handlers by operation name of the botocore Lambda model.
HANDLERS: dict[str, Handler] = {
    "PublishLayerVersion": publish_layer_version,
    "GetLayerVersion": get_layer_version,
    "GetLayerVersionByArn": get_layer_version_by_arn,
    "ListLayers": list_layers,
    "ListLayerVersions": list_layer_versions,
    "DeleteLayerVersion": delete_layer_version,
    "AddLayerVersionPermission": add_layer_version_permission,
    "RemoveLayerVersionPermission": remove_layer_version_permission,
    "GetLayerVersionPolicy": get_layer_version_policy,
}


def create_layer_content_blueprint(simulator: Simulator) -> Blueprint:
    """Return the blueprint that serves layer zips at the URLs of `Content.Location`."""
    blueprint = Blueprint("layer_content", __name__)

    @blueprint.get("/_lambdasim/layers/<name>/<int:version>/content")
    async def layer_content(name: str, version: int) -> Response:
        data = await simulator.layers.read_content(name, version)
        return Response(data, content_type="application/zip")

    return blueprint
