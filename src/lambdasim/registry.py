"""An image registry on disk that `docker push` and `docker pull` use through the lambdasim port.

The registry stores what the Docker Registry HTTP API v2 moves: blobs (image
layers and configurations) and manifests, grouped into repositories with tags.
`lambdasim.server.registry_api` serves it over HTTP. Image functions build on
`Registry.resolve` and `Registry.pull_reference`.

Layout under the root folder (`Config.data_dir / "registry"` in a simulator):

    blobs/sha256/<hex[:2]>/<hex>                        blob content, named by its SHA-256
    uploads/<upload id>                                 blob uploads in progress
    repositories/<account>/<name>/_manifests/sha256/<hex>   media type of a manifest
    repositories/<account>/<name>/_tags/<tag>               digest that the tag points to

Blobs, manifests included, are shared by every repository and never change once
written. An upload is written to `uploads/` and hashed while it arrives. It is
moved into `blobs/` with `os.replace` only after its digest matches, so a file
in `blobs/` is always complete and correct. Tag and manifest files are replaced
the same way. The `_manifests` and `_tags` folders cannot clash with a
repository path because every repository path component starts with a letter
or digit.

Repository paths name an ECR repository the way lambdasim's image URIs do:
`000000000000/my-function` is the repository `my-function` of account
000000000000. A registry may have an `ImageCatalog`, which in a simulator is
`EcrCatalog` over moto's ECR. Then a repository must exist in the catalog
before anything can be pushed to or pulled from it. Every manifest push is
recorded in the catalog, and the catalog decides which tags and digests exist.
Without a catalog, every well-formed repository exists and the tag files decide.

All file work runs in worker threads under the registry's own limiter, so no
method blocks the trio loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs
import trio

if TYPE_CHECKING:
    from .config import Config
    from .services import EmbeddedServices

logger = logging.getLogger("lambdasim.registry")

T = TypeVar("T")

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
#: Manifests of one image: a configuration blob and layer blobs.
IMAGE_MANIFEST_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
#: Manifests that list other manifests, one per platform.
INDEX_MANIFEST_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
MANIFEST_MEDIA_TYPES = IMAGE_MANIFEST_TYPES | INDEX_MANIFEST_TYPES

#: Largest manifest accepted, in bytes (the default limit of the reference
#: registry, distribution 2.8).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
#: Request body bytes collected before one write to disk.
WRITE_CHUNK_BYTES = 1024 * 1024
#: Seconds after its last request that an unfinished upload is discarded.
UPLOAD_EXPIRY = 3600.0

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME_PATTERN = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
#: Maximum length of a repository path, account included (the reference registry's limit).
_MAX_NAME_LENGTH = 255
_TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST_PATTERN = re.compile(r"sha256:[a-f0-9]{64}")
_ACCOUNT_PATTERN = re.compile(r"[0-9]{12}")
_ECR_HOST_PATTERN = re.compile(
    r"(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com"
)

#: HTTP status of each error code, as the reference registry (distribution 2.8) sends them.
ERROR_STATUS: dict[str, int] = {
    "BLOB_UNKNOWN": 404,
    "BLOB_UPLOAD_INVALID": 404,
    "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400,
    "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404,
    "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404,
    "PAGINATION_NUMBER_INVALID": 400,
    "RANGE_INVALID": 416,
    "SIZE_INVALID": 400,
    "TAG_INVALID": 400,
    "UNSUPPORTED": 405,
}


class RegistryError(Exception):
    """An error of the registry API, with its code from the Docker Registry HTTP API v2.

    `status` is the HTTP status that goes with `code`. `detail` is any JSON
    value that explains the error further, for example the invalid digest.
    """

    def __init__(self, code: str, message: str, *, detail: Any = None) -> None:
        if code not in ERROR_STATUS:
            raise ValueError(f"unknown registry error code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.detail = detail

    @property
    def status(self) -> int:
        return ERROR_STATUS[self.code]

    def to_body(self) -> dict[str, Any]:
        """Return the JSON error body of the registry API."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return {"errors": [error]}


def _digest_invalid(digest: str) -> RegistryError:
    return RegistryError(
        "DIGEST_INVALID",
        f"invalid digest {digest!r}: expected sha256: and 64 lowercase hex digits",
        detail={"digest": digest},
    )


def check_digest(digest: str) -> str:
    """Return `digest` if it is `sha256:` and 64 lowercase hex digits, else raise DIGEST_INVALID."""
    if not _DIGEST_PATTERN.fullmatch(digest):
        raise _digest_invalid(digest)
    return digest


