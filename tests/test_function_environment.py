"""The environment variables and credentials a function gets inside its container."""

from __future__ import annotations

import json
import re

import pytest
from conftest import client, create_python_function, unique_name

pytestmark = pytest.mark.docker

ENVIRONMENT_SOURCE = """\
import os
def handler(event, context):
    return {"env": dict(os.environ), "remaining": context.get_remaining_time_in_millis(),
            "arn": context.invoked_function_arn, "request_id": context.aws_request_id}
"""

IDENTITY_SOURCE = """\
import os, boto3
def handler(event, context):
    return {"arn": boto3.client("sts").get_caller_identity()["Arn"],
            "key": os.environ["AWS_ACCESS_KEY_ID"],
            "token": bool(os.environ.get("AWS_SESSION_TOKEN"))}
"""


def _invoke_json(lam, name: str, payload: bytes = b"{}") -> dict:  # type: ignore[no-untyped-def]
    response = lam.invoke(FunctionName=name, Payload=payload)
    body = response["Payload"].read()
    assert "FunctionError" not in response, body
    return json.loads(body)


def test_injected_variables(lam, endpoint: str, execution_role: str) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, ENVIRONMENT_SOURCE, MemorySize=256, Timeout=7)

    result = _invoke_json(lam, name)

    env = result["env"]
    assert env["AWS_ENDPOINT_URL"] == endpoint
    assert env["AWS_REGION"] == "us-east-1"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    assert re.fullmatch(
        r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", env["AWS_LAMBDA_LOG_STREAM_NAME"]
    )
    assert env["_HANDLER"] == "app.handler"
    assert env["LAMBDA_TASK_ROOT"] == "/var/task"
    assert env["LAMBDA_RUNTIME_DIR"] == "/var/runtime"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert env["TZ"] == ":UTC"
    assert re.fullmatch(r"127\.0\.0\.1:\d+", env["AWS_LAMBDA_RUNTIME_API"])
    assert env["AWS_ACCESS_KEY_ID"] != "test"
    assert env["AWS_SESSION_TOKEN"]
    assert result["arn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert re.fullmatch(r"[0-9a-f-]{36}", result["request_id"])
    # The deadline is the function's timeout, not a default.
    assert 6000 < result["remaining"] <= 7000


def test_user_variables_override_defaults(lam) -> None:  # type: ignore[no-untyped-def]
    overrides = {"TZ": "Europe/Paris", "LANG": "C.UTF-8", "MY_SETTING": "on"}
    name = create_python_function(lam, ENVIRONMENT_SOURCE, Environment={"Variables": overrides})

    env = _invoke_json(lam, name)["env"]

    assert env["TZ"] == "Europe/Paris"
    assert env["LANG"] == "C.UTF-8"
    assert env["MY_SETTING"] == "on"
    # Injected variables the user did not set keep their values.
    assert env["AWS_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name


def test_user_endpoint_override(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(
        lam,
        ENVIRONMENT_SOURCE,
        Environment={"Variables": {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}},
    )

    env = _invoke_json(lam, name)["env"]

    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"


def test_execution_role_credentials(lam, execution_role: str) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, IDENTITY_SOURCE, role=execution_role)

    result = _invoke_json(lam, name)

    assert result["arn"] == f"arn:aws:sts::000000000000:assumed-role/lambda-exec/{name}"
    assert result["token"] is True
    assert result["key"] != "test"


def test_short_name_session(lam, execution_role: str) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, IDENTITY_SOURCE, role=execution_role, name="q")
    try:
        result = _invoke_json(lam, name)
    finally:
        lam.delete_function(FunctionName=name)

    assert result["arn"] == "arn:aws:sts::000000000000:assumed-role/lambda-exec/q@lambda_function"


def test_untrusted_role_falls_back(lam, endpoint: str, server) -> None:  # type: ignore[no-untyped-def]
    iam = client("iam", endpoint)
    role_name = unique_name("not-for-lambda")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))
    name = create_python_function(lam, IDENTITY_SOURCE, role=role["Role"]["Arn"])

    result = _invoke_json(lam, name)

    root = client("sts", endpoint).get_caller_identity()["Arn"]
    assert "assumed-role" not in result["arn"]
    assert result["arn"] == root
    assert result["token"] is False
    assert (
        f"function {name}: the trust policy of execution role {role['Role']['Arn']}" in server.log()
    )


def test_missing_role_falls_back(lam, server) -> None:  # type: ignore[no-untyped-def]
    missing = f"arn:aws:iam::000000000000:role/{unique_name('missing')}"
    name = create_python_function(lam, IDENTITY_SOURCE, role=missing)

    result = _invoke_json(lam, name)

    assert "assumed-role" not in result["arn"]
    assert f"function {name}: execution role {missing} does not exist" in server.log()
