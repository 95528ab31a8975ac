"""The image registry on the lambdasim port: the library, the HTTP API and real docker push/pull."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import requests
from conftest import client, docker_required, unique_name

from lambdasim.config import Config
from lambdasim.registry import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    ImageUri,
    Registry,
    RegistryError,
    RepositoryName,
    registry_address,
)

ACCOUNT = "000000000000"
BASE_IMAGE = "public.ecr.aws/lambda/provided:al2023"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _manifest(config: bytes, layers: list[bytes], media_type: str = OCI_MANIFEST) -> bytes:
    document = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": _digest(config), "size": len(config)},
        "layers": [
            {"mediaType": LAYER_MEDIA_TYPE, "digest": _digest(layer), "size": len(layer)}
            for layer in layers
        ],
    }
    return json.dumps(document, indent=3).encode()


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


# The library ---------------------------------------------------------------------


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry")


REPOSITORY = RepositoryName(ACCOUNT, "my-function")


async def test_library_push_and_resolve(registry: Registry) -> None:
    config, layer = b'{"architecture": "amd64"}', b"layer bytes" * 1000
    await registry.put_blob(REPOSITORY, _digest(config), _chunks(config))
    upload = await registry.start_upload(REPOSITORY)
    await registry.write_upload(REPOSITORY, upload.id, _chunks(layer[:5000]), start=0)
    blob = await registry.finish_upload(
        REPOSITORY, upload.id, _digest(layer), _chunks(layer[5000:])
    )
    manifest = _manifest(config, [layer])

    pushed = await registry.put_manifest(REPOSITORY, "latest", manifest, OCI_MANIFEST)
    by_tag = await registry.resolve(REPOSITORY, "latest")
    by_digest = await registry.resolve(REPOSITORY, pushed.digest)

    assert blob.size == len(layer)
    assert blob.path.read_bytes() == layer
    assert pushed.digest == _digest(manifest)
    assert by_tag == pushed
    assert by_digest.manifest == manifest
    assert by_digest.size == len(manifest)
    assert by_digest.media_type == OCI_MANIFEST
    assert await registry.list_tags(REPOSITORY) == ["latest"]
    assert await registry.image_config(pushed) == {"architecture": "amd64"}


async def test_library_digest_mismatch_discards_upload(registry: Registry, tmp_path: Path) -> None:
    upload = await registry.start_upload(REPOSITORY)
    wrong = _digest(b"something else")

    with pytest.raises(RegistryError) as raised:
        await registry.finish_upload(REPOSITORY, upload.id, wrong, _chunks(b"content"))

    assert raised.value.code == "DIGEST_INVALID"
    assert not registry.blob_path(wrong).exists()
    assert not registry.blob_path(_digest(b"content")).exists()
    assert list((tmp_path / "registry" / "uploads").iterdir()) == []
    with pytest.raises(RegistryError) as unknown:
        await registry.upload_status(REPOSITORY, upload.id)
    assert unknown.value.code == "BLOB_UPLOAD_UNKNOWN"


async def test_library_chunk_at_wrong_offset(registry: Registry) -> None:
    upload = await registry.start_upload(REPOSITORY)
    await registry.write_upload(REPOSITORY, upload.id, _chunks(b"12345"))

    with pytest.raises(RegistryError) as raised:
        await registry.write_upload(REPOSITORY, upload.id, _chunks(b"678"), start=3)

    assert raised.value.code == "RANGE_INVALID"
    assert raised.value.status == 416
    status = await registry.upload_status(REPOSITORY, upload.id)
    assert status.offset == 5


async def test_library_rejects_unknown_blob(registry: Registry) -> None:
    config = b"{}"
    await registry.put_blob(REPOSITORY, _digest(config), _chunks(config))
    manifest = _manifest(config, [b"never uploaded"])

    with pytest.raises(RegistryError) as raised:
        await registry.put_manifest(REPOSITORY, "latest", manifest, OCI_MANIFEST)

    assert raised.value.code == "MANIFEST_BLOB_UNKNOWN"
    assert raised.value.detail == {"digest": _digest(b"never uploaded")}
    with pytest.raises(RegistryError) as missing:
        await registry.resolve(REPOSITORY, "latest")
    assert missing.value.code == "MANIFEST_UNKNOWN"


async def test_library_delete_by_digest_removes_tags(registry: Registry) -> None:
    config = b"{}"
    await registry.put_blob(REPOSITORY, _digest(config), _chunks(config))
    pushed = await registry.put_manifest(REPOSITORY, "one", _manifest(config, []), OCI_MANIFEST)
    await registry.put_manifest(REPOSITORY, "two", pushed.manifest, OCI_MANIFEST)

    await registry.delete_manifest(REPOSITORY, pushed.digest)

    assert await registry.list_tags(REPOSITORY) == []
    for reference in ("one", "two", pushed.digest):
        with pytest.raises(RegistryError) as raised:
            await registry.resolve(REPOSITORY, reference)
        assert raised.value.code == "MANIFEST_UNKNOWN"


async def test_library_pull_reference_pins_digest(registry: Registry) -> None:
    config = b"{}"
    await registry.put_blob(REPOSITORY, _digest(config), _chunks(config))
    pushed = await registry.put_manifest(REPOSITORY, "latest", _manifest(config, []), OCI_MANIFEST)
    uri = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/my-function"
    address = registry_address(Config(port=4599, host="0.0.0.0"))

    by_tag = await registry.pull_reference(f"{uri}:latest", address)
    by_digest = await registry.pull_reference(f"{uri}@{pushed.digest}", address)
    implicit_latest = await registry.pull_reference(uri, address)

    expected = f"127.0.0.1:4599/{ACCOUNT}/my-function@{pushed.digest}"
    assert by_tag == expected
    assert by_digest == expected
    assert implicit_latest == expected
    with pytest.raises(ValueError, match="region eu-west-1"):
        await registry.pull_reference(
            f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/my-function:latest", address
        )
    with pytest.raises(RegistryError) as raised:
        await registry.pull_reference(f"{uri}:missing", address)
    assert raised.value.code == "MANIFEST_UNKNOWN"


def test_image_uri_parsing() -> None:
    digest = _digest(b"x")
    tagged = ImageUri.parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:v1.2")
    pinned = ImageUri.parse(f"000000000000.dkr.ecr.us-east-1.amazonaws.com/app:v1@{digest}")

    assert tagged.account == "123456789012"
    assert tagged.region == "eu-west-1"
    assert tagged.repository == RepositoryName("123456789012", "team/app")
    assert tagged.tag == "v1.2"
    assert tagged.reference == "v1.2"
    assert pinned.digest == digest
    assert pinned.tag is None
    for invalid in (
        "public.ecr.aws/lambda/python:3.12",
        "000000000000.dkr.ecr.us-east-1.amazonaws.com",
        "000000000000.dkr.ecr.us-east-1.amazonaws.com/App:latest",
        "000000000000.dkr.ecr.us-east-1.amazonaws.com/app@sha256:short",
    ):
        with pytest.raises(ValueError):
            ImageUri.parse(invalid)


def test_repository_name_parsing() -> None:
    assert RepositoryName.parse("000000000000/my-function", "111111111111") == RepositoryName(
        "000000000000", "my-function"
    )
    assert RepositoryName.parse("000000000000/team/app", "111111111111") == RepositoryName(
        "000000000000", "team/app"
    )
    assert RepositoryName.parse("team/app", "111111111111") == RepositoryName(
        "111111111111", "team/app"
    )
    for invalid in ("Upper", "a//b", "-a", "a/", "../a"):
        with pytest.raises(RegistryError) as raised:
            RepositoryName.parse(invalid, ACCOUNT)
        assert raised.value.code == "NAME_INVALID"


# The HTTP API --------------------------------------------------------------------


def _url(endpoint: str, repository: str, rest: str) -> str:
    return f"{endpoint}/v2/{ACCOUNT}/{repository}/{rest}"


def _error_code(response: requests.Response) -> str:
    return response.json()["errors"][0]["code"]


def _push_blob(endpoint: str, repository: str, data: bytes) -> str:
    digest = _digest(data)
    response = requests.post(
        _url(endpoint, repository, f"blobs/uploads/?digest={digest}"), data=data, timeout=30
    )
    assert response.status_code == 201, response.text
    return digest


@pytest.fixture
def ecr(endpoint: str):  # type: ignore[no-untyped-def]
    return client("ecr", endpoint)


@pytest.fixture
def repository(ecr) -> str:  # type: ignore[no-untyped-def]
    name = unique_name("registry")
    ecr.create_repository(repositoryName=name)
    return name


def test_api_base_endpoint(endpoint: str) -> None:
    response = requests.get(f"{endpoint}/v2/", timeout=30)

    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert response.json() == {}


def test_chunked_upload_then_blob_reads(endpoint: str, repository: str) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    digest = _digest(data)
    started = requests.post(_url(endpoint, repository, "blobs/uploads/"), timeout=30)
    assert started.status_code == 202
    assert started.headers["Range"] == "0-0"
    upload_id = started.headers["Docker-Upload-UUID"]
    location = started.headers["Location"]
    assert location.endswith(upload_id)

    first = requests.patch(
        endpoint + location,
        data=data[:1000],
        headers={"Content-Range": "0-999", "Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert first.status_code == 202
    assert first.headers["Range"] == "0-999"
    # A generator body goes out with chunked transfer encoding, as docker sends it.
    second = requests.patch(
        endpoint + first.headers["Location"],
        data=(data[start : start + 65536] for start in range(1000, len(data), 65536)),
        timeout=30,
    )
    assert second.status_code == 202
    assert second.headers["Range"] == f"0-{len(data) - 1}"
    status = requests.get(endpoint + location, timeout=30)
    assert status.status_code == 204
    assert status.headers["Range"] == f"0-{len(data) - 1}"

    finished = requests.put(f"{endpoint}{location}?digest={digest}", timeout=30)
    assert finished.status_code == 201
    assert finished.headers["Docker-Content-Digest"] == digest
    assert finished.headers["Location"] == f"/v2/{ACCOUNT}/{repository}/blobs/{digest}"

    head = requests.head(_url(endpoint, repository, f"blobs/{digest}"), timeout=30)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == digest
    whole = requests.get(_url(endpoint, repository, f"blobs/{digest}"), timeout=30)
    assert whole.status_code == 200
    assert whole.content == data
    part = requests.get(
        _url(endpoint, repository, f"blobs/{digest}"), headers={"Range": "bytes=10-19"}, timeout=30
    )
    assert part.status_code == 206
    assert part.content == data[10:20]


def test_upload_errors(endpoint: str, repository: str) -> None:
    started = requests.post(_url(endpoint, repository, "blobs/uploads"), timeout=30)
    location = endpoint + started.headers["Location"]

    out_of_order = requests.patch(
        location, data=b"abc", headers={"Content-Range": "5-7"}, timeout=30
    )
    wrong_digest = requests.put(f"{location}?digest={_digest(b'other')}", data=b"abc", timeout=30)
    after_failure = requests.get(location, timeout=30)
    no_digest = requests.put(
        endpoint
        + requests.post(_url(endpoint, repository, "blobs/uploads/"), timeout=30).headers[
            "Location"
        ],
        timeout=30,
    )

    assert out_of_order.status_code == 416
    assert _error_code(out_of_order) == "RANGE_INVALID"
    assert wrong_digest.status_code == 400
    assert _error_code(wrong_digest) == "DIGEST_INVALID"
    assert after_failure.status_code == 404
    assert _error_code(after_failure) == "BLOB_UPLOAD_UNKNOWN"
    assert no_digest.status_code == 400
    assert _error_code(no_digest) == "DIGEST_INVALID"


def test_missing_blob_is_404(endpoint: str, repository: str) -> None:
    digest = _digest(uuid.uuid4().bytes)

    head = requests.head(_url(endpoint, repository, f"blobs/{digest}"), timeout=30)
    get = requests.get(_url(endpoint, repository, f"blobs/{digest}"), timeout=30)

    assert head.status_code == 404
    assert get.status_code == 404
    assert get.json() == {
        "errors": [
            {
                "code": "BLOB_UNKNOWN",
                "message": f"blob {digest} is not in repository {ACCOUNT}/{repository}",
                "detail": {"digest": digest},
            }
        ]
    }


def test_manifest_round_trip_and_ecr(endpoint: str, repository: str, ecr) -> None:  # type: ignore[no-untyped-def]
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layer = os.urandom(2048)
    _push_blob(endpoint, repository, config)
    _push_blob(endpoint, repository, layer)
    manifest = _manifest(config, [layer], DOCKER_MANIFEST)
    digest = _digest(manifest)

    put = requests.put(
        _url(endpoint, repository, "manifests/v1"),
        data=manifest,
        headers={"Content-Type": DOCKER_MANIFEST},
        timeout=30,
    )
    head = requests.head(_url(endpoint, repository, "manifests/v1"), timeout=30)
    get = requests.get(_url(endpoint, repository, f"manifests/{digest}"), timeout=30)
    images = ecr.describe_images(repositoryName=repository)["imageDetails"]
    listed = ecr.list_images(repositoryName=repository)["imageIds"]

    assert put.status_code == 201, put.text
    assert put.headers["Docker-Content-Digest"] == digest
    assert put.headers["Location"] == f"/v2/{ACCOUNT}/{repository}/manifests/{digest}"
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(manifest))
    assert head.headers["Docker-Content-Digest"] == digest
    assert head.headers["Content-Type"] == DOCKER_MANIFEST
    assert get.content == manifest
    assert get.headers["Content-Type"] == DOCKER_MANIFEST
    assert [(image["imageDigest"], image["imageTags"]) for image in images] == [(digest, ["v1"])]
    assert images[0]["imageManifestMediaType"] == DOCKER_MANIFEST
    assert listed == [{"imageDigest": digest, "imageTag": "v1"}]


def test_manifest_put_errors(endpoint: str, repository: str) -> None:
    config = b"{}"
    _push_blob(endpoint, repository, config)
    unknown_layer = b"not uploaded " + uuid.uuid4().bytes
    with_unknown_blob = _manifest(config, [unknown_layer])
    good = _manifest(config, [])

    unknown_blob = requests.put(
        _url(endpoint, repository, "manifests/latest"),
        data=with_unknown_blob,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=30,
    )
    wrong_digest = requests.put(
        _url(endpoint, repository, f"manifests/{_digest(b'other')}"), data=good, timeout=30
    )
    not_json = requests.put(_url(endpoint, repository, "manifests/latest"), data=b"{", timeout=30)
    schema1 = requests.put(
        _url(endpoint, repository, "manifests/latest"),
        data=json.dumps({"schemaVersion": 1, "name": repository}).encode(),
        headers={"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"},
        timeout=30,
    )
    bad_tag = requests.put(_url(endpoint, repository, "manifests/.hidden"), data=good, timeout=30)

    assert unknown_blob.status_code == 400
    assert unknown_blob.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    assert unknown_blob.json()["errors"][0]["detail"] == {"digest": _digest(unknown_layer)}
    assert wrong_digest.status_code == 400
    assert _error_code(wrong_digest) == "DIGEST_INVALID"
    assert not_json.status_code == 400
    assert _error_code(not_json) == "MANIFEST_INVALID"
    assert schema1.status_code == 400
    assert _error_code(schema1) == "MANIFEST_INVALID"
    assert bad_tag.status_code == 400
    assert _error_code(bad_tag) == "TAG_INVALID"
    assert requests.get(_url(endpoint, repository, "tags/list"), timeout=30).json()["tags"] == []


def test_index_needs_its_manifests(endpoint: str, repository: str, ecr) -> None:  # type: ignore[no-untyped-def]
    config = b"{}"
    _push_blob(endpoint, repository, config)
    child = _manifest(config, [])
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": _digest(child),
                    "size": len(child),
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
    ).encode()

    before_child = requests.put(
        _url(endpoint, repository, "manifests/multi"),
        data=index,
        headers={"Content-Type": OCI_INDEX},
        timeout=30,
    )
    child_put = requests.put(
        _url(endpoint, repository, f"manifests/{_digest(child)}"), data=child, timeout=30
    )
    after_child = requests.put(
        _url(endpoint, repository, "manifests/multi"),
        data=index,
        headers={"Content-Type": OCI_INDEX},
        timeout=30,
    )
    fetched = requests.get(_url(endpoint, repository, "manifests/multi"), timeout=30)
    images = ecr.describe_images(repositoryName=repository)["imageDetails"]

    assert before_child.status_code == 400
    assert _error_code(before_child) == "MANIFEST_BLOB_UNKNOWN"
    assert child_put.status_code == 201
    assert child_put.headers["Docker-Content-Digest"] == _digest(child)
    assert after_child.status_code == 201
    assert fetched.headers["Content-Type"] == OCI_INDEX
    assert fetched.content == index
    # ECR lists the platform manifest as an untagged image next to the index.
    assert {image["imageDigest"]: image.get("imageTags") for image in images} == {
        _digest(child): None,
        _digest(index): ["multi"],
    }


def test_tags_list_pages_and_delete(endpoint: str, repository: str, ecr) -> None:  # type: ignore[no-untyped-def]
    config = b"{}"
    _push_blob(endpoint, repository, config)
    first = _manifest(config, [])
    second = _manifest(config, [], DOCKER_MANIFEST)
    for tag, manifest in (("a", first), ("b", first), ("c", second)):
        response = requests.put(
            _url(endpoint, repository, f"manifests/{tag}"), data=manifest, timeout=30
        )
        assert response.status_code == 201, response.text

    page = requests.get(_url(endpoint, repository, "tags/list?n=2"), timeout=30)
    rest = requests.get(_url(endpoint, repository, "tags/list?n=2&last=b"), timeout=30)
    deleted = requests.delete(_url(endpoint, repository, f"manifests/{_digest(first)}"), timeout=30)
    after = requests.get(_url(endpoint, repository, "tags/list"), timeout=30)
    deleted_manifest = requests.get(_url(endpoint, repository, "manifests/a"), timeout=30)
    images = ecr.describe_images(repositoryName=repository)["imageDetails"]

    assert page.json() == {"name": f"{ACCOUNT}/{repository}", "tags": ["a", "b"]}
    assert page.headers["Link"] == f'</v2/{ACCOUNT}/{repository}/tags/list?n=2&last=b>; rel="next"'
    assert rest.json()["tags"] == ["c"]
    assert "Link" not in rest.headers
    assert deleted.status_code == 202
    assert after.json()["tags"] == ["c"]
    assert deleted_manifest.status_code == 404
    assert _error_code(deleted_manifest) == "MANIFEST_UNKNOWN"
    assert [image["imageDigest"] for image in images] == [_digest(second)]


def test_ecr_delete_hides_image(endpoint: str, repository: str, ecr) -> None:  # type: ignore[no-untyped-def]
    config = b"{}"
    _push_blob(endpoint, repository, config)
    manifest = _manifest(config, [])
    requests.put(_url(endpoint, repository, "manifests/v1"), data=manifest, timeout=30)

    ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageTag": "v1"}])
    response = requests.get(_url(endpoint, repository, "manifests/v1"), timeout=30)

    assert response.status_code == 404
    assert _error_code(response) == "MANIFEST_UNKNOWN"


def test_immutable_tag_rejected(endpoint: str, ecr) -> None:  # type: ignore[no-untyped-def]
    repository = unique_name("immutable")
    ecr.create_repository(repositoryName=repository, imageTagMutability="IMMUTABLE")
    config = b"{}"
    _push_blob(endpoint, repository, config)

    first = requests.put(
        _url(endpoint, repository, "manifests/v1"), data=_manifest(config, []), timeout=30
    )
    same_again = requests.put(
        _url(endpoint, repository, "manifests/v1"), data=_manifest(config, []), timeout=30
    )
    other = requests.put(
        _url(endpoint, repository, "manifests/v1"),
        data=_manifest(config, [], DOCKER_MANIFEST),
        timeout=30,
    )

    assert first.status_code == 201
    assert same_again.status_code == 201
    assert other.status_code == 400
    assert _error_code(other) == "TAG_INVALID"
    fetched = requests.get(_url(endpoint, repository, "manifests/v1"), timeout=30)
    assert fetched.headers["Docker-Content-Digest"] == _digest(_manifest(config, []))


def test_missing_repository_and_invalid_name(endpoint: str) -> None:
    missing = unique_name("missing")

    upload = requests.post(_url(endpoint, missing, "blobs/uploads/"), timeout=30)
    manifest = requests.get(_url(endpoint, missing, "manifests/latest"), timeout=30)
    invalid = requests.get(f"{endpoint}/v2/{ACCOUNT}/Upper/tags/list", timeout=30)

    assert upload.status_code == 404
    assert upload.json()["errors"][0] == {
        "code": "NAME_UNKNOWN",
        "message": f"The repository with name '{missing}' does not exist in the registry "
        f"with id '{ACCOUNT}'",
        "detail": {"name": f"{ACCOUNT}/{missing}"},
    }
    assert manifest.status_code == 404
    assert _error_code(manifest) == "NAME_UNKNOWN"
    assert invalid.status_code == 400
    assert _error_code(invalid) == "NAME_INVALID"


# docker push and pull --------------------------------------------------------------


def _docker(
    config_dir: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI with its own configuration folder (logins go there)."""
    environment = dict(os.environ, DOCKER_CONFIG=str(config_dir))
    return subprocess.run(
        ["docker", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


@pytest.fixture(scope="module")
def docker_cli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A configuration folder for the docker CLI; skip (or fail) when there is no CLI."""
    if shutil.which("docker") is None:
        message = "the docker CLI is not installed"
        if docker_required():
            pytest.fail(message)
        pytest.skip(message)
    return tmp_path_factory.mktemp("docker-config")


@pytest.fixture(scope="module")
def engine() -> Iterator[object]:
    """A docker-py client; skip (or fail) when the provided stand-in image is missing."""
    import docker
    import docker.errors

    docker_client = docker.from_env(timeout=120)
    try:
        docker_client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        docker_client.close()
        message = f"image {BASE_IMAGE} is missing; build it with scripts/build-images provided"
        if docker_required():
            pytest.fail(message)
        pytest.skip(message)
    yield docker_client
    docker_client.close()


@pytest.fixture
def local_tags(engine) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """Image tags a test created; each is removed by its exact name afterwards."""
    import docker.errors

    tags: list[str] = []
    yield tags
    for tag in tags:
        try:
            engine.images.remove(tag)
        except docker.errors.ImageNotFound:
            pass


def _build_image(engine, tag: str) -> str:  # type: ignore[no-untyped-def]
    """Build a one-layer image on top of the provided stand-in; return its id."""
    context = io.BytesIO()
    files = {
        "Dockerfile": f"FROM {BASE_IMAGE}\nCOPY marker /marker\n".encode(),
        "marker": uuid.uuid4().hex.encode(),
    }
    with tarfile.open(fileobj=context, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    context.seek(0)
    image, _ = engine.images.build(
        fileobj=context, custom_context=True, tag=tag, rm=True, network_mode="none"
    )
    return str(image.id)


@pytest.mark.docker
def test_docker_push_pull_round_trip(  # type: ignore[no-untyped-def]
    endpoint: str, repository: str, ecr, engine, docker_cli: Path, local_tags: list[str]
) -> None:
    address = endpoint.removeprefix("http://")
    built = f"lambdasim-test/registry:{uuid.uuid4().hex[:12]}"
    first = f"{address}/{ACCOUNT}/{repository}:v1"
    second = f"{address}/{ACCOUNT}/{repository}:v2"
    local_tags.extend([built, first, second])
    image_id = _build_image(engine, built)
    engine.images.get(built).tag(first)
    engine.images.get(built).tag(second)

    pushed = _docker(docker_cli, "push", first)
    assert pushed.returncode == 0, pushed.stderr + pushed.stdout
    again = _docker(docker_cli, "push", second)
    assert again.returncode == 0, again.stderr + again.stdout
    assert "Layer already exists" in again.stdout
    digest = next(
        word
        for line in pushed.stdout.splitlines()
        if "digest:" in line
        for word in line.split()
        if word.startswith("sha256:")
    )

    images = ecr.describe_images(repositoryName=repository)["imageDetails"]
    assert [image["imageDigest"] for image in images] == [digest]
    assert sorted(images[0]["imageTags"]) == ["v1", "v2"]

    for tag in (built, first, second):
        engine.images.remove(tag)
    pulled = _docker(docker_cli, "pull", first)
    assert pulled.returncode == 0, pulled.stderr + pulled.stdout
    image = engine.images.get(first)
    assert image.id == image_id
    assert f"{address}/{ACCOUNT}/{repository}@{digest}" in image.attrs["RepoDigests"]


@pytest.mark.docker
def test_docker_login_with_ecr_token(endpoint: str, ecr, docker_cli: Path) -> None:  # type: ignore[no-untyped-def]
    import base64

    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, password = base64.b64decode(token).decode().split(":", 1)
    address = endpoint.removeprefix("http://")

    login = _docker(docker_cli, "login", "-u", user, "--password-stdin", address, stdin=password)

    assert user == "AWS"
    assert login.returncode == 0, login.stderr
    assert "Login Succeeded" in login.stdout
    assert _docker(docker_cli, "logout", address).returncode == 0


@pytest.mark.docker
def test_docker_push_to_missing_repository(  # type: ignore[no-untyped-def]
    endpoint: str, engine, docker_cli: Path, local_tags: list[str]
) -> None:
    missing = unique_name("missing")
    target = f"{endpoint.removeprefix('http://')}/{ACCOUNT}/{missing}:v1"
    local_tags.append(target)
    engine.images.get(BASE_IMAGE).tag(target)

    pushed = _docker(docker_cli, "push", target)

    assert pushed.returncode != 0
    assert "name unknown" in pushed.stderr
    assert f"The repository with name '{missing}' does not exist" in pushed.stderr
    # The server keeps serving both the registry and the AWS APIs.
    assert requests.get(f"{endpoint}/v2/", timeout=30).status_code == 200
    assert "Functions" in client("lambda", endpoint).list_functions()