def split_reference(reference: str) -> tuple[str | None, str | None]:
    """Split a manifest reference into (tag, None) or (None, digest).

    Raises RegistryError DIGEST_INVALID for a malformed digest and TAG_INVALID
    for a malformed tag.
    """
    if ":" in reference:
        return None, check_digest(reference)
    if not _TAG_PATTERN.fullmatch(reference):
        raise RegistryError(
            "TAG_INVALID",
            f"invalid tag {reference!r}: a tag is 1 to 128 letters, digits, '_', '.' "
            "or '-', and does not start with '.' or '-'",
            detail={"tag": reference},
        )
    return reference, None


def check_repository_name(name: str) -> str:
    """Return `name` if it is a valid repository path, else raise RegistryError NAME_INVALID."""
    if len(name) > _MAX_NAME_LENGTH or not _NAME_PATTERN.fullmatch(name):
        raise RegistryError(
            "NAME_INVALID",
            f"invalid repository name {name!r}: use lowercase letters, digits "
            "and '.', '_', '-' separators, with '/' between path components",
            detail={"name": name},
        )
    return name


@attrs.frozen
class RepositoryName:
    """A repository of the registry: the ECR repository `name` of `account`."""

    account: str
    name: str

    @classmethod
    def parse(cls, path_name: str, default_account: str) -> RepositoryName:
        """Parse the repository part of a registry path.

        `000000000000/team/app` is the repository `team/app` of account
        000000000000. A path whose first component is not 12 digits, or that has
        only one component, is a repository of `default_account`. Raises
        RegistryError NAME_INVALID for a path that is not a valid repository name.
        """
        check_repository_name(path_name)
        first, separator, rest = path_name.partition("/")
        if separator and _ACCOUNT_PATTERN.fullmatch(first):
            return cls(account=first, name=rest)
        return cls(account=default_account, name=path_name)

    @property
    def path(self) -> str:
        """The repository as registry paths and pull references spell it: `<account>/<name>`."""
        return f"{self.account}/{self.name}"

    def __str__(self) -> str:
        return self.path


@attrs.frozen
class ImageUri:
    """An ECR image URI: `<account>.dkr.ecr.<region>.amazonaws.com/<name>[:<tag>][@<digest>]`.

    Exactly one of `tag` and `digest` is set. A URI with both keeps the digest,
    as docker does; a URI with neither means the tag `latest`.
    """

    account: str
    region: str
    repository: RepositoryName
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, uri: str) -> ImageUri:
        """Parse an ECR image URI, or raise ValueError if `uri` is not one."""
        host, separator, rest = uri.partition("/")
        match = _ECR_HOST_PATTERN.fullmatch(host)
        if not separator or match is None:
            raise ValueError(
                f"{uri!r} is not an ECR image URI: expected "
                "<account>.dkr.ecr.<region>.amazonaws.com/<repository>[:<tag>|@<digest>]"
            )
        name, _, digest = rest.partition("@")
        tag: str | None = None
        last_slash = name.rfind("/")
        colon = name.rfind(":")
        if colon > last_slash:
            name, tag = name[:colon], name[colon + 1 :]
        try:
            check_repository_name(name)
            if digest:
                check_digest(digest)
            elif tag is not None:
                split_reference(tag)
        except RegistryError as exc:
            raise ValueError(f"{uri!r} is not a valid image URI: {exc.message}") from exc
        # The host names the account, so the whole path is the repository name.
        repository = RepositoryName(account=match["account"], name=name)
        if digest:
            return cls(match["account"], match["region"], repository, None, digest)
        return cls(match["account"], match["region"], repository, tag or "latest", None)

    @property
    def reference(self) -> str:
        """The digest, or else the tag: what the registry resolves."""
        return self.digest or self.tag or "latest"


