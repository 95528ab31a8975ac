"""The Docker Registry HTTP API v2 under `/v2/`, for `docker push` and `docker pull`.

The gateway sends unsigned `/v2/...` requests here. Each handler translates one
request into a call of the simulator's `lambdasim.registry.Registry` and its
result or `RegistryError` back into the registry's wire format. Repository
names contain slashes (`000000000000/my-function`), so every route takes them
as a `<path:...>` converter.

Authorization headers are accepted and not checked, so `docker login` with the
token of `aws ecr get-authorization-token` succeeds, and so does every request
without one.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

from quart import Blueprint, Response, request
from quart_trio.wrappers.response import TrioFileBody

from ..registry import (
    MAX_MANIFEST_BYTES,
    BlobInfo,
    Registry,
    RegistryError,
    RepositoryName,
    UploadStatus,
    check_digest,
)
from ..simulator import Simulator

logger = logging.getLogger("lambdasim.server")

API_VERSION_HEADER = "Docker-Distribution-API-Version"
API_VERSION = "registry/2.0"
#: Bytes read from disk per piece of a blob response.
BLOB_READ_BYTES = 1024 * 1024
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def registry_error_response(error: RegistryError) -> Response:
    """Return the JSON error response of the registry API for `error`."""
    response = Response(
        _json_bytes(error.to_body()), status=error.status, content_type="application/json"
    )
    response.headers[API_VERSION_HEADER] = API_VERSION
    return response


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _empty(status: int, headers: dict[str, str], content_length: int = 0) -> Response:
    response = Response(b"", status=status, headers=headers)
    # Quart sets Content-Length from the body when the response is built, so a
    # HEAD response gets the length of the body it describes afterwards.
    response.content_length = content_length
    return response


def _upload_location(name: str, upload_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{quote(upload_id)}"


def _range(offset: int) -> str:
    # The reference registry sends "0-0" for an empty upload, not an empty range.
    return f"0-{max(offset - 1, 0)}"


def _upload_headers(name: str, status: UploadStatus) -> dict[str, str]:
    return {
        "Location": _upload_location(name, status.id),
        "Range": _range(status.offset),
        "Docker-Upload-UUID": status.id,
    }


def _blob_created(name: str, blob: BlobInfo) -> Response:
    return _empty(
        201,
        {"Location": f"/v2/{name}/blobs/{blob.digest}", "Docker-Content-Digest": blob.digest},
    )


def _content_range_start(header: str | None) -> int | None:
    """Return the first byte of a PATCH request's `Content-Range: <start>-<end>`."""
    if header is None:
        return None
    text = header.strip().removeprefix("bytes").strip(" =")
    start, separator, end = text.partition("-")
    if not separator or not start.isdigit() or not end.isdigit() or int(end) < int(start):
        raise RegistryError(
            "RANGE_INVALID",
            f"invalid Content-Range {header!r}: expected <start>-<end> in bytes",
        )
    return int(start)


async def _read_manifest_body() -> bytes:
    received = bytearray()
    async for chunk in request.body:
        received += chunk
        if len(received) > MAX_MANIFEST_BYTES:
            raise RegistryError(
                "MANIFEST_INVALID", f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes"
            )
    return bytes(received)


