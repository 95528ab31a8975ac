"""The event source mapping API: shapes, listing, errors and the execution-role check."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import botocore.validate
import pytest
from botocore.exceptions import ClientError
from conftest import LAMBDA_TRUST_POLICY, client, create_python_function, unique_name
from event_sources_support import create_queue, wait_for, wait_state

pytestmark = pytest.mark.docker

HANDLER = "def handler(event, context):\n    return None\n"


def _raw_json(endpoint: str, path: str) -> Any:
    with urllib.request.urlopen(endpoint + path, timeout=30) as response:
        return json.loads(response.read())


def _assert_valid(lam, operation: str, body: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    shape = lam.meta.service_model.operation_model(operation).output_shape
    report = botocore.validate.ParamValidator().validate(body, shape)
    assert not report.has_errors(), report.generate_report()


def _error(raised: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response = raised.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


def test_responses_match_model_shapes(lam, sqs, role: str, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, HANDLER, role=role)
    _, arn = create_queue(sqs, unique_name("shapes"))
    pattern = json.dumps({"body": {"a": [1]}})
    created = lam.create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName=name,
        BatchSize=50,
        MaximumBatchingWindowInSeconds=2,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        FilterCriteria={"Filters": [{"Pattern": pattern}]},
        ScalingConfig={"MaximumConcurrency": 3},
    )
    uuid = created["UUID"]
    wait_state(lam, uuid, "Enabled")

    single = _raw_json(endpoint, f"/2015-03-31/event-source-mappings/{uuid}")
    listed = _raw_json(endpoint, f"/2015-03-31/event-source-mappings/?FunctionName={name}")

    _assert_valid(lam, "GetEventSourceMapping", single)
    _assert_valid(lam, "ListEventSourceMappings", listed)
    assert single["BatchSize"] == 50
    assert single["MaximumBatchingWindowInSeconds"] == 2
    assert single["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert single["ScalingConfig"] == {"MaximumConcurrency": 3}
    assert single["FilterCriteria"] == {"Filters": [{"Pattern": pattern}]}
    assert isinstance(single["LastModified"], float)
    assert listed["EventSourceMappings"] == [single]
    deleted = lam.delete_event_source_mapping(UUID=uuid)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert deleted["State"] == "Deleting"

    kinesis = client("kinesis", endpoint)
    stream = unique_name("shapes")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    stream_arn = f"arn:aws:kinesis:us-east-1:000000000000:stream/{stream}"
    stream_uuid = lam.create_event_source_mapping(
        EventSourceArn=stream_arn,
        FunctionName=name,
        StartingPosition="AT_TIMESTAMP",
        StartingPositionTimestamp=1700000000,
        DestinationConfig={"OnFailure": {"Destination": arn}},
        MaximumRecordAgeInSeconds=60,
    )["UUID"]
    stream_single = _raw_json(endpoint, f"/2015-03-31/event-source-mappings/{stream_uuid}")

    _assert_valid(lam, "GetEventSourceMapping", stream_single)
    assert stream_single["DestinationConfig"] == {"OnFailure": {"Destination": arn}}
    assert stream_single["StartingPositionTimestamp"] == 1700000000
    assert stream_single["MaximumRecordAgeInSeconds"] == 60


def test_list_filters_and_pages(lam, sqs, role: str) -> None:  # type: ignore[no-untyped-def]
    first = create_python_function(lam, HANDLER, role=role)
    second = create_python_function(lam, HANDLER, role=role)
    arns = [create_queue(sqs, unique_name("listed"))[1] for _ in range(3)]
    uuids = [
        lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=first)["UUID"]
        for arn in arns
    ]
    other = lam.create_event_source_mapping(EventSourceArn=arns[0], FunctionName=second)["UUID"]

    pages, marker = [], None
    while True:
        kwargs = {"FunctionName": first, "MaxItems": 2}
        if marker:
            kwargs["Marker"] = marker
        page = lam.list_event_source_mappings(**kwargs)
        pages.append([m["UUID"] for m in page["EventSourceMappings"]])
        marker = page.get("NextMarker")
        if not marker:
            break
    by_source = lam.list_event_source_mappings(EventSourceArn=arns[0])["EventSourceMappings"]
    by_both = lam.list_event_source_mappings(EventSourceArn=arns[0], FunctionName=second)[
        "EventSourceMappings"
    ]

    assert pages == [uuids[:2], uuids[2:]]
    assert {m["UUID"] for m in by_source} == {uuids[0], other}
    assert [m["UUID"] for m in by_both] == [other]


def test_unknown_and_deleted_mapping_not_found(lam, sqs, role: str) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, HANDLER, role=role)
    _, arn = create_queue(sqs, unique_name("gone"))
    uuid = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)["UUID"]
    lam.delete_event_source_mapping(UUID=uuid)

    def gone() -> bool:
        try:
            lam.get_event_source_mapping(UUID=uuid)
        except lam.exceptions.ResourceNotFoundException:
            return True
        return False

    wait_for(gone, timeout=10, what="the mapping to be deleted")
    with pytest.raises(ClientError) as unknown:
        lam.get_event_source_mapping(UUID="00000000-0000-0000-0000-000000000000")
    assert _error(unknown) == (
        404,
        "ResourceNotFoundException",
        "The resource you requested does not exist.",
    )


def test_create_errors(lam, sqs, role: str) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, HANDLER, role=role)
    _, arn = create_queue(sqs, unique_name("errors"))
    uuid = lam.create_event_source_mapping(EventSourceArn=arn, FunctionName=name)["UUID"]

    cases: list[tuple[dict[str, Any], int, str, str]] = [
        (
            {"EventSourceArn": arn, "FunctionName": name},
            409,
            "ResourceConflictException",
            f'An event source mapping with SQS arn (" {arn} ") and function (" {name} ") '
            f"already exists. Please update or delete the existing mapping with UUID {uuid}",
        ),
        (
            {"EventSourceArn": arn, "FunctionName": "no-such-function"},
            404,
            "ResourceNotFoundException",
            "Function not found: arn:aws:lambda:us-east-1:000000000000:function:no-such-function",
        ),
        (
            {"EventSourceArn": arn + "-missing", "FunctionName": name},
            400,
            "InvalidParameterValueException",
            "Error occurred while ReceiveMessage. SQS Error Code: "
            "AWS.SimpleQueueService.NonExistentQueue. SQS Error Message: The specified queue "
            "does not exist or you do not have access to it.",
        ),
        (
            {"EventSourceArn": arn, "FunctionName": name, "BatchSize": 11},
            400,
            "InvalidParameterValueException",
            "Maximum batch window in seconds must be greater than 0 if maximum batch size is "
            "greater than 10",
        ),
        (
            {"EventSourceArn": arn, "FunctionName": name, "BatchSize": 10001},
            400,
            "ValidationException",
            "1 validation error detected: Value '10001' at 'batchSize' failed to satisfy "
            "constraint: Member must have value less than or equal to 10000",
        ),
        (
            {
                "EventSourceArn": arn,
                "FunctionName": name,
                "FilterCriteria": {"Filters": [{"Pattern": "not json"}]},
            },
            400,
            "InvalidParameterValueException",
            "Invalid filter pattern definition.",
        ),
    ]
    for request, status, code, message in cases:
        with pytest.raises(ClientError) as raised:
            lam.create_event_source_mapping(**request)
        got_status, got_code, got_message = _error(raised)
        assert (got_status, got_code) == (status, code), request
        assert got_message.startswith(message), request
    with pytest.raises(ClientError) as stream_only:
        lam.create_event_source_mapping(
            EventSourceArn=arn, FunctionName=name, StartingPosition="LATEST"
        )
    assert _error(stream_only)[1] == "InvalidParameterValueException"


def _limited_role(endpoint: str, policy: dict[str, Any] | None) -> str:
    iam = client("iam", endpoint)
    role_name = unique_name("limited")
    arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=LAMBDA_TRUST_POLICY)["Role"][
        "Arn"
    ]
    if policy is not None:
        iam.put_role_policy(
            RoleName=role_name, PolicyName="reads", PolicyDocument=json.dumps(policy)
        )
    return arn


def test_missing_permission_rejects_mapping(lam, sqs, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    _, queue_arn = create_queue(sqs, unique_name("guarded"))
    kinesis = client("kinesis", endpoint)
    stream = unique_name("guarded")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    stream_arn = f"arn:aws:kinesis:us-east-1:000000000000:stream/{stream}"
    receive_only = _limited_role(
        endpoint,
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": queue_arn}
            ],
        },
    )
    denied = _limited_role(
        endpoint,
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "sqs:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "sqs:GetQueueAttributes", "Resource": queue_arn},
            ],
        },
    )
    nothing = _limited_role(endpoint, None)

    cases = [
        (
            receive_only,
            queue_arn,
            None,
            "The function execution role does not have permissions to call DeleteMessage on SQS",
        ),
        (
            denied,
            queue_arn,
            None,
            "The function execution role does not have permissions to "
            "call GetQueueAttributes on SQS",
        ),
        (
            nothing,
            stream_arn,
            "LATEST",
            f"Cannot access stream {stream_arn}. Please ensure the "
            "role can perform the GetRecords, GetShardIterator, DescribeStream, and ListStreams "
            "Actions on your stream in IAM.",
        ),
    ]
    for role_arn, source_arn, position, message in cases:
        name = create_python_function(lam, HANDLER, role=role_arn)
        request: dict[str, Any] = {"EventSourceArn": source_arn, "FunctionName": name}
        if position:
            request["StartingPosition"] = position
        with pytest.raises(ClientError) as raised:
            lam.create_event_source_mapping(**request)
        assert _error(raised) == (400, "InvalidParameterValueException", message)
    assert lam.list_event_source_mappings(EventSourceArn=queue_arn)["EventSourceMappings"] == []
