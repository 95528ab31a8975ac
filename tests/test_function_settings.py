"""Tags, resource policies and asynchronous invocation settings, through boto3.

Also the control-plane parts of AWS's not-found messages and function
reference forms: every API names a missing function in its own words, and
accepts a name, a full ARN, a partial ARN and `name:qualifier`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import botocore
import pytest
import trio
from botocore.exceptions import ClientError
from conftest import client, create_python_function, unique_name

import lambdasim
from lambdasim.testing import FakeBackend, make_zip

pytestmark = pytest.mark.docker

REGION = "us-east-1"
ACCOUNT = "000000000000"
ARN_PREFIX = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
SOURCE = "def handler(event, context):\n    return event\n"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:settings-failures"


def _new_function(lam, **kwargs: Any) -> str:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, SOURCE, **kwargs)
    lam.get_waiter("function_active_v2").wait(FunctionName=name)
    return name


def _error(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = raised.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def raw_error(  # type: ignore[no-untyped-def]
    lam, operation: str, **params: Any
) -> tuple[int, Mapping[str, str], dict]:
    """Call an operation that must fail and return its HTTP status, headers and JSON body.

    The headers are botocore's case-insensitive mapping.
    """
    captured: dict[str, Any] = {}

    def capture(response_dict: dict[str, Any], **kwargs: Any) -> None:
        captured.update(response_dict)

    event = f"before-parse.lambda.{operation}"
    lam.meta.events.register(event, capture)
    try:
        with pytest.raises(ClientError):
            getattr(lam, botocore.xform_name(operation))(**params)
    finally:
        lam.meta.events.unregister(event, capture)
    return captured["status_code"], captured["headers"], json.loads(captured["body"])


def assert_not_found(  # type: ignore[no-untyped-def]
    lam, operation: str, message: str, **params: Any
) -> None:
    status, headers, body = raw_error(lam, operation, **params)
    assert status == 404
    assert headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    assert body == {"Type": "User", "Message": message}


# Tags ------------------------------------------------------------------------------------


def test_tag_lifecycle(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    arn = ARN_PREFIX + name

    assert lam.list_tags(Resource=arn)["Tags"] == {}
    response = lam.tag_resource(Resource=arn, Tags={"A": "tag-a"})
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    lam.tag_resource(Resource=arn, Tags={"B": "tag-b", "C": "tag-c"})
    lam.tag_resource(Resource=arn, Tags={"C": "tag-c-new", "D": "tag-d"})
    assert lam.list_tags(Resource=arn)["Tags"] == {
        "A": "tag-a",
        "B": "tag-b",
        "C": "tag-c-new",
        "D": "tag-d",
    }

    response = lam.untag_resource(Resource=arn, TagKeys=["A", "C"])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert lam.list_tags(Resource=arn)["Tags"] == {"B": "tag-b", "D": "tag-d"}
    lam.untag_resource(Resource=arn, TagKeys=["missing", "B", "D"])
    assert lam.list_tags(Resource=arn)["Tags"] == {}


def test_tags_at_create(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam, Tags={"team": "blue"})

    assert lam.list_tags(Resource=ARN_PREFIX + name)["Tags"] == {"team": "blue"}


def test_get_function_shows_tags(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    lam.tag_resource(Resource=ARN_PREFIX + name, Tags={"team": "blue"})

    assert lam.get_function(FunctionName=name)["Tags"] == {"team": "blue"}


def test_tag_errors(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    arn = ARN_PREFIX + name

    with pytest.raises(ClientError) as raised:
        lam.tag_resource(Resource="arn:aws:something", Tags={"a": "b"})
    code, message, status = _error(raised)
    assert (code, status) == ("ValidationException", 400)
    assert message.startswith(
        "1 validation error detected: Value 'arn:aws:something' at 'resource' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: "
    )

    missing = ARN_PREFIX + unique_name("missing")
    for operation, params in (
        ("TagResource", {"Tags": {"a": "b"}}),
        ("UntagResource", {"TagKeys": ["a"]}),
        ("ListTags", {}),
    ):
        assert_not_found(
            lam, operation, f"Function not found: {missing}", Resource=missing, **params
        )

    with pytest.raises(ClientError) as raised:
        lam.tag_resource(Resource=f"{arn}:1", Tags={"a": "b"})
    assert _error(raised) == (
        "InvalidParameterValueException",
        "Tags on function aliases and versions are not supported. Please specify a function ARN.",
        400,
    )

    with pytest.raises(ClientError) as raised:
        lam.tag_resource(Resource=arn, Tags={})
    assert _error(raised) == (
        "InvalidParameterValueException",
        "An error occurred and the request cannot be processed.",
        400,
    )

    with pytest.raises(ClientError) as raised:
        lam.untag_resource(Resource=arn, TagKeys=[])
    assert _error(raised) == (
        "ValidationException",
        "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: "
        "Member must not be null",
        400,
    )


def test_tag_limits(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    arn = ARN_PREFIX + name
    too_many = "Number of tags exceeds resource tag limit."

    with pytest.raises(ClientError) as raised:
        lam.tag_resource(Resource=arn, Tags={f"{i}_key": f"{i}_value" for i in range(51)})
    assert _error(raised) == ("InvalidParameterValueException", too_many, 400)

    lam.tag_resource(Resource=arn, Tags={f"{i}_key": f"{i}_value" for i in range(50)})
    with pytest.raises(ClientError) as raised:
        lam.tag_resource(Resource=arn, Tags={"one_more": "x"})
    assert _error(raised) == ("InvalidParameterValueException", too_many, 400)
    # Overwriting an existing key stays within the limit.
    lam.tag_resource(Resource=arn, Tags={"0_key": "changed"})
    assert len(lam.list_tags(Resource=arn)["Tags"]) == 50

    lam.untag_resource(Resource=arn, TagKeys=[f"{i}_key" for i in range(50)])
    lam.tag_resource(Resource=arn, Tags={"k" * 128: "v" * 256})

    with pytest.raises(ClientError) as raised:
        lam.tag_resource(Resource=arn, Tags={"k" * 129: "v"})
    code, message, _ = _error(raised)
    assert code == "ValidationException"
    assert "at 'tags' failed to satisfy constraint: Map keys must satisfy constraint" in message
    assert "Member must have length less than or equal to 128" in message

    with pytest.raises(ClientError) as raised:
        lam.tag_resource(Resource=arn, Tags={"k": "v" * 257})
    code, message, _ = _error(raised)
    assert code == "ValidationException"
    assert "at 'tags' failed to satisfy constraint: Map value must satisfy constraint" in message
    assert "Member must have length less than or equal to 256" in message

    with pytest.raises(ClientError) as raised:
        lam.tag_resource(Resource=arn, Tags={"bad!key": "v"})
    assert _error(raised)[0] == "ValidationException"

    with pytest.raises(ClientError) as raised:
        lam.tag_resource(Resource=arn, Tags={"AWS:team": "blue"})
    code, message, _ = _error(raised)
    assert code == "InvalidParameterValueException"
    assert "aws:" in message
    assert lam.list_tags(Resource=arn)["Tags"] == {"k" * 128: "v" * 256}


def test_tags_dropped_with_function(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    lam.tag_resource(Resource=ARN_PREFIX + name, Tags={"team": "blue"})
    lam.delete_function(FunctionName=name)
    _new_function(lam, name=name)

    assert lam.list_tags(Resource=ARN_PREFIX + name)["Tags"] == {}


# Resource policies -------------------------------------------------------------------------


def test_add_permission_statement(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)

    response = lam.add_permission(
        FunctionName=name,
        StatementId="s3",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn="arn:aws:s3:::my-bucket",
    )

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 201
    statement = {
        "Sid": "s3",
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": ARN_PREFIX + name,
        "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::my-bucket"}},
    }
    assert json.loads(response["Statement"]) == statement
    policy = lam.get_policy(FunctionName=name)
    assert json.loads(policy["Policy"]) == {
        "Version": "2012-10-17",
        "Id": "default",
        "Statement": [statement],
    }
    assert policy["RevisionId"]


def test_permission_principals_and_conditions(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    role = f"arn:aws:iam::{ACCOUNT}:role/caller"

    def add(sid: str, principal: str, **params: Any) -> dict:
        response = lam.add_permission(
            FunctionName=name, StatementId=sid, Action="lambda:*", Principal=principal, **params
        )
        return json.loads(response["Statement"])

    account = add("account", "111122223333", SourceAccount=ACCOUNT)
    assert account["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    assert account["Condition"] == {"StringEquals": {"AWS:SourceAccount": ACCOUNT}}

    assert add("role", role)["Principal"] == {"AWS": role}
    assert "Condition" not in add("role2", role)

    org = add("org", "*", PrincipalOrgID="o-abcdefghij")
    assert org["Principal"] == "*"
    assert org["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}

    api_arn = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/*"
    url = add("url", "*", FunctionUrlAuthType="NONE", SourceArn=api_arn)
    assert url["Condition"] == {
        "StringEquals": {"lambda:FunctionUrlAuthType": "NONE"},
        "ArnLike": {"AWS:SourceArn": api_arn},
    }

    sids = [s["Sid"] for s in json.loads(lam.get_policy(FunctionName=name)["Policy"])["Statement"]]
    assert sids == ["account", "role", "role2", "org", "url"]


def test_duplicate_statement_id(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    params = {
        "FunctionName": name,
        "StatementId": "same",
        "Action": "lambda:InvokeFunction",
        "Principal": "sns.amazonaws.com",
    }
    lam.add_permission(**params)

    with pytest.raises(ClientError) as raised:
        lam.add_permission(**params)

    assert _error(raised) == (
        "ResourceConflictException",
        "The statement id (same) provided already exists. Please provide a new statement id, "
        "or remove the existing statement.",
        409,
    )


def test_remove_permission(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    assert_not_found(
        lam,
        "RemovePermission",
        "No policy is associated with the given resource.",
        FunctionName=name,
        StatementId="none",
    )
    for sid in ("first", "second"):
        lam.add_permission(
            FunctionName=name, StatementId=sid, Action="lambda:InvokeFunction", Principal="*"
        )

    response = lam.remove_permission(FunctionName=name, StatementId="first")

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    statements = json.loads(lam.get_policy(FunctionName=name)["Policy"])["Statement"]
    assert [s["Sid"] for s in statements] == ["second"]
    assert_not_found(
        lam,
        "RemovePermission",
        "Statement non-existent is not found in resource policy.",
        FunctionName=name,
        StatementId="non-existent",
    )
    lam.remove_permission(FunctionName=name, StatementId="second")
    assert_not_found(
        lam, "GetPolicy", "The resource you requested does not exist.", FunctionName=name
    )


def test_policy_revision_id(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    first = {"Action": "lambda:InvokeFunction", "Principal": "events.amazonaws.com"}
    lam.add_permission(FunctionName=name, StatementId="one", **first)
    revision = lam.get_policy(FunctionName=name)["RevisionId"]

    with pytest.raises(ClientError) as raised:
        lam.add_permission(FunctionName=name, StatementId="two", RevisionId="stale", **first)
    code, _, status = _error(raised)
    assert (code, status) == ("PreconditionFailedException", 412)

    lam.add_permission(FunctionName=name, StatementId="two", RevisionId=revision, **first)
    changed = lam.get_policy(FunctionName=name)["RevisionId"]
    assert changed != revision
    with pytest.raises(ClientError) as raised:
        lam.remove_permission(FunctionName=name, StatementId="one", RevisionId=revision)
    assert _error(raised)[0] == "PreconditionFailedException"
    lam.remove_permission(FunctionName=name, StatementId="one", RevisionId=changed)


def test_permission_qualifiers(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    params = {"Action": "lambda:InvokeFunction", "Principal": "sqs.amazonaws.com"}

    on_version = lam.add_permission(FunctionName=name, Qualifier="1", StatementId="v", **params)
    on_alias = lam.add_permission(FunctionName=f"{name}:live", StatementId="a", **params)

    assert json.loads(on_version["Statement"])["Resource"] == f"{ARN_PREFIX}{name}:1"
    assert json.loads(on_alias["Statement"])["Resource"] == f"{ARN_PREFIX}{name}:live"
    alias_policy = json.loads(lam.get_policy(FunctionName=name, Qualifier="live")["Policy"])
    assert [s["Sid"] for s in alias_policy["Statement"]] == ["a"]
    assert_not_found(
        lam, "GetPolicy", "The resource you requested does not exist.", FunctionName=name
    )

    with pytest.raises(ClientError) as raised:
        lam.add_permission(FunctionName=name, Qualifier="$LATEST", StatementId="l", **params)
    assert _error(raised) == (
        "InvalidParameterValueException",
        "We currently do not support adding policies for $LATEST.",
        400,
    )
    assert_not_found(
        lam,
        "AddPermission",
        f"Function not found: {ARN_PREFIX}{name}:1221",
        FunctionName=name,
        Qualifier="1221",
        StatementId="x",
        **params,
    )
    with pytest.raises(ClientError) as raised:
        lam.get_policy(FunctionName=f"{name}:1", Qualifier="live")
    assert _error(raised) == (
        "InvalidParameterValueException",
        "The derived qualifier from the function name does not match the specified qualifier.",
        400,
    )


def test_permission_errors(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    missing = unique_name("missing")

    with pytest.raises(ClientError) as raised:
        lam.add_permission(
            FunctionName=name, StatementId="p", Action="lambda:InvokeFunction", Principal="me"
        )
    assert _error(raised) == (
        "InvalidParameterValueException",
        "The provided principal was invalid. Please check the principal and try again.",
        400,
    )

    with pytest.raises(ClientError) as raised:
        lam.add_permission(FunctionName=name, StatementId="p", Action="s3:Get", Principal="*")
    code, message, _ = _error(raised)
    assert code == "ValidationException"
    assert message.startswith("1 validation error detected: Value 's3:Get' at 'action'")

    with pytest.raises(ClientError) as raised:
        lam.add_permission(FunctionName=name, StatementId="a b", Action="lambda:*", Principal="*")
    assert _error(raised)[0] == "ValidationException"

    assert_not_found(
        lam,
        "AddPermission",
        f"Function not found: {ARN_PREFIX}{missing}",
        FunctionName=missing,
        StatementId="p",
        Action="lambda:*",
        Principal="*",
    )
    assert_not_found(
        lam, "GetPolicy", f"Function not found: {ARN_PREFIX}{missing}", FunctionName=missing
    )


def test_policy_name_forms(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    forms = [name, ARN_PREFIX + name, f"{ACCOUNT}:function:{name}"]

    for index, form in enumerate(forms):
        lam.add_permission(
            FunctionName=form, StatementId=f"s{index}", Action="lambda:*", Principal="*"
        )

    for form in forms:
        statements = json.loads(lam.get_policy(FunctionName=form)["Policy"])["Statement"]
        assert [s["Sid"] for s in statements] == ["s0", "s1", "s2"]


def test_policy_dropped_with_function(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    lam.add_permission(FunctionName=name, StatementId="s", Action="lambda:*", Principal="*")
    lam.delete_function(FunctionName=name)
    _new_function(lam, name=name)

    assert_not_found(
        lam, "GetPolicy", "The resource you requested does not exist.", FunctionName=name
    )


# Asynchronous invocation settings ------------------------------------------------------------


def test_put_get_event_invoke_config(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)

    put = lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": QUEUE_ARN}},
    )
    got = lam.get_function_event_invoke_config(FunctionName=name)

    for response in (put, got):
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert response["FunctionArn"] == f"{ARN_PREFIX}{name}:$LATEST"
        assert response["MaximumRetryAttempts"] == 0
        assert "MaximumEventAgeInSeconds" not in response
        assert response["DestinationConfig"] == {
            "OnSuccess": {},
            "OnFailure": {"Destination": QUEUE_ARN},
        }
    last_modified = lam.get_function_event_invoke_config(FunctionName=name)["LastModified"]
    assert last_modified.year >= 2024


def test_event_invoke_last_modified_is_epoch(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=60)
    captured: dict[str, Any] = {}

    def capture(response_dict: dict[str, Any], **kwargs: Any) -> None:
        captured.update(response_dict)

    event = "before-parse.lambda.GetFunctionEventInvokeConfig"
    lam.meta.events.register(event, capture)
    try:
        lam.get_function_event_invoke_config(FunctionName=name)
    finally:
        lam.meta.events.unregister(event, capture)

    last_modified = json.loads(captured["body"])["LastModified"]
    assert isinstance(last_modified, float)
    assert last_modified > 1.7e9


def test_put_replaces_update_merges(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    other = _new_function(lam)
    other_arn = ARN_PREFIX + other
    lam.put_function_event_invoke_config(
        FunctionName=name,
        MaximumRetryAttempts=2,
        MaximumEventAgeInSeconds=60,
        DestinationConfig={"OnSuccess": {"Destination": other_arn}},
    )

    replaced = lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    assert replaced["MaximumRetryAttempts"] == 1
    assert "MaximumEventAgeInSeconds" not in replaced
    assert replaced["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}

    merged = lam.update_function_event_invoke_config(
        FunctionName=name,
        MaximumEventAgeInSeconds=3600,
        DestinationConfig={"OnFailure": {"Destination": QUEUE_ARN}},
    )
    assert merged["MaximumRetryAttempts"] == 1
    assert merged["MaximumEventAgeInSeconds"] == 3600
    assert merged["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {"Destination": QUEUE_ARN}}

    merged = lam.update_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": other_arn}}
    )
    assert merged["DestinationConfig"] == {
        "OnSuccess": {"Destination": other_arn},
        "OnFailure": {"Destination": QUEUE_ARN},
    }
    got = lam.get_function_event_invoke_config(FunctionName=name)
    assert got["MaximumEventAgeInSeconds"] == 3600


def test_event_invoke_config_limits(endpoint: str, lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    # boto3 would reject values below the model's minimum before sending them.
    unvalidated = client("lambda", endpoint, parameter_validation=False)
    cases = [
        ("MaximumRetryAttempts", 3, "maximumRetryAttempts", "less than or equal to 2"),
        ("MaximumRetryAttempts", -1, "maximumRetryAttempts", "greater than or equal to 0"),
        ("MaximumEventAgeInSeconds", 59, "maximumEventAgeInSeconds", "greater than or equal to 60"),
        (
            "MaximumEventAgeInSeconds",
            21601,
            "maximumEventAgeInSeconds",
            "less than or equal to 21600",
        ),
    ]
    for parameter, value, member, bound in cases:
        with pytest.raises(ClientError) as raised:
            unvalidated.put_function_event_invoke_config(FunctionName=name, **{parameter: value})
        assert _error(raised) == (
            "ValidationException",
            f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
            f"constraint: Member must have value {bound}",
            400,
        )

    for retries, age in ((0, 60), (2, 21600)):
        response = lam.put_function_event_invoke_config(
            FunctionName=name, MaximumRetryAttempts=retries, MaximumEventAgeInSeconds=age
        )
        assert (response["MaximumRetryAttempts"], response["MaximumEventAgeInSeconds"]) == (
            retries,
            age,
        )

    with pytest.raises(ClientError) as raised:
        lam.put_function_event_invoke_config(FunctionName=name)
    assert _error(raised) == (
        "InvalidParameterValueException",
        "You must specify at least one of error handling or destination setting.",
        400,
    )


def test_destination_validation(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    arn = ARN_PREFIX + name
    missing_arn = ARN_PREFIX + unique_name("missing")

    def put_error(destination_config: dict) -> tuple[str, str, int]:
        with pytest.raises(ClientError) as raised:
            lam.put_function_event_invoke_config(
                FunctionName=name, DestinationConfig=destination_config
            )
        return _error(raised)

    assert put_error({"OnSuccess": {"Destination": missing_arn}}) == (
        "InvalidParameterValueException",
        f"The destination ARN {missing_arn} is invalid.",
        400,
    )
    assert put_error({"OnFailure": {"Destination": arn}}) == (
        "InvalidParameterValueException",
        "You can't specify the function as a destination for itself.",
        400,
    )
    iam_arn = f"arn:aws:iam:{REGION}:{ACCOUNT}:function:{name}"
    assert put_error({"OnSuccess": {"Destination": iam_arn}}) == (
        "InvalidParameterValueException",
        f"The provided destination config DestinationConfig(onSuccess=OnSuccess(destination="
        f"{iam_arn}), onFailure=null) is invalid.",
        400,
    )
    code, message, _ = put_error({"OnFailure": {"Destination": "arn:aws:_-/!lambda:x"}})
    assert code == "ValidationException"
    assert message.startswith(
        "1 validation error detected: Value 'arn:aws:_-/!lambda:x' at "
        "'destinationConfig.onFailure.destination' failed to satisfy constraint: Member must "
        "satisfy regular expression pattern: "
    )

    accepted = lam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {}}
    )
    assert accepted["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}
    for destination in (
        QUEUE_ARN,
        f"arn:aws:sns:{REGION}:{ACCOUNT}:topic",
        f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default",
    ):
        response = lam.put_function_event_invoke_config(
            FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": destination}}
        )
        assert response["DestinationConfig"]["OnSuccess"] == {"Destination": destination}


def test_event_invoke_config_not_found(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    missing = unique_name("missing")

    for operation in ("GetFunctionEventInvokeConfig", "DeleteFunctionEventInvokeConfig"):
        assert_not_found(
            lam,
            operation,
            f"The function {ARN_PREFIX}{name}:$LATEST doesn't have an EventInvokeConfig",
            FunctionName=name,
        )
        assert_not_found(
            lam,
            operation,
            f"The function {ARN_PREFIX}{missing}:$LATEST doesn't have an EventInvokeConfig",
            FunctionName=missing,
        )
    assert_not_found(
        lam,
        "UpdateFunctionEventInvokeConfig",
        f"The function {ARN_PREFIX}{name}:$LATEST doesn't have an EventInvokeConfig",
        FunctionName=name,
        MaximumRetryAttempts=1,
    )
    for operation, params in (
        ("PutFunctionEventInvokeConfig", {"MaximumRetryAttempts": 1}),
        ("UpdateFunctionEventInvokeConfig", {"MaximumRetryAttempts": 1}),
        ("ListFunctionEventInvokeConfigs", {}),
    ):
        assert_not_found(
            lam, operation, "The function doesn't exist.", FunctionName=missing, **params
        )
    assert_not_found(
        lam,
        "PutFunctionEventInvokeConfig",
        "The function doesn't exist.",
        FunctionName=name,
        Qualifier="nope",
        MaximumRetryAttempts=1,
    )


def test_event_invoke_config_qualifiers(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")

    latest = lam.put_function_event_invoke_config(
        FunctionName=f"{name}:$LATEST", MaximumRetryAttempts=0
    )
    version = lam.put_function_event_invoke_config(
        FunctionName=ARN_PREFIX + name, Qualifier="1", MaximumRetryAttempts=1
    )
    alias = lam.put_function_event_invoke_config(
        FunctionName=f"{ARN_PREFIX}{name}:live", Qualifier="live", MaximumRetryAttempts=2
    )

    assert latest["FunctionArn"] == f"{ARN_PREFIX}{name}:$LATEST"
    assert version["FunctionArn"] == f"{ARN_PREFIX}{name}:1"
    assert alias["FunctionArn"] == f"{ARN_PREFIX}{name}:live"
    assert lam.get_function_event_invoke_config(FunctionName=name)["MaximumRetryAttempts"] == 0
    got = lam.get_function_event_invoke_config(FunctionName=f"{ACCOUNT}:function:{name}:live")
    assert got["MaximumRetryAttempts"] == 2
    configs = lam.list_function_event_invoke_configs(FunctionName=name)
    assert [c["FunctionArn"].rsplit(":", 1)[1] for c in configs["FunctionEventInvokeConfigs"]] == [
        "$LATEST",
        "1",
        "live",
    ]

    with pytest.raises(ClientError) as raised:
        lam.put_function_event_invoke_config(
            FunctionName=f"{name}:live", Qualifier="1", MaximumRetryAttempts=1
        )
    assert _error(raised) == (
        "InvalidParameterValueException",
        "The derived qualifier from the function name does not match the specified qualifier.",
        400,
    )


def test_list_event_invoke_configs_pages(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    lam.publish_version(FunctionName=name)
    for qualifier in ("$LATEST", "1"):
        lam.put_function_event_invoke_config(
            FunctionName=name, Qualifier=qualifier, MaximumRetryAttempts=1
        )

    first = lam.list_function_event_invoke_configs(FunctionName=name, MaxItems=1)
    second = lam.list_function_event_invoke_configs(
        FunctionName=name, MaxItems=1, Marker=first["NextMarker"]
    )

    assert len(first["FunctionEventInvokeConfigs"]) == 1
    assert first["FunctionEventInvokeConfigs"][0]["FunctionArn"].endswith(":$LATEST")
    assert second["FunctionEventInvokeConfigs"][0]["FunctionArn"].endswith(":1")
    assert "NextMarker" not in second
    paginator = lam.get_paginator("list_function_event_invoke_configs")
    pages = list(paginator.paginate(FunctionName=name, PaginationConfig={"PageSize": 1}))
    assert sum(len(page["FunctionEventInvokeConfigs"]) for page in pages) == 2


def test_delete_event_invoke_config(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)

    response = lam.delete_function_event_invoke_config(FunctionName=name)

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert (
        lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
        == []
    )


def test_event_invoke_config_dropped_with_function(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1)
    lam.delete_function(FunctionName=name)
    _new_function(lam, name=name)

    assert (
        lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
        == []
    )


def test_settings_dropped_with_version(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    lam.publish_version(FunctionName=name)
    lam.put_function_event_invoke_config(FunctionName=name, Qualifier="1", MaximumRetryAttempts=1)
    lam.delete_function(FunctionName=name, Qualifier="1")

    assert (
        lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
        == []
    )


async def test_event_invoke_config_lookup(tmp_path: Path) -> None:
    backend = FakeBackend()
    config = lambdasim.Config(data_dir=tmp_path)
    function = lambdasim.Function(
        "lookup-fn",
        "python3.12",
        "app.handler",
        "arn:aws:iam::000000000000:role/r",
        code=make_zip({"app.py": SOURCE}),
    )

    async with trio.open_nursery() as nursery:
        await nursery.start(backend.run)
        async with lambdasim.open_simulator(config, backend=backend) as sim:
            await sim.create_function(function)
            assert sim.settings.event_invoke_config("lookup-fn") is None
            sim.settings.put_event_invoke_config(
                sim,
                "lookup-fn",
                maximum_event_age=120,
                destination_config={"OnFailure": {"Destination": QUEUE_ARN}},
            )
            found = sim.settings.event_invoke_config("lookup-fn")
            latest = sim.settings.event_invoke_config("lookup-fn", "$LATEST")
            other = sim.settings.event_invoke_config("lookup-fn", "1")
        nursery.cancel_scope.cancel()

    assert found is not None
    assert found == latest
    assert other is None
    assert found.maximum_retry_attempts is None
    assert found.effective_retry_attempts == 2
    assert found.maximum_event_age == 120
    assert found.effective_event_age == 120
    assert found.on_success is None
    assert found.on_failure == QUEUE_ARN


POLICY_PATH = "/2015-03-31/functions/{name}/policy"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", POLICY_PATH, {"StatementId": 5, "Action": "lambda:*", "Principal": "*"}),
        ("POST", POLICY_PATH, {"StatementId": "s", "Action": "lambda:*", "Principal": 5}),
        ("POST", POLICY_PATH, {"StatementId": "s", "Action": ["x"], "Principal": "*"}),
        ("PUT", "/2019-09-25/functions/{name}/event-invoke-config", {"MaximumRetryAttempts": "1"}),
        ("PUT", "/2019-09-25/functions/{name}/event-invoke-config", {"DestinationConfig": []}),
        (
            "PUT",
            "/2019-09-25/functions/{name}/event-invoke-config",
            {"DestinationConfig": {"OnSuccess": {"Destination": 5}}},
        ),
        ("POST", "/2017-03-31/tags/{arn}", {"Tags": ["a"]}),
        ("POST", "/2017-03-31/tags/{arn}", {"Tags": {"a": 5}}),
    ],
)
def test_wrong_json_types_rejected(  # type: ignore[no-untyped-def]
    lam, endpoint: str, method: str, path: str, body: dict
) -> None:
    name = _new_function(lam)
    url = endpoint + path.format(name=name, arn=urllib.parse.quote(ARN_PREFIX + name, safe=""))
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )

    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=30)

    assert raised.value.code == 400
    assert raised.value.headers["x-amzn-ErrorType"] in (
        "ValidationException",
        "InvalidParameterValueException",
    )
    assert "message" in json.loads(raised.value.read())


# Not-found messages and function references (control plane only) ------------------------------


@pytest.mark.parametrize(
    "operation",
    ["GetFunction", "GetFunctionConfiguration", "DeleteFunction", "GetFunctionConcurrency"],
)
def test_unknown_function_message(lam, operation: str) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("nope")

    assert_not_found(lam, operation, f"Function not found: {ARN_PREFIX}{name}", FunctionName=name)


def test_unknown_function_invoke(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("nope")

    assert_not_found(
        lam, "Invoke", f"Function not found: {ARN_PREFIX}{name}:$LATEST", FunctionName=name
    )
    status, _, body = raw_error(lam, "Invoke", FunctionName=name, Qualifier="live")
    assert status == 404
    assert body["Message"].endswith(f":function:{name}:live")


def test_unknown_qualifier_message(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)

    assert_not_found(
        lam,
        "GetFunction",
        f"Function not found: {ARN_PREFIX}{name}:1221",
        FunctionName=name,
        Qualifier="1221",
    )


def test_unknown_function_url_config(lam) -> None:  # type: ignore[no-untyped-def]
    assert_not_found(
        lam,
        "GetFunctionUrlConfig",
        "The resource you requested does not exist.",
        FunctionName=unique_name("nope"),
    )


@pytest.mark.parametrize("form", ["name", "arn", "partial", "latest"])
def test_reference_forms(lam, form: str) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    reference = {
        "name": name,
        "arn": ARN_PREFIX + name,
        "partial": f"{ACCOUNT}:function:{name}",
        "latest": f"{name}:$LATEST",
    }[form]

    assert lam.get_function(FunctionName=reference)["Configuration"]["FunctionName"] == name
    configuration = lam.get_function_configuration(FunctionName=reference)
    assert configuration["FunctionName"] == name
    dry_run = lam.invoke(FunctionName=reference, InvocationType="DryRun")
    assert dry_run["StatusCode"] == 204
    updated = lam.update_function_configuration(FunctionName=reference, Description=form)
    assert updated["FunctionName"] == name
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    code = lam.update_function_code(FunctionName=reference, ZipFile=make_zip({"app.py": SOURCE}))
    assert code["FunctionName"] == name
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)
    lam.delete_function(FunctionName=reference)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)


def test_prefix_is_another_function(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    longer = _new_function(lam, name=f"{name}s")
    lam.tag_resource(Resource=ARN_PREFIX + longer, Tags={"who": "longer"})
    lam.put_function_event_invoke_config(FunctionName=longer, MaximumRetryAttempts=0)

    assert lam.get_function(FunctionName=name)["Configuration"]["FunctionName"] == name
    assert lam.list_tags(Resource=ARN_PREFIX + name)["Tags"] == {}
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName=name)
    lam.delete_function(FunctionName=name)
    assert lam.get_function(FunctionName=longer)["Configuration"]["FunctionName"] == longer


def test_other_region_arn(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    other = f"arn:aws:lambda:us-west-2:{ACCOUNT}:function:{name}"
    message = "Functions from 'us-west-2' are not reachable in this region ('us-east-1')"

    assert_not_found(lam, "GetFunction", message, FunctionName=other)
    assert_not_found(lam, "GetPolicy", message, FunctionName=other)
    assert_not_found(lam, "ListTags", message, Resource=other)


def test_qualifier_mismatch(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)
    message = "The derived qualifier from the function name does not match the specified qualifier."

    for operation, params in (
        ("GetFunction", {}),
        ("GetFunctionEventInvokeConfig", {}),
        ("GetPolicy", {}),
    ):
        with pytest.raises(ClientError) as raised:
            getattr(lam, botocore.xform_name(operation))(
                FunctionName=f"{ARN_PREFIX}{name}:$LATEST", Qualifier="1", **params
            )
        assert _error(raised) == ("InvalidParameterValueException", message, 400), operation


@pytest.mark.parametrize(
    "reference",
    [
        f"{ARN_PREFIX}getUser:1:2",
        "getUser!",
        f"arn:aws:lambda::{ACCOUNT}:function:getUser",
        f"arn:aws:lambda:{REGION}:function:getUser",
    ],
)
def test_invalid_reference(lam, reference: str) -> None:  # type: ignore[no-untyped-def]
    prefix = (
        f"1 validation error detected: Value '{reference}' at 'functionName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
    )
    for operation in ("GetFunction", "GetPolicy", "GetFunctionEventInvokeConfig"):
        with pytest.raises(ClientError) as raised:
            getattr(lam, botocore.xform_name(operation))(FunctionName=reference)
        code, message, status = _error(raised)
        assert (code, status) == ("ValidationException", 400), operation
        assert message.startswith(prefix), (operation, message)


def test_long_name_invoke_not_found(lam) -> None:  # type: ignore[no-untyped-def]
    status, headers, _ = raw_error(lam, "Invoke", FunctionName="f" * 65)

    assert status == 404
    assert headers["x-amzn-ErrorType"] == "ResourceNotFoundException"


def test_concurrency_rejects_qualified_arn(lam) -> None:  # type: ignore[no-untyped-def]
    name = _new_function(lam)

    with pytest.raises(ClientError) as raised:
        lam.put_function_concurrency(
            FunctionName=f"{ARN_PREFIX}{name}:$LATEST", ReservedConcurrentExecutions=1
        )

    assert _error(raised) == (
        "InvalidParameterValueException",
        "This operation is permitted on Lambda functions only. Aliases and versions do not "
        "support this operation. Please specify either a function name or an unqualified "
        "function ARN.",
        400,
    )