def create_registry_blueprint(simulator: Simulator) -> Blueprint:
    """Return the blueprint that serves `simulator.registry` under `/v2/`."""
    registry: Registry = simulator.registry
    blueprint = Blueprint("registry_api", __name__)

    def repository(name: str) -> RepositoryName:
        return RepositoryName.parse(name, simulator.config.account_id)

    @blueprint.errorhandler(RegistryError)
    async def registry_error(error: RegistryError) -> Response:
        logger.info("registry request %s %s failed: %s", request.method, request.path, error)
        return registry_error_response(error)

    @blueprint.after_request
    async def add_api_version(response: Response) -> Response:
        response.headers[API_VERSION_HEADER] = API_VERSION
        return response

    @blueprint.route("/v2/", methods=["GET", "HEAD"])
    async def api_base() -> Response:
        body = b"{}" if request.method == "GET" else b""
        response = Response(body, content_type="application/json")
        response.content_length = 2
        return response

    # Manifests -------------------------------------------------------------------

    @blueprint.route("/v2/<path:name>/manifests/<reference>", methods=["GET", "HEAD"])
    async def get_manifest(name: str, reference: str) -> Response:
        image = await registry.resolve(repository(name), reference)
        headers = {"Docker-Content-Digest": image.digest, "ETag": f'"{image.digest}"'}
        if request.method == "HEAD":
            response = _empty(200, headers, content_length=image.size)
        else:
            response = Response(image.manifest, headers=headers)
        response.content_type = image.media_type
        return response

    @blueprint.route("/v2/<path:name>/manifests/<reference>", methods=["PUT"])
    async def put_manifest(name: str, reference: str) -> Response:
        target = repository(name)
        # Reject a push to a missing repository before reading the body.
        await registry.require_repository(target)
        manifest = await _read_manifest_body()
        image = await registry.put_manifest(
            target, reference, manifest, request.headers.get("Content-Type")
        )
        return _empty(
            201,
            {
                "Location": f"/v2/{name}/manifests/{image.digest}",
                "Docker-Content-Digest": image.digest,
            },
        )

    @blueprint.route("/v2/<path:name>/manifests/<reference>", methods=["DELETE"])
    async def delete_manifest(name: str, reference: str) -> Response:
        await registry.delete_manifest(repository(name), reference)
        return _empty(202, {})

    @blueprint.route("/v2/<path:name>/tags/list", methods=["GET"])
    async def list_tags(name: str) -> Response:
        tags = await registry.list_tags(repository(name))
        last = request.args.get("last")
        if last:
            tags = [tag for tag in tags if tag > last]
        headers: dict[str, str] = {}
        limit = request.args.get("n")
        if limit is not None:
            if not limit.isdigit():
                raise RegistryError(
                    "PAGINATION_NUMBER_INVALID",
                    f"invalid page size n={limit!r}: expected a whole number",
                    detail={"n": limit},
                )
            count = int(limit)
            if len(tags) > count:
                tags = tags[:count]
                if tags:
                    following = f"/v2/{name}/tags/list?n={count}&last={quote(tags[-1])}"
                    headers["Link"] = f'<{following}>; rel="next"'
        return Response(
            _json_bytes({"name": name, "tags": tags}),
            headers=headers,
            content_type="application/json",
        )

    # Blobs -----------------------------------------------------------------------

    @blueprint.route("/v2/<path:name>/blobs/<digest>", methods=["GET", "HEAD"])
    async def get_blob(name: str, digest: str) -> Response:
        blob = await registry.stat_blob(repository(name), check_digest(digest))
        headers = {
            "Docker-Content-Digest": blob.digest,
            "ETag": f'"{blob.digest}"',
            "Accept-Ranges": "bytes",
            "Cache-Control": "max-age=31536000",
        }
        if request.method == "HEAD":
            response = _empty(200, headers, content_length=blob.size)
        else:
            response = Response(
                TrioFileBody(blob.path, buffer_size=BLOB_READ_BYTES), headers=headers
            )
            response.content_length = blob.size
            await response.make_conditional(request, accept_ranges=True, complete_length=blob.size)
        response.content_type = "application/octet-stream"
        return response

    @blueprint.route("/v2/<path:name>/blobs/<digest>", methods=["DELETE"])
    async def delete_blob(name: str, digest: str) -> Response:
        raise RegistryError(
            "UNSUPPORTED",
            "deleting blobs is not supported; delete the manifests that use them instead",
        )

    # Uploads ---------------------------------------------------------------------

    @blueprint.route("/v2/<path:name>/blobs/uploads/", methods=["POST"], strict_slashes=False)
    async def start_upload(name: str) -> Response:
        target = repository(name)
        mount = request.args.get("mount")
        if mount is not None:
            source_name = request.args.get("from")
            source = repository(source_name) if source_name else None
            mounted = await registry.mount_blob(target, check_digest(mount), source)
            if mounted is not None:
                return _blob_created(name, mounted)
        digest = request.args.get("digest")
        if digest is not None:
            blob = await registry.put_blob(target, digest, request.body)
            return _blob_created(name, blob)
        status = await registry.start_upload(target)
        return _empty(202, _upload_headers(name, status))

    @blueprint.route("/v2/<path:name>/blobs/uploads/<upload_id>", methods=["GET"])
    async def get_upload(name: str, upload_id: str) -> Response:
        status = await registry.upload_status(repository(name), upload_id)
        return _empty(204, _upload_headers(name, status))

    @blueprint.route("/v2/<path:name>/blobs/uploads/<upload_id>", methods=["PATCH"])
    async def patch_upload(name: str, upload_id: str) -> Response:
        # NOTE: Quart reads the request body ahead of the handler without
        # backpressure, so memory grows while disk writes lag behind the client.
        start = _content_range_start(request.headers.get("Content-Range"))
        status = await registry.write_upload(repository(name), upload_id, request.body, start=start)
        return _empty(202, _upload_headers(name, status))

    @blueprint.route("/v2/<path:name>/blobs/uploads/<upload_id>", methods=["PUT"])
    async def finish_upload(name: str, upload_id: str) -> Response:
        digest = request.args.get("digest")
        if digest is None:
            raise RegistryError(
                "DIGEST_INVALID", "the request that finishes an upload needs a ?digest= parameter"
            )
        blob = await registry.finish_upload(
            repository(name), upload_id, check_digest(digest), request.body
        )
        return _blob_created(name, blob)

    @blueprint.route("/v2/<path:name>/blobs/uploads/<upload_id>", methods=["DELETE"])
    async def cancel_upload(name: str, upload_id: str) -> Response:
        await registry.cancel_upload(repository(name), upload_id)
        return _empty(204, {})

    @blueprint.route("/v2/<path:rest>", methods=_METHODS)
    async def unknown_path(rest: str) -> Response:
        raise RegistryError(
            "UNSUPPORTED",
            f"{request.method} /v2/{rest} is not an operation of the registry API",
        )

    return blueprint
