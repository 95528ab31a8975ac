"""Invoke details: client context, payload limits and large responses."""

from __future__ import annotations

import base64
import json

import pytest
from conftest import create_python_function

pytestmark = pytest.mark.docker

CONTEXT_SOURCE = """\
def handler(event, context):
    client = context.client_context
    return {"custom": client.custom if client else None,
            "env": client.env if client else None,
            "app": client.client.app_title if client and client.client else None}
"""


def test_client_context_reaches_function(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, CONTEXT_SOURCE)
    context = {
        "custom": {"tenant": "acme"},
        "env": {"locale": "en-GB"},
        "client": {
            "app_title": "demo",
            "installation_id": "i-1",
            "app_version_code": "1",
            "app_version_name": "1.0",
            "app_package_name": "x",
        },
    }

    response = lam.invoke(
        FunctionName=name,
        Payload=b"{}",
        ClientContext=base64.b64encode(json.dumps(context).encode()).decode(),
    )

    body = json.loads(response["Payload"].read())
    assert body == {"custom": {"tenant": "acme"}, "env": {"locale": "en-GB"}, "app": "demo"}
    assert response["ExecutedVersion"] == "$LATEST"


def test_request_payload_limit(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, "def handler(e, c):\n    return 1\n")
    payload = json.dumps({"x": "y" * (6 * 1024 * 1024)}).encode()

    with pytest.raises(lam.exceptions.RequestTooLargeException) as raised:
        lam.invoke(FunctionName=name, Payload=payload)

    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert "6291456 bytes" in raised.value.response["Error"]["Message"]


def test_response_too_large(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(
        lam, "def handler(e, c):\n    return 'z' * e\n", MemorySize=512, Timeout=30
    )

    response = lam.invoke(FunctionName=name, Payload=str(7 * 1024 * 1024).encode())

    body = json.loads(response["Payload"].read())
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Function.ResponseSizeTooLarge"
    assert "exceeded maximum allowed payload size" in body["errorMessage"]
    # The environment survives and serves the next invocation.
    after = lam.invoke(FunctionName=name, Payload=b"5")
    assert "FunctionError" not in after
    assert json.loads(after["Payload"].read()) == "zzzzz"


def test_large_response_within_limit(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(
        lam, "def handler(e, c):\n    return 'z' * (5 * 1024 * 1024)\n", MemorySize=512, Timeout=30
    )

    response = lam.invoke(FunctionName=name, Payload=b"{}")

    assert "FunctionError" not in response
    assert len(json.loads(response["Payload"].read())) == 5 * 1024 * 1024