def registry_address(config: Config) -> str:
    """Return the `host:port` at which the local Docker engine reaches this endpoint's registry.

    A wildcard or `localhost` host becomes 127.0.0.1, which the engine treats
    as an insecure (plain HTTP) registry without any daemon setting.
    """
    host = config.host
    if host in ("", "0.0.0.0", "::", "localhost"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{config.port}"


@attrs.frozen
class BlobInfo:
    """A stored blob: its digest, size in bytes and file."""

    digest: str
    size: int
    path: Path


@attrs.frozen
class UploadStatus:
    """A blob upload in progress and the number of bytes it has received."""

    id: str
    repository: RepositoryName
    offset: int


@attrs.frozen
class ResolvedImage:
    """A manifest found by tag or digest, with the exact bytes that were pushed."""

    repository: RepositoryName
    digest: str
    media_type: str
    manifest: bytes = attrs.field(repr=False)

    @property
    def size(self) -> int:
        """The manifest's length in bytes (what `Content-Length` of a manifest GET shows)."""
        return len(self.manifest)


class ImageCatalog(Protocol):
    """The service that owns repositories and image records (ECR in a simulator).

    Every method may raise RegistryError, for example NAME_UNKNOWN for a
    repository that does not exist.
    """

    async def require_repository(self, repository: RepositoryName) -> None:
        """Raise RegistryError NAME_UNKNOWN unless `repository` exists."""

    async def find_image(self, repository: RepositoryName, reference: str) -> str | None:
        """Return the digest that tag or digest `reference` stands for, or None."""

    async def record_image(
        self, repository: RepositoryName, image: ResolvedImage, tag: str | None
    ) -> None:
        """Record a pushed manifest, under `tag` if it is not None."""

    async def remove_image(self, repository: RepositoryName, reference: str) -> None:
        """Forget a tag, or a digest with all its tags."""

    async def list_tags(self, repository: RepositoryName) -> list[str]:
        """Return the repository's tags, sorted."""


@attrs.define(eq=False)
class EcrCatalog:
    """moto's ECR as the `ImageCatalog`: repositories come from `aws ecr create-repository`.

    Each manifest push becomes an image of the ECR repository, with the
    manifest's real digest, so `describe-images` and `list-images` show it.
    Images deleted with `batch-delete-image` disappear from the registry too.
    Every call runs in a worker thread through `services.run_sync`, the only
    safe way to touch moto's backends.
    """

    services: EmbeddedServices
    region: str

    def _backend(self, account: str) -> Any:
        from moto.ecr.models import ecr_backends

        return ecr_backends[account][self.region]

    def _repository(self, repository: RepositoryName) -> Any:
        found = self._backend(repository.account).repositories.get(repository.name)
        if found is None or found.registry_id != repository.account:
            raise RegistryError(
                "NAME_UNKNOWN",
                f"The repository with name '{repository.name}' does not exist in the "
                f"registry with id '{repository.account}'",
                detail={"name": repository.path},
            )
        return found

    @staticmethod
    def _find(ecr_repository: Any, reference: str) -> Any:
        for image in ecr_repository.images:
            if reference.startswith("sha256:"):
                if image.get_image_digest() == reference:
                    return image
            elif reference in image.image_tags:
                return image
        return None

    async def require_repository(self, repository: RepositoryName) -> None:
        await self.services.run_sync(self._repository, repository)

    async def find_image(self, repository: RepositoryName, reference: str) -> str | None:
        def find() -> str | None:
            image = self._find(self._repository(repository), reference)
            return None if image is None else str(image.get_image_digest())

        return await self.services.run_sync(find)

    async def record_image(
        self, repository: RepositoryName, image: ResolvedImage, tag: str | None
    ) -> None:
        await self.services.run_sync(self._record, repository, image, tag)

    def _record(self, repository: RepositoryName, image: ResolvedImage, tag: str | None) -> None:
        from moto.ecr.exceptions import ImageAlreadyExistsException

        ecr_repository = self._repository(repository)
        existing = self._find(ecr_repository, image.digest)
        if existing is not None and (tag is None or tag in existing.image_tags):
            return  # The same image was pushed before, so nothing changes.
        try:
            self._backend(repository.account).put_image(
                repository.name,
                image.manifest.decode("utf-8"),
                tag,
                image_manifest_mediatype=image.media_type,
                digest=image.digest,
            )
        except ImageAlreadyExistsException as exc:
            raise RegistryError(
                "TAG_INVALID",
                f"The image tag '{tag}' already exists in the '{repository.name}' repository "
                "and cannot be overwritten because the repository is immutable.",
                detail={"tag": tag},
            ) from exc

    async def remove_image(self, repository: RepositoryName, reference: str) -> None:
        key = "imageDigest" if reference.startswith("sha256:") else "imageTag"

        def remove() -> None:
            self._repository(repository)
            self._backend(repository.account).batch_delete_image(
                repository.name, image_ids=[{key: reference}]
            )

        await self.services.run_sync(remove)

    async def list_tags(self, repository: RepositoryName) -> list[str]:
        def tags() -> list[str]:
            images = self._repository(repository).images
            return sorted({tag for image in images for tag in image.image_tags})

        return await self.services.run_sync(tags)


@attrs.frozen
class _Reference:
    """A descriptor in a manifest: a blob, or a child manifest of an index."""

    digest: str
    size: int
    is_manifest: bool
    #: A layer with download URLs, which the registry does not have to store.
    foreign: bool


def _manifest_invalid(message: str, detail: Any = None) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", message, detail=detail)


def _descriptor(value: Any, where: str, *, is_manifest: bool) -> _Reference:
    if not isinstance(value, dict):
        raise _manifest_invalid(f"{where} must be a descriptor object, got {value!r}")
    digest = value.get("digest")
    size = value.get("size")
    if not isinstance(digest, str):
        raise _manifest_invalid(f"{where} has no digest")
    check_digest(digest)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _manifest_invalid(f"{where} has an invalid size {size!r}")
    urls = value.get("urls")
    return _Reference(digest, size, is_manifest, foreign=bool(urls) and not is_manifest)


def _parse_manifest(data: bytes, content_type: str | None) -> tuple[str, list[_Reference]]:
    """Validate a pushed manifest and return its media type and the descriptors it lists.

    The media type is the request's `Content-Type` when that is a manifest type,
    else the manifest's `mediaType` field, else (for OCI manifests, where the
    field is optional) what the manifest's keys imply. Raises RegistryError
    MANIFEST_INVALID or DIGEST_INVALID.
    """
    if len(data) > MAX_MANIFEST_BYTES:
        raise _manifest_invalid(
            f"the manifest is {len(data)} bytes, more than {MAX_MANIFEST_BYTES}"
        )
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _manifest_invalid(f"the manifest is not UTF-8 JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise _manifest_invalid("the manifest must be a JSON object")

    declared = document.get("mediaType")
    header = (content_type or "").split(";", 1)[0].strip().lower()
    if header in MANIFEST_MEDIA_TYPES:
        if declared is not None and declared != header:
            raise _manifest_invalid(
                f"the manifest's mediaType {declared!r} does not match its Content-Type {header!r}"
            )
        media_type = header
    elif isinstance(declared, str):
        media_type = declared
    else:
        media_type = OCI_INDEX if "manifests" in document else OCI_MANIFEST
    if media_type not in MANIFEST_MEDIA_TYPES:
        raise _manifest_invalid(
            f"unsupported manifest media type {media_type!r}; supported: "
            + ", ".join(sorted(MANIFEST_MEDIA_TYPES)),
            detail={"mediaType": media_type},
        )
    if document.get("schemaVersion") != 2:
        raise _manifest_invalid(
            f"unsupported schemaVersion {document.get('schemaVersion')!r}; only 2 is supported"
        )

    references: list[_Reference] = []
    if media_type in IMAGE_MANIFEST_TYPES:
        references.append(_descriptor(document.get("config"), "config", is_manifest=False))
        layers = document.get("layers")
        if not isinstance(layers, list):
            raise _manifest_invalid("the manifest has no layers list")
        for index, layer in enumerate(layers):
            references.append(_descriptor(layer, f"layers[{index}]", is_manifest=False))
    else:
        manifests = document.get("manifests")
        if not isinstance(manifests, list):
            raise _manifest_invalid("the index has no manifests list")
        for index, child in enumerate(manifests):
            references.append(_descriptor(child, f"manifests[{index}]", is_manifest=True))
    return media_type, references


@attrs.define(eq=False)
class _Upload:
    """A blob upload: its staging file and the SHA-256 of what was written so far."""

    id: str
    repository: RepositoryName
    path: Path
    offset: int = 0
    hasher: Any = attrs.field(factory=hashlib.sha256)
    last_active: float = attrs.field(factory=time.monotonic)
    #: Set while a request writes to or finishes the upload. Requests run one at a time.
    busy: bool = False

    def write(self, data: bytes) -> None:
        """Append `data` to the staging file. Blocking."""
        with open(self.path, "ab") as file:
            file.write(data)
        self.hasher.update(data)
        self.offset += len(data)

    def status(self) -> UploadStatus:
        return UploadStatus(id=self.id, repository=self.repository, offset=self.offset)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    try:
        staging.write_bytes(data)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


@attrs.define(eq=False)
class Registry:
    """Blobs, manifests and tags under `root`, with an optional `catalog` of repositories.

    `region` is the region whose ECR image URIs `pull_reference` accepts.
    Every method is async and does its file work in worker threads, at most
    `max_threads` at a time. Uploads in progress live in memory, so a new
    process starts without them. It removes their staging files once they are
    older than `UPLOAD_EXPIRY`.
    """

    root: Path = attrs.field(converter=Path)
    catalog: ImageCatalog | None = None
    region: str = "us-east-1"
    max_threads: int = 4
    _limiter: trio.CapacityLimiter = attrs.field(init=False)
    _uploads: dict[str, _Upload] = attrs.field(factory=dict, init=False)
    _prepared: bool = attrs.field(default=False, init=False)
    _prepare_lock: trio.Lock = attrs.field(factory=trio.Lock, init=False)

    def __attrs_post_init__(self) -> None:
        self._limiter = trio.CapacityLimiter(self.max_threads)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    # Paths -----------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Return where the blob `digest` is stored (it may not exist)."""
        hex_digits = check_digest(digest).removeprefix("sha256:")
        return self.root / "blobs" / "sha256" / hex_digits[:2] / hex_digits

    def _repository_path(self, repository: RepositoryName) -> Path:
        return self.root / "repositories" / repository.account / repository.name

    def _manifest_link(self, repository: RepositoryName, digest: str) -> Path:
        hex_digits = digest.removeprefix("sha256:")
        return self._repository_path(repository) / "_manifests" / "sha256" / hex_digits

    def _tag_path(self, repository: RepositoryName, tag: str) -> Path:
        return self._repository_path(repository) / "_tags" / tag

    # Preparation -----------------------------------------------------------------

    async def _prepare(self) -> None:
        if self._prepared:
            return
        async with self._prepare_lock:
            if not self._prepared:
                await self._run(self._prepare_sync)
                self._prepared = True

    def _prepare_sync(self) -> None:
        uploads = self.root / "uploads"
        uploads.mkdir(parents=True, exist_ok=True)
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        # Staging files of an earlier process belong to uploads that can never
        # finish. Young files are kept in case another process shares the folder.
        cutoff = time.time() - UPLOAD_EXPIRY
        for leftover in uploads.iterdir():
            try:
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
            except FileNotFoundError:
                pass

    async def _require(self, repository: RepositoryName) -> None:
        await self._prepare()
        if self.catalog is not None:
            await self.catalog.require_repository(repository)

    async def require_repository(self, repository: RepositoryName) -> None:
        """Raise RegistryError NAME_UNKNOWN unless `repository` exists in the catalog."""
        await self._require(repository)

    # Blobs -----------------------------------------------------------------------

    async def stat_blob(self, repository: RepositoryName, digest: str) -> BlobInfo:
        """Return the stored blob `digest`, or raise RegistryError BLOB_UNKNOWN.

        NOTE: blobs are shared by all repositories, so any existing repository
        serves every stored blob (ECR keeps layers per repository).
        """
        path = self.blob_path(digest)
        await self._require(repository)
        info = await self._run(self._stat_blob_sync, digest, path)
        if info is None:
            raise RegistryError(
                "BLOB_UNKNOWN",
                f"blob {digest} is not in repository {repository.path}",
                detail={"digest": digest},
            )
        return info

    @staticmethod
    def _stat_blob_sync(digest: str, path: Path) -> BlobInfo | None:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        return BlobInfo(digest=digest, size=size, path=path)

    async def read_blob(self, repository: RepositoryName, digest: str, max_size: int) -> bytes:
        """Return the content of a blob of at most `max_size` bytes (an image configuration).

        Raises RegistryError BLOB_UNKNOWN if the blob is not stored and
        SIZE_INVALID if it is larger than `max_size`.
        """
        info = await self.stat_blob(repository, digest)
        if info.size > max_size:
            raise RegistryError(
                "SIZE_INVALID",
                f"blob {digest} is {info.size} bytes, more than the {max_size} bytes allowed here",
            )
        return await self._run(info.path.read_bytes)

    async def mount_blob(
        self, repository: RepositoryName, digest: str, source: RepositoryName | None
    ) -> BlobInfo | None:
        """Make blob `digest` of `source` available in `repository`, as a cross-repository mount.

        Returns the blob, or None if it is not stored (the client then uploads it).
        Blobs are shared by all repositories, so `source` only has to exist.
        """
        path = self.blob_path(digest)
        await self._require(repository)
        if source is not None and self.catalog is not None:
            try:
                await self.catalog.require_repository(source)
            except RegistryError:
                return None
        return await self._run(self._stat_blob_sync, digest, path)

    # Uploads ---------------------------------------------------------------------

    async def start_upload(self, repository: RepositoryName) -> UploadStatus:
        """Start a blob upload in `repository` and return it with offset 0."""
        await self._require(repository)
        await self._expire_uploads()
        upload_id = str(uuid.uuid4())
        upload = _Upload(
            id=upload_id, repository=repository, path=self.root / "uploads" / upload_id
        )
        await self._run(upload.path.touch)
        self._uploads[upload_id] = upload
        logger.debug("started upload %s in %s", upload_id, repository)
        return upload.status()

    async def _expire_uploads(self) -> None:
        cutoff = time.monotonic() - UPLOAD_EXPIRY
        for upload in list(self._uploads.values()):
            if not upload.busy and upload.last_active < cutoff:
                await self._discard(upload)
                logger.info(
                    "discarded upload %s in %s after %d s without requests",
                    upload.id,
                    upload.repository,
                    UPLOAD_EXPIRY,
                )

    def _lookup(self, repository: RepositoryName, upload_id: str) -> _Upload:
        upload = self._uploads.get(upload_id)
        if upload is None or upload.repository != repository:
            raise RegistryError(
                "BLOB_UPLOAD_UNKNOWN",
                f"upload {upload_id} is not in progress in repository {repository.path}",
                detail={"uuid": upload_id},
            )
        return upload

    def _claim(self, repository: RepositoryName, upload_id: str) -> _Upload:
        upload = self._lookup(repository, upload_id)
        if upload.busy:
            raise RegistryError(
                "BLOB_UPLOAD_INVALID",
                f"another request is writing to upload {upload_id}; send one request at a time",
                detail={"uuid": upload_id},
            )
        upload.busy = True
        return upload

    def _release(self, upload: _Upload) -> None:
        upload.busy = False
        upload.last_active = time.monotonic()

    async def _discard(self, upload: _Upload) -> None:
        self._uploads.pop(upload.id, None)
        await self._run(upload.path.unlink, True)

    async def _append(self, upload: _Upload, chunks: AsyncIterable[bytes]) -> None:
        buffer = bytearray()
        try:
            async for chunk in chunks:
                buffer += chunk
                if len(buffer) >= WRITE_CHUNK_BYTES:
                    data = bytes(buffer)
                    buffer.clear()
                    await self._run(upload.write, data)
            if buffer:
                await self._run(upload.write, bytes(buffer))
        except OSError as exc:
            # The staging file may now end with part of a chunk that `offset` does
            # not count, so the upload cannot continue.
            logger.warning("upload %s in %s failed: %s", upload.id, upload.repository, exc)
            await self._discard(upload)
            raise RegistryError(
                "BLOB_UPLOAD_INVALID",
                f"writing upload {upload.id} failed ({exc}); start the upload again",
                detail={"uuid": upload.id},
            ) from exc

    async def upload_status(self, repository: RepositoryName, upload_id: str) -> UploadStatus:
        """Return an upload's status, or raise RegistryError BLOB_UPLOAD_UNKNOWN."""
        await self._require(repository)
        return self._lookup(repository, upload_id).status()

    async def write_upload(
        self,
        repository: RepositoryName,
        upload_id: str,
        chunks: AsyncIterable[bytes],
        *,
        start: int | None = None,
    ) -> UploadStatus:
        """Append `chunks` to an upload and return its new status.

        `start` is the first byte position that the client declared in
        `Content-Range`. It must equal the number of bytes received so far, else
        RegistryError RANGE_INVALID is raised.
        Writes happen in about `WRITE_CHUNK_BYTES` pieces, so memory stays
        bounded by what the client sends while one piece is written.
        """
        await self._require(repository)
        upload = self._claim(repository, upload_id)
        try:
            if start is not None and start != upload.offset:
                raise RegistryError(
                    "RANGE_INVALID",
                    f"upload {upload_id} has {upload.offset} bytes, so the next chunk must "
                    f"start at {upload.offset}, not {start}",
                    detail={"uuid": upload_id, "offset": upload.offset},
                )
            await self._append(upload, chunks)
        finally:
            self._release(upload)
        return upload.status()

    async def finish_upload(
        self,
        repository: RepositoryName,
        upload_id: str,
        digest: str,
        chunks: AsyncIterable[bytes] | None = None,
    ) -> BlobInfo:
        """Append the last `chunks`, check the digest and store the blob.

        If the content does not match `digest`, the upload is discarded and
        RegistryError DIGEST_INVALID is raised. A blob stored before is kept and
        the upload's copy dropped.
        """
        target = self.blob_path(digest)
        await self._require(repository)
        upload = self._claim(repository, upload_id)
        try:
            if chunks is not None:
                await self._append(upload, chunks)
            actual = "sha256:" + upload.hasher.hexdigest()
            if actual != digest:
                await self._discard(upload)
                raise RegistryError(
                    "DIGEST_INVALID",
                    f"the uploaded content has digest {actual}, not {digest}",
                    detail={"digest": digest},
                )
            await self._run(self._commit_blob, upload.path, target)
            self._uploads.pop(upload_id, None)
        finally:
            self._release(upload)
        logger.info("stored blob %s (%d bytes) for %s", digest, upload.offset, repository)
        return BlobInfo(digest=digest, size=upload.offset, path=target)

    @staticmethod
    def _commit_blob(staging: Path, target: Path) -> None:
        if target.exists():
            staging.unlink(missing_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(staging, 0o644)
        os.replace(staging, target)

    async def cancel_upload(self, repository: RepositoryName, upload_id: str) -> None:
        """Discard an upload, or raise RegistryError BLOB_UPLOAD_UNKNOWN if there is none."""
        await self._require(repository)
        upload = self._claim(repository, upload_id)
        try:
            await self._discard(upload)
        finally:
            self._release(upload)

    async def put_blob(
        self, repository: RepositoryName, digest: str, chunks: AsyncIterable[bytes]
    ) -> BlobInfo:
        """Store a whole blob in one step (a monolithic upload)."""
        check_digest(digest)
        status = await self.start_upload(repository)
        try:
            return await self.finish_upload(repository, status.id, digest, chunks)
        finally:
            upload = self._uploads.pop(status.id, None)
            if upload is not None:
                await self._run(upload.path.unlink, True)

    # Manifests -------------------------------------------------------------------

    async def put_manifest(
        self,
        repository: RepositoryName,
        reference: str,
        manifest: bytes,
        content_type: str | None = None,
    ) -> ResolvedImage:
        """Store a manifest under a tag or its digest and return it.

        The manifest is stored byte for byte, so its digest is the SHA-256 of
        `manifest`. Every blob of an image manifest (except layers with download
        URLs) must be stored, and every manifest of an index must be in the
        repository, else RegistryError MANIFEST_BLOB_UNKNOWN. A digest
        `reference` must match, else DIGEST_INVALID. With a catalog, the push is
        recorded there before the tag changes here.
        """
        await self._require(repository)
        tag, expected_digest = split_reference(reference)
        media_type, references = _parse_manifest(manifest, content_type)
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        if expected_digest is not None and expected_digest != digest:
            raise RegistryError(
                "DIGEST_INVALID",
                f"the manifest has digest {digest}, not {expected_digest}",
                detail={"digest": expected_digest},
            )
        await self._run(self._check_references, repository, references)

        image = ResolvedImage(
            repository=repository, digest=digest, media_type=media_type, manifest=manifest
        )
        await self._run(self._store_manifest, image)
        if self.catalog is not None:
            await self.catalog.record_image(repository, image, tag)
        await self._run(self._link_manifest, image, tag)
        logger.info("pushed %s:%s (%s, %s)", repository, tag or digest, digest, media_type)
        return image

    def _check_references(self, repository: RepositoryName, references: list[_Reference]) -> None:
        for reference in references:
            if reference.is_manifest:
                if not self._manifest_link(repository, reference.digest).exists():
                    raise RegistryError(
                        "MANIFEST_BLOB_UNKNOWN",
                        f"the index lists manifest {reference.digest}, which is not in "
                        f"repository {repository.path}; push it first",
                        detail={"digest": reference.digest},
                    )
                continue
            if reference.foreign:
                continue
            try:
                size = self.blob_path(reference.digest).stat().st_size
            except FileNotFoundError:
                raise RegistryError(
                    "MANIFEST_BLOB_UNKNOWN",
                    f"the manifest references blob {reference.digest}, which is not stored; "
                    "upload it first",
                    detail={"digest": reference.digest},
                ) from None
            if size != reference.size:
                raise _manifest_invalid(
                    f"the manifest gives blob {reference.digest} {reference.size} bytes, "
                    f"but it has {size}",
                    detail={"digest": reference.digest},
                )

    def _store_manifest(self, image: ResolvedImage) -> None:
        path = self.blob_path(image.digest)
        if not path.exists():
            _write_atomically(path, image.manifest)

    def _link_manifest(self, image: ResolvedImage, tag: str | None) -> None:
        _write_atomically(
            self._manifest_link(image.repository, image.digest), image.media_type.encode()
        )
        if tag is not None:
            _write_atomically(self._tag_path(image.repository, tag), image.digest.encode())

    async def resolve(self, repository: RepositoryName, reference: str) -> ResolvedImage:
        """Return the manifest that a tag or digest names in `repository`.

        Raises RegistryError NAME_UNKNOWN if the repository does not exist,
        MANIFEST_UNKNOWN if the reference does not, and TAG_INVALID or
        DIGEST_INVALID for a malformed reference.
        """
        await self._require(repository)
        tag, digest = split_reference(reference)
        if self.catalog is not None:
            digest = await self.catalog.find_image(repository, reference)
            if digest is None:
                raise self._manifest_unknown(repository, reference)
        return await self._run(self._read_manifest, repository, reference, tag, digest)

    @staticmethod
    def _manifest_unknown(repository: RepositoryName, reference: str) -> RegistryError:
        return RegistryError(
            "MANIFEST_UNKNOWN",
            f"manifest {reference} is not in repository {repository.path}",
            detail={"name": repository.path, "reference": reference},
        )

    def _read_manifest(
        self, repository: RepositoryName, reference: str, tag: str | None, digest: str | None
    ) -> ResolvedImage:
        try:
            if digest is None:
                assert tag is not None
                digest = check_digest(self._tag_path(repository, tag).read_text().strip())
            media_type = self._manifest_link(repository, digest).read_text().strip()
            manifest = self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            # NOTE: an image put into ECR with `aws ecr put-image` alone has no stored
            # manifest here, so it cannot be pulled.
            raise self._manifest_unknown(repository, reference) from None
        return ResolvedImage(
            repository=repository, digest=digest, media_type=media_type, manifest=manifest
        )

    async def delete_manifest(self, repository: RepositoryName, reference: str) -> None:
        """Delete a manifest by digest (with every tag that points to it) or one tag.

        Raises RegistryError MANIFEST_UNKNOWN if the reference does not exist.
        Blobs stay stored.
        """
        image = await self.resolve(repository, reference)
        tag, _ = split_reference(reference)
        if self.catalog is not None:
            await self.catalog.remove_image(repository, reference)
        await self._run(self._unlink_manifest, image, tag)
        logger.info("deleted %s from %s (%s)", reference, repository, image.digest)

    def _unlink_manifest(self, image: ResolvedImage, tag: str | None) -> None:
        tags = self._repository_path(image.repository) / "_tags"
        if tag is not None:
            self._tag_path(image.repository, tag).unlink(missing_ok=True)
            return
        self._manifest_link(image.repository, image.digest).unlink(missing_ok=True)
        if tags.is_dir():
            for path in tags.iterdir():
                try:
                    if path.read_text().strip() == image.digest:
                        path.unlink()
                except FileNotFoundError:
                    pass

    async def list_tags(self, repository: RepositoryName) -> list[str]:
        """Return the tags of `repository`, sorted."""
        await self._require(repository)
        if self.catalog is not None:
            return await self.catalog.list_tags(repository)
        return await self._run(self._list_tags_sync, repository)

    def _list_tags_sync(self, repository: RepositoryName) -> list[str]:
        folder = self._repository_path(repository) / "_tags"
        if not folder.is_dir():
            return []
        return sorted(path.name for path in folder.iterdir() if not path.name.startswith("."))

    async def image_config(self, image: ResolvedImage) -> dict[str, Any] | None:
        """Return the image configuration (ENTRYPOINT, CMD, ...) of an image manifest.

        Returns None for an index, which has one configuration per platform.
        """
        if image.media_type not in IMAGE_MANIFEST_TYPES:
            return None
        config = json.loads(image.manifest)["config"]["digest"]
        data = await self.read_blob(image.repository, config, MAX_MANIFEST_BYTES)
        parsed = json.loads(data)
        return parsed if isinstance(parsed, dict) else None

    # Image URIs ------------------------------------------------------------------

    async def pull_reference(self, image_uri: str, address: str) -> str:
        """Return the reference that docker pulls an ECR image URI of this endpoint with.

        `000000000000.dkr.ecr.us-east-1.amazonaws.com/my-function:latest`
        becomes `<address>/000000000000/my-function@sha256:...`: the tag is
        resolved now, so later pushes to the tag do not change what runs, as
        Lambda pins an image function to a digest. `address` is this registry's
        `host:port` as the Docker engine reaches it (see `registry_address`).

        Raises ValueError if `image_uri` is not an ECR image URI of this
        registry's region, and RegistryError NAME_UNKNOWN or MANIFEST_UNKNOWN
        if the repository or image does not exist.
        """
        uri = ImageUri.parse(image_uri)
        if uri.region != self.region:
            raise ValueError(
                f"{image_uri!r} is in region {uri.region}, but this registry serves "
                f"ECR of region {self.region}"
            )
        image = await self.resolve(uri.repository, uri.reference)
        return f"{address}/{uri.repository.path}@{image.digest}"
