"""The README's example end to end: DynamoDB and S3 writes from a function."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import client, make_zip, unique_name

pytestmark = pytest.mark.docker

HANDLER_SOURCE = """\
import json, boto3
def handler(event, context):
    table = boto3.resource("dynamodb").Table(event["table_name"])
    table.put_item(Item={"id": event["id"], "message": event["message"]})
    boto3.client("s3").put_object(Bucket=event["bucket"], Key=f"records/{event['id']}.json", Body=json.dumps(event))
    return {"statusCode": 200, "body": json.dumps({"id": event["id"]})}
"""


def _aws_cli_v2() -> str | None:
    """Return the path of an aws cli v2, which supports `--cli-binary-format`."""
    candidates = (os.environ.get("LAMBDASIM_AWS_CLI"), shutil.which("aws"), "/usr/bin/aws")
    for candidate in candidates:
        if not candidate or not os.path.exists(candidate):
            continue
        version = subprocess.run(
            [candidate, "--version"], capture_output=True, text=True, check=False
        )
        if (version.stdout + version.stderr).startswith("aws-cli/2."):
            return candidate
    return None


def test_example_with_aws_cli(endpoint: str, tmp_path: Path) -> None:
    aws = _aws_cli_v2()
    if aws is None:
        pytest.fail("the example needs the aws cli v2 (Debian package awscli)")
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_PAGER="",
    )
    table, bucket, function = (
        unique_name("orders"),
        unique_name("data"),
        unique_name("my-processor"),
    )
    role = unique_name("lambda-exec")
    (tmp_path / "function.zip").write_bytes(make_zip({"lambda_function.py": HANDLER_SOURCE}))
    trust = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
    )

    def run(*arguments: str) -> str:
        completed = subprocess.run(
            [aws, "--endpoint-url", endpoint, *arguments],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            check=False,
        )
        assert completed.returncode == 0, f"aws {' '.join(arguments)}: {completed.stderr}"
        return completed.stdout

    run(
        "dynamodb", "create-table", "--table-name", table,
        "--attribute-definitions", "AttributeName=id,AttributeType=S",
        "--key-schema", "AttributeName=id,KeyType=HASH", "--billing-mode", "PAY_PER_REQUEST",
    )  # fmt: skip
    run("s3", "mb", f"s3://{bucket}")
    run("iam", "create-role", "--role-name", role, "--assume-role-policy-document", trust)
    for policy in ("AmazonDynamoDBFullAccess", "AmazonS3FullAccess"):
        run(
            "iam", "attach-role-policy", "--role-name", role,
            "--policy-arn", f"arn:aws:iam::aws:policy/{policy}",
        )  # fmt: skip
    created = json.loads(
        run(
            "lambda",
            "create-function",
            "--function-name",
            function,
            "--runtime",
            "python3.12",
            "--handler",
            "lambda_function.handler",
            "--role",
            f"arn:aws:iam::000000000000:role/{role}",
            "--zip-file",
            "fileb://function.zip",
        )  # fmt: skip
    )
    assert created["FunctionName"] == function
    event = {"table_name": table, "bucket": bucket, "id": "123", "message": "hello"}
    invoked = json.loads(
        run(
            "lambda",
            "invoke",
            "--function-name",
            function,
            "--payload",
            json.dumps(event),
            "--cli-binary-format",
            "raw-in-base64-out",
            "output.json",
        )  # fmt: skip
    )
    assert invoked["StatusCode"] == 200
    assert "FunctionError" not in invoked
    assert json.loads((tmp_path / "output.json").read_text()) == {
        "statusCode": 200,
        "body": json.dumps({"id": "123"}),
    }
    item = json.loads(
        run("dynamodb", "get-item", "--table-name", table, "--key", '{"id":{"S":"123"}}')
    )
    assert item["Item"] == {"id": {"S": "123"}, "message": {"S": "hello"}}
    assert json.loads(run("s3", "cp", f"s3://{bucket}/records/123.json", "-")) == event


def test_example_with_boto3(endpoint: str, lam, execution_role: str) -> None:  # type: ignore[no-untyped-def]
    dynamodb, s3 = client("dynamodb", endpoint), client("s3", endpoint)
    table, bucket = unique_name("orders"), unique_name("data")
    dynamodb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    s3.create_bucket(Bucket=bucket)
    name = unique_name("my-processor")
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=execution_role,
        Handler="lambda_function.handler",
        Code={"ZipFile": make_zip({"lambda_function.py": HANDLER_SOURCE})},
    )
    event = {"table_name": table, "bucket": bucket, "id": "456", "message": "from boto3"}

    response = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode())

    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {
        "statusCode": 200,
        "body": json.dumps({"id": "456"}),
    }
    item = dynamodb.get_item(TableName=table, Key={"id": {"S": "456"}})["Item"]
    assert item == {"id": {"S": "456"}, "message": {"S": "from boto3"}}
    stored = s3.get_object(Bucket=bucket, Key="records/456.json")["Body"].read()
    assert json.loads(stored) == event


def test_code_from_s3_object(endpoint: str, lam, execution_role: str) -> None:  # type: ignore[no-untyped-def]
    s3 = client("s3", endpoint)
    bucket = unique_name("code")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(
        Bucket=bucket,
        Key="pkg/app.zip",
        Body=make_zip({"app.py": "def handler(event, context):\n    return {'from': 's3'}\n"}),
    )
    name = unique_name("s3-code")
    created = lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=execution_role,
        Handler="app.handler",
        Code={"S3Bucket": bucket, "S3Key": "pkg/app.zip"},
    )
    assert created["CodeSize"] > 0

    response = lam.invoke(FunctionName=name)

    assert json.loads(response["Payload"].read()) == {"from": "s3"}


def test_code_from_missing_s3_object(endpoint: str, lam, execution_role: str) -> None:  # type: ignore[no-untyped-def]
    bucket = unique_name("code")
    client("s3", endpoint).create_bucket(Bucket=bucket)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as raised:
        lam.create_function(
            FunctionName=unique_name("s3-missing"),
            Runtime="python3.12",
            Role=execution_role,
            Handler="app.handler",
            Code={"S3Bucket": bucket, "S3Key": "nope.zip"},
        )
    assert "NoSuchKey" in raised.value.response["Error"]["Message"]
