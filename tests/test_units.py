"""Unit tests of the parts that need no container."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import make_zip

from lambdasim.arns import parse_function_ref
from lambdasim.code_store import CodeStore, code_sha256, unpack_zip
from lambdasim.config import Config
from lambdasim.credentials import session_name_for, trust_policy_allows_lambda
from lambdasim.errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    RequestTooLargeException,
    ResourceNotFoundException,
    ValidationException,
)
from lambdasim.function import Function
from lambdasim.invoke import normalize_payload
from lambdasim.runtimes import lookup_runtime

REGION, ACCOUNT = "us-east-1", "000000000000"


@pytest.mark.parametrize(
    ("value", "qualifier", "expected"),
    [
        ("getUser", None, ("getUser", None)),
        ("getUser:$LATEST", None, ("getUser", "$LATEST")),
        ("getUser", "live", ("getUser", "live")),
        ("000000000000:function:getUser", None, ("getUser", None)),
        ("arn:aws:lambda:us-east-1:000000000000:function:getUser", None, ("getUser", None)),
        ("arn:aws:lambda:us-east-1:000000000000:function:getUser:7", "7", ("getUser", "7")),
    ],
)
def test_function_ref_forms(value: str, qualifier: str | None, expected: tuple) -> None:
    ref = parse_function_ref(value, region=REGION, account_id=ACCOUNT, qualifier=qualifier)
    assert (ref.name, ref.qualifier) == expected


def test_function_ref_other_region() -> None:
    with pytest.raises(ResourceNotFoundException) as raised:
        parse_function_ref(
            "arn:aws:lambda:us-west-2:000000000000:function:getUser",
            region=REGION,
            account_id=ACCOUNT,
        )
    assert raised.value.message == (
        "Functions from 'us-west-2' are not reachable in this region ('us-east-1')"
    )


def test_function_ref_qualifier_mismatch() -> None:
    with pytest.raises(InvalidParameterValueException) as raised:
        parse_function_ref("getUser:$LATEST", region=REGION, account_id=ACCOUNT, qualifier="1")
    assert "does not match the specified qualifier" in raised.value.message


@pytest.mark.parametrize(
    "value",
    ["getUser!", "arn:aws:lambda:us-east-1:000000000000:function:getUser:1:2", ""],
)
def test_function_ref_invalid(value: str) -> None:
    with pytest.raises(ValidationException) as raised:
        parse_function_ref(value, region=REGION, account_id=ACCOUNT)
    assert f"Value '{value}' at 'functionName'" in raised.value.message


def test_unpack_keeps_modes(tmp_path: Path) -> None:
    data = make_zip({"bootstrap": "#!/bin/sh\n", "lib/data.txt": "x"}, modes={"bootstrap": 0o755})
    unpack_zip(data, tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / "bootstrap").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "lib/data.txt").st_mode) == 0o644
    assert (tmp_path / "lib/data.txt").read_text() == "x"


@pytest.mark.parametrize("member", ["../escape.py", "/etc/passwd", "a/../../b"])
def test_unpack_rejects_escapes(tmp_path: Path, member: str) -> None:
    with pytest.raises(InvalidParameterValueException):
        unpack_zip(make_zip({member: "x"}), tmp_path / "dest")
    assert not (tmp_path / "escape.py").exists()


async def test_code_store_shares_folders(tmp_path: Path) -> None:
    store = CodeStore(tmp_path)
    data = make_zip({"app.py": "x = 1"})
    first = await store.store(data)
    second = await store.store(data)
    assert first == second
    assert first.sha256 == code_sha256(data)
    assert first.size == len(data)
    assert (first.path / "app.py").read_text() == "x = 1"


async def test_code_store_bad_zip_leaves_nothing(tmp_path: Path) -> None:
    store = CodeStore(tmp_path)
    with pytest.raises(InvalidParameterValueException):
        await store.store(b"PK\x03\x04 not really a zip")
    assert list(tmp_path.iterdir()) == []


def test_payload_empty_is_object() -> None:
    assert normalize_payload(None) == b"{}"
    assert normalize_payload(b"") == b"{}"
    assert normalize_payload(b"  ") == b"{}"


def test_payload_invalid_rejected() -> None:
    with pytest.raises(InvalidRequestContentException) as raised:
        normalize_payload(b'{"body": "n\x87r"}')
    assert raised.value.message.endswith("Invalid UTF-8 start byte 0x87")


def test_payload_too_large() -> None:
    with pytest.raises(RequestTooLargeException):
        normalize_payload(b'"' + b"x" * (6 * 1024 * 1024) + b'"')


def _trust(principal: object, effect: str = "Allow", action: object = "sts:AssumeRole") -> str:
    statement = {"Effect": effect, "Principal": principal, "Action": action}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.mark.parametrize(
    ("document", "allowed"),
    [
        (_trust({"Service": "lambda.amazonaws.com"}), True),
        (_trust({"Service": ["ec2.amazonaws.com", "lambda.amazonaws.com"]}), True),
        (_trust({"Service": "ec2.amazonaws.com"}), False),
        (_trust({"Service": "lambda.amazonaws.com"}, effect="Deny"), False),
        (_trust({"Service": "lambda.amazonaws.com"}, action="sts:*"), True),
        (_trust({"Service": "lambda.amazonaws.com"}, action="sts:TagSession"), False),
        (_trust("*"), True),
        ("not json", False),
    ],
)
def test_trust_policy(document: str, allowed: bool) -> None:
    assert trust_policy_allows_lambda(document) is allowed


def test_session_names() -> None:
    assert session_name_for("q") == "q@lambda_function"
    assert session_name_for("report-fn") == "report-fn"


def test_runtime_images() -> None:
    assert lookup_runtime("python3.12").image("public.ecr.aws/lambda") == (
        "public.ecr.aws/lambda/python:3.12"
    )
    assert lookup_runtime("nodejs22.x").image("mirror.local:5000/lambda/") == (
        "mirror.local:5000/lambda/nodejs:22"
    )
    assert lookup_runtime("provided.al2023").image("r") == "r/provided:al2023"


def test_config_from_env() -> None:
    config = Config.from_env(
        {
            "LAMBDASIM_PORT": "5000",
            "LAMBDASIM_LAMBDA_IMAGE_REGISTRY": "127.0.0.1:5001/lambda",
            "LAMBDASIM_ROLE_SESSION_SECONDS": "905",
        }
    )
    assert config.port == 5000
    assert config.image_registry == "127.0.0.1:5001/lambda"
    assert config.role_session_seconds == 905
    assert config.container_endpoint_url == "http://127.0.0.1:5000"


def test_config_invalid_value() -> None:
    with pytest.raises(ValueError, match="LAMBDASIM_PORT='abc'"):
        Config.from_env({"LAMBDASIM_PORT": "abc"})
    with pytest.raises(ValueError, match="between 301 and 43200"):
        Config.from_env({"LAMBDASIM_ROLE_SESSION_SECONDS": "60"})


@pytest.mark.parametrize(
    ("field", "value"),
    [("timeout", 0), ("timeout", 901), ("memory_size", 64), ("memory_size", 10241)],
)
def test_function_ranges(field: str, value: int) -> None:
    with pytest.raises(ValidationException) as raised:
        Function(
            "f",
            "python3.12",
            "app.handler",
            "arn:aws:iam::000000000000:role/r",
            code=b"",
            **{field: value},
        )
    assert f"Value '{value}'" in raised.value.message
