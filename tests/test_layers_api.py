"""Layer operations of the Lambda API through boto3: shapes, listings, permissions, errors."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import client, unique_name

from lambdasim.testing import make_zip

pytestmark = pytest.mark.docker

ARN_PREFIX = "arn:aws:lambda:us-east-1:000000000000:layer:"
CREATED_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000")
LAYER_ZIP = make_zip({"python/shared.py": 'WHO = "A"\n'})


def error_of(call: Callable[[], Any]) -> tuple[int, str, str]:
    """Return the HTTP status, error code and message of a call that must fail."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


def publish(lam, name: str, **kwargs: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    kwargs.setdefault("Content", {"ZipFile": LAYER_ZIP})
    return lam.publish_layer_version(LayerName=name, **kwargs)


# Publishing ------------------------------------------------------------------------------


def test_publish_zipfile_shape(lam, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")
    published = publish(
        lam,
        name,
        Description="shared code",
        CompatibleRuntimes=["python3.12", "python3.11"],
        CompatibleArchitectures=["x86_64"],
        LicenseInfo="MIT",
    )

    assert published["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert published["LayerArn"] == f"{ARN_PREFIX}{name}"
    assert published["LayerVersionArn"] == f"{ARN_PREFIX}{name}:1"
    assert published["Version"] == 1
    assert published["Description"] == "shared code"
    assert CREATED_DATE.fullmatch(published["CreatedDate"])
    assert published["CompatibleRuntimes"] == ["python3.12", "python3.11"]
    assert published["CompatibleArchitectures"] == ["x86_64"]
    assert published["LicenseInfo"] == "MIT"
    content = published["Content"]
    assert content["CodeSha256"] == base64.b64encode(hashlib.sha256(LAYER_ZIP).digest()).decode()
    assert content["CodeSize"] == len(LAYER_ZIP)
    assert content["Location"] == f"{endpoint}/_lambdasim/layers/{name}/1/content"


def test_publish_leaves_out_unset_fields(lam) -> None:  # type: ignore[no-untyped-def]
    published = publish(lam, unique_name("layer"))

    assert published["Description"] == ""
    assert "CompatibleRuntimes" not in published
    assert "CompatibleArchitectures" not in published
    assert "LicenseInfo" not in published


def test_publish_keeps_empty_lists(lam) -> None:  # type: ignore[no-untyped-def]
    published = publish(
        lam, unique_name("layer"), CompatibleRuntimes=[], CompatibleArchitectures=[]
    )

    assert published["CompatibleRuntimes"] == []
    assert published["CompatibleArchitectures"] == []


def test_content_location_serves_zip(lam, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    location = publish(lam, unique_name("layer"))["Content"]["Location"]

    assert location.startswith(f"{endpoint}/")
    with urllib.request.urlopen(location, timeout=30) as response:
        assert response.read() == LAYER_ZIP


def test_publish_from_s3(lam, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    s3 = client("s3", endpoint)
    bucket = unique_name("layer-bucket")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="layers/shared.zip", Body=LAYER_ZIP)

    published = publish(
        lam, unique_name("layer"), Content={"S3Bucket": bucket, "S3Key": "layers/shared.zip"}
    )

    assert published["Version"] == 1
    assert published["Content"]["CodeSize"] == len(LAYER_ZIP)
    assert published["Content"]["CodeSha256"] == (
        base64.b64encode(hashlib.sha256(LAYER_ZIP).digest()).decode()
    )


def test_publish_from_missing_s3_key(lam, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    s3 = client("s3", endpoint)
    bucket = unique_name("layer-bucket")
    s3.create_bucket(Bucket=bucket)

    status, code, message = error_of(
        lambda: publish(
            lam, unique_name("layer"), Content={"S3Bucket": bucket, "S3Key": "missing.zip"}
        )
    )

    assert (status, code) == (400, "InvalidParameterValueException")
    assert message == (
        "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The "
        "specified key does not exist."
    )


def test_publish_bad_zip(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")

    status, code, message = error_of(
        lambda: publish(lam, name, Content={"ZipFile": b"this is not a zip"})
    )

    assert (status, code) == (400, "InvalidParameterValueException")
    assert message == (
        "Could not unzip uploaded file. Please check your file, then try to upload again."
    )
    assert publish(lam, name)["Version"] == 1


def test_publish_invalid_name(lam) -> None:  # type: ignore[no-untyped-def]
    status, code, message = error_of(lambda: publish(lam, "bad.name"))

    assert (status, code) == (400, "ValidationException")
    assert message.startswith(
        "1 validation error detected: Value 'bad.name' at 'layerName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
    )


def test_publish_invalid_runtime_and_architecture(lam) -> None:  # type: ignore[no-untyped-def]
    status, code, message = error_of(
        lambda: publish(
            lam,
            unique_name("layer"),
            CompatibleRuntimes=["invalidruntime", "python3.12"],
            CompatibleArchitectures=["invalidarch"],
        )
    )

    assert (status, code) == (400, "ValidationException")
    assert message.startswith(
        "2 validation errors detected: Value '[invalidruntime, python3.12]' at "
        "'compatibleRuntimes' failed to satisfy constraint: Member must satisfy enum value set: ["
    )
    assert message.endswith(
        "; Value '[invalidarch]' at 'compatibleArchitectures' failed to satisfy constraint: "
        "Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64]]"
    )


def test_publish_by_layer_arn(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")

    published = publish(lam, f"{ARN_PREFIX}{name}")

    assert published["LayerVersionArn"] == f"{ARN_PREFIX}{name}:1"


# Reading ---------------------------------------------------------------------------------


def test_get_layer_version_matches_publish(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")
    published = publish(lam, name, CompatibleRuntimes=["python3.12"], LicenseInfo="MIT")
    del published["ResponseMetadata"]

    by_name = lam.get_layer_version(LayerName=name, VersionNumber=1)
    by_arn = lam.get_layer_version_by_arn(Arn=published["LayerVersionArn"])
    by_layer_arn = lam.get_layer_version(LayerName=published["LayerArn"], VersionNumber=1)

    for response in (by_name, by_arn, by_layer_arn):
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
        del response["ResponseMetadata"]
        assert response == published


def test_get_missing_layer_version(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")
    publish(lam, name)

    for call in (
        lambda: lam.get_layer_version(LayerName=name, VersionNumber=2),
        lambda: lam.get_layer_version(LayerName=unique_name("absent"), VersionNumber=1),
        lambda: lam.get_layer_version_by_arn(Arn=f"{ARN_PREFIX}{name}:2"),
    ):
        status, code, message = error_of(call)
        assert (status, code) == (404, "ResourceNotFoundException")
        assert message == "The resource you requested does not exist."


def test_version_below_one(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")
    publish(lam, name)

    for call in (
        lambda: lam.get_layer_version(LayerName=name, VersionNumber=0),
        lambda: lam.get_layer_version(LayerName=name, VersionNumber=-1),
        lambda: lam.delete_layer_version(LayerName=name, VersionNumber=-1),
    ):
        status, code, message = error_of(call)
        assert (status, code) == (400, "InvalidParameterValueException")
        assert message == "Layer Version Cannot be less than 1"


def test_get_by_arn_without_version(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")
    layer_arn = publish(lam, name)["LayerArn"]

    status, code, message = error_of(lambda: lam.get_layer_version_by_arn(Arn=layer_arn))

    assert (status, code) == (400, "ValidationException")
    assert message == (
        f"1 validation error detected: Value '{layer_arn}' at 'arn' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
        r"arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\d{1}:\d{12}:"
        r"layer:[a-zA-Z0-9-_]+:[0-9]+"
    )


# Listing ---------------------------------------------------------------------------------


def test_list_layer_versions_newest_first(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")
    for _ in range(3):
        publish(lam, name, CompatibleRuntimes=["python3.12"])

    listed = lam.list_layer_versions(LayerName=name)["LayerVersions"]

    assert [item["Version"] for item in listed] == [3, 2, 1]
    assert listed[0] == {
        "LayerVersionArn": f"{ARN_PREFIX}{name}:3",
        "Version": 3,
        "Description": "",
        "CreatedDate": listed[0]["CreatedDate"],
        "CompatibleRuntimes": ["python3.12"],
    }


def test_list_layer_versions_filters(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")
    publish(lam, name, CompatibleRuntimes=["python3.12"], CompatibleArchitectures=["x86_64"])
    publish(lam, name, CompatibleRuntimes=["nodejs20.x"], CompatibleArchitectures=["arm64"])
    publish(lam, name)

    def versions(**filters: str) -> list[int]:
        listed = lam.list_layer_versions(LayerName=name, **filters)["LayerVersions"]
        return [item["Version"] for item in listed]

    assert versions() == [3, 2, 1]
    assert versions(CompatibleRuntime="python3.12") == [1]
    assert versions(CompatibleArchitecture="arm64") == [2]
    assert versions(CompatibleRuntime="python3.12", CompatibleArchitecture="arm64") == []


def test_list_layer_versions_pages(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")
    for _ in range(5):
        publish(lam, name)

    seen: list[int] = []
    pages = 0
    kwargs: dict[str, Any] = {"LayerName": name, "MaxItems": 2}
    while True:
        response = lam.list_layer_versions(**kwargs)
        pages += 1
        seen.extend(item["Version"] for item in response["LayerVersions"])
        if "NextMarker" not in response:
            break
        kwargs["Marker"] = response["NextMarker"]

    assert seen == [5, 4, 3, 2, 1]
    assert pages == 3


def test_list_versions_of_missing_layer(lam) -> None:  # type: ignore[no-untyped-def]
    listed = lam.list_layer_versions(LayerName=unique_name("absent"))

    assert listed["LayerVersions"] == []
    assert "NextMarker" not in listed


def test_list_layers_latest_matching(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")
    publish(lam, name, CompatibleRuntimes=["python3.12"], Description="one")
    publish(lam, name, CompatibleRuntimes=["nodejs20.x"], Description="two")

    def entry(**filters: str) -> dict[str, Any] | None:
        layers = lam.list_layers(**filters)["Layers"]
        return next((layer for layer in layers if layer["LayerName"] == name), None)

    latest = entry()
    assert latest is not None
    assert latest["LayerArn"] == f"{ARN_PREFIX}{name}"
    assert latest["LatestMatchingVersion"]["Version"] == 2
    assert latest["LatestMatchingVersion"]["Description"] == "two"
    python = entry(CompatibleRuntime="python3.12")
    assert python is not None
    assert python["LatestMatchingVersion"]["Version"] == 1
    assert entry(CompatibleRuntime="java21") is None
    assert entry(CompatibleArchitecture="arm64") is None


def test_list_layers_pages(lam) -> None:  # type: ignore[no-untyped-def]
    prefix = unique_name("paged")
    names = [f"{prefix}-{index}" for index in range(3)]
    for name in names:
        publish(lam, name)

    seen: list[str] = []
    kwargs: dict[str, Any] = {"MaxItems": 1}
    while True:
        response = lam.list_layers(**kwargs)
        assert len(response["Layers"]) <= 1
        seen.extend(layer["LayerName"] for layer in response["Layers"])
        if "NextMarker" not in response:
            break
        kwargs["Marker"] = response["NextMarker"]

    assert [name for name in seen if name.startswith(prefix)] == names
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen))


def test_list_layers_invalid_filters(lam) -> None:  # type: ignore[no-untyped-def]
    status, code, message = error_of(lambda: lam.list_layers(CompatibleRuntime="nosuchruntime"))
    assert (status, code) == (400, "ValidationException")
    assert message.startswith(
        "1 validation error detected: Value 'nosuchruntime' at 'compatibleRuntime' failed to "
        "satisfy constraint: Member must satisfy enum value set: ["
    )

    status, code, message = error_of(lambda: lam.list_layers(CompatibleArchitecture="mips"))
    assert (status, code) == (400, "ValidationException")
    assert message == (
        "1 validation error detected: Value 'mips' at 'compatibleArchitecture' failed to "
        "satisfy constraint: Member must satisfy enum value set: [x86_64, arm64]"
    )


def test_list_layers_max_items_above_limit(lam) -> None:  # type: ignore[no-untyped-def]
    status, code, message = error_of(lambda: lam.list_layers(MaxItems=51))

    assert (status, code) == (400, "ValidationException")
    assert message == (
        "1 validation error detected: Value '51' at 'maxItems' failed to satisfy constraint: "
        "Member must have value less than or equal to 50"
    )


# Deleting --------------------------------------------------------------------------------


def test_delete_keeps_numbering(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")
    publish(lam, name)
    publish(lam, name)

    lam.delete_layer_version(LayerName=name, VersionNumber=1)
    assert [v["Version"] for v in lam.list_layer_versions(LayerName=name)["LayerVersions"]] == [2]
    lam.delete_layer_version(LayerName=name, VersionNumber=2)
    assert lam.list_layer_versions(LayerName=name)["LayerVersions"] == []
    assert all(layer["LayerName"] != name for layer in lam.list_layers()["Layers"])

    assert publish(lam, name)["Version"] == 3


def test_delete_is_idempotent(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")
    publish(lam, name)

    for layer_name, version in ((name, 1), (name, 1), (name, 7), (unique_name("absent"), 1)):
        response = lam.delete_layer_version(LayerName=layer_name, VersionNumber=version)
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 204

    status, code, _ = error_of(lambda: lam.get_layer_version(LayerName=name, VersionNumber=1))
    assert (status, code) == (404, "ResourceNotFoundException")


def test_deleted_content_not_served(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")
    location = publish(lam, name)["Content"]["Location"]
    lam.delete_layer_version(LayerName=name, VersionNumber=1)

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(location, timeout=30)

    assert caught.value.code == 404


# Permissions -----------------------------------------------------------------------------


def test_permission_lifecycle(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")
    version_arn = publish(lam, name)["LayerVersionArn"]

    added = lam.add_layer_version_permission(
        LayerName=name,
        VersionNumber=1,
        StatementId="s1",
        Action="lambda:GetLayerVersion",
        Principal="*",
    )
    assert added["ResponseMetadata"]["HTTPStatusCode"] == 201
    s1 = {
        "Sid": "s1",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "lambda:GetLayerVersion",
        "Resource": version_arn,
    }
    assert json.loads(added["Statement"]) == s1

    policy = lam.get_layer_version_policy(LayerName=name, VersionNumber=1)
    assert policy["RevisionId"] == added["RevisionId"]
    assert json.loads(policy["Policy"]) == {
        "Version": "2012-10-17",
        "Id": "default",
        "Statement": [s1],
    }

    second = lam.add_layer_version_permission(
        LayerName=name,
        VersionNumber=1,
        StatementId="s2",
        Action="lambda:GetLayerVersion",
        Principal="123456789012",
        RevisionId=policy["RevisionId"],
    )
    assert second["RevisionId"] != added["RevisionId"]
    assert json.loads(second["Statement"])["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    statements = json.loads(lam.get_layer_version_policy(LayerName=name, VersionNumber=1)["Policy"])
    assert [s["Sid"] for s in statements["Statement"]] == ["s1", "s2"]

    removed = lam.remove_layer_version_permission(
        LayerName=name, VersionNumber=1, StatementId="s2", RevisionId=second["RevisionId"]
    )
    assert removed["ResponseMetadata"]["HTTPStatusCode"] == 204
    after = lam.get_layer_version_policy(LayerName=name, VersionNumber=1)
    assert json.loads(after["Policy"])["Statement"] == [s1]
    assert after["RevisionId"] not in (added["RevisionId"], second["RevisionId"])


def test_permission_organization_condition(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")
    publish(lam, name)

    added = lam.add_layer_version_permission(
        LayerName=name,
        VersionNumber=1,
        StatementId="org",
        Action="lambda:GetLayerVersion",
        Principal="*",
        OrganizationId="o-abcdefghij",
    )

    assert json.loads(added["Statement"])["Condition"] == {
        "StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}
    }


def test_permission_errors(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")
    publish(lam, name)

    def add(**overrides: Any) -> Callable[[], Any]:
        arguments: dict[str, Any] = {
            "LayerName": name,
            "VersionNumber": 1,
            "StatementId": "s1",
            "Action": "lambda:GetLayerVersion",
            "Principal": "*",
        }
        arguments.update(overrides)
        return lambda: lam.add_layer_version_permission(**arguments)

    status, code, message = error_of(
        lambda: lam.get_layer_version_policy(LayerName=name, VersionNumber=1)
    )
    assert (status, code) == (404, "ResourceNotFoundException")
    assert message == "No policy is associated with the given resource."

    add()()

    status, code, message = error_of(add(Action="*", StatementId="s2"))
    assert (status, code) == (400, "ValidationException")
    assert message == (
        "1 validation error detected: Value '*' at 'action' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: lambda:GetLayerVersion"
    )

    status, code, message = error_of(add())
    assert (status, code) == (409, "ResourceConflictException")
    assert message == (
        "The statement id (s1) provided already exists. Please provide a new statement id, or "
        "remove the existing statement."
    )

    revision_mismatch = (
        "The Revision Id provided does not match the latest Revision Id. Call the "
        "GetLayerPolicy API to retrieve the latest Revision Id"
    )
    status, code, message = error_of(add(StatementId="s2", RevisionId="wrong"))
    assert (status, code) == (412, "PreconditionFailedException")
    assert message == revision_mismatch
    status, code, message = error_of(
        lambda: lam.remove_layer_version_permission(
            LayerName=name, VersionNumber=1, StatementId="s1", RevisionId="wrong"
        )
    )
    assert (status, code) == (412, "PreconditionFailedException")
    assert message == revision_mismatch

    status, code, message = error_of(
        lambda: lam.remove_layer_version_permission(
            LayerName=name, VersionNumber=1, StatementId="nosuchstatement"
        )
    )
    assert (status, code) == (404, "ResourceNotFoundException")
    assert message == "Statement nosuchstatement is not found in resource policy."

    status, code, message = error_of(add(Principal="someone", StatementId="s3"))
    assert (status, code) == (400, "ValidationException")
    assert "at 'principal' failed to satisfy constraint" in message


def test_permission_on_missing_version(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")
    publish(lam, name)
    absent = unique_name("absent")

    for layer_name, version in ((name, 2), (absent, 1)):
        expected = f"Layer version {ARN_PREFIX}{layer_name}:{version} does not exist."
        calls = (
            partial(
                lam.add_layer_version_permission,
                LayerName=layer_name,
                VersionNumber=version,
                StatementId="s1",
                Action="lambda:GetLayerVersion",
                Principal="*",
            ),
            partial(lam.get_layer_version_policy, LayerName=layer_name, VersionNumber=version),
            partial(
                lam.remove_layer_version_permission,
                LayerName=layer_name,
                VersionNumber=version,
                StatementId="s1",
            ),
        )
        for call in calls:
            status, code, message = error_of(call)
            assert (status, code) == (404, "ResourceNotFoundException")
            assert message == expected


def test_remove_last_statement_removes_policy(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("layer")
    publish(lam, name)
    lam.add_layer_version_permission(
        LayerName=name,
        VersionNumber=1,
        StatementId="only",
        Action="lambda:GetLayerVersion",
        Principal="*",
    )

    lam.remove_layer_version_permission(LayerName=name, VersionNumber=1, StatementId="only")

    status, code, _ = error_of(
        lambda: lam.get_layer_version_policy(LayerName=name, VersionNumber=1)
    )
    assert (status, code) == (404, "ResourceNotFoundException")
