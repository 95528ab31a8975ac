"""Versions, aliases, qualifiers and the function lifecycle, through the HTTP API."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import EXECUTION_ROLE, ServerProcess, client, create_python_function, unique_name

from lambdasim.testing import make_zip

pytestmark = pytest.mark.docker


def _source(tag: str) -> str:
    return f"def handler(event, context):\n    return {{'tag': '{tag}'}}\n"


def _tag(response: dict) -> str:
    return json.loads(response["Payload"].read())["tag"]


def test_publish_and_invoke_versions(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, _source("one"))
    first = lam.publish_version(FunctionName=name, Description="first")
    lam.update_function_code(FunctionName=name, ZipFile=make_zip({"app.py": _source("two")}))
    second = lam.publish_version(FunctionName=name)

    assert first["Version"] == "1"
    assert first["FunctionArn"].endswith(f":function:{name}:1")
    assert first["Description"] == "first"
    assert second["Version"] == "2"
    assert _tag(lam.invoke(FunctionName=name, Qualifier="1")) == "one"
    assert _tag(lam.invoke(FunctionName=f"{name}:2")) == "two"
    latest = lam.invoke(FunctionName=name)
    assert latest["ExecutedVersion"] == "$LATEST"
    assert lam.invoke(FunctionName=name, Qualifier="1")["ExecutedVersion"] == "1"
    versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]]
    assert versions == ["$LATEST", "1", "2"]
    # Nothing changed since version 2: publishing again returns it.
    assert lam.publish_version(FunctionName=name)["Version"] == "2"
    assert lam.get_function(FunctionName=name, Qualifier="1")["Configuration"]["Version"] == "1"


def test_publish_with_wrong_sha(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, _source("one"))
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as raised:
        lam.publish_version(FunctionName=name, CodeSha256="bogus")
    assert raised.value.response["Error"]["Message"].startswith(
        "CodeSHA256 (bogus) is different from current CodeSHA256 in $LATEST"
    )


def test_missing_version_not_found(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, _source("one"))
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as raised:
        lam.get_function(FunctionName=name, Qualifier="1221")
    assert raised.value.response["Error"]["Message"] == (
        f"Function not found: arn:aws:lambda:us-east-1:000000000000:function:{name}:1221"
    )
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as invoked:
        lam.invoke(FunctionName=name, Qualifier="live")
    assert invoked.value.response["Error"]["Message"].endswith(f":function:{name}:live")


def test_alias_crud(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, _source("one"))
    lam.publish_version(FunctionName=name)
    created = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1", Description="d")

    assert created["AliasArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}:live"
    assert created["FunctionVersion"] == "1"
    assert lam.get_alias(FunctionName=name, Name="live")["Description"] == "d"
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    invoked = lam.invoke(FunctionName=name, Qualifier="live")
    assert invoked["ExecutedVersion"] == "1"
    updated = lam.update_alias(FunctionName=name, Name="live", FunctionVersion="$LATEST")
    assert updated["RevisionId"] != created["RevisionId"]
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name)["Aliases"]] == ["live"]
    with pytest.raises(lam.exceptions.PreconditionFailedException):
        lam.update_alias(FunctionName=name, Name="live", RevisionId="stale")
    lam.delete_alias(FunctionName=name, Name="live")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as raised:
        lam.get_alias(FunctionName=name, Name="live")
    assert raised.value.response["Error"]["Message"].startswith("Cannot find alias arn: ")


def test_alias_to_missing_version(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, _source("one"))
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion="7")


def test_alias_weights_split_traffic(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, _source("one"))
    lam.publish_version(FunctionName=name)
    lam.update_function_code(FunctionName=name, ZipFile=make_zip({"app.py": _source("two")}))
    lam.publish_version(FunctionName=name)
    lam.create_alias(
        FunctionName=name,
        Name="canary",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}},
    )

    counts = Counter(
        lam.invoke(FunctionName=name, Qualifier="canary")["ExecutedVersion"] for _ in range(200)
    )

    # 200 draws at p = 0.3 (mean 60, standard deviation 6.5): the count of "2" falls
    # outside 34..86 with a binomial probability of 4.5e-5. Ignored or inverted
    # weights give 0 or about 140.
    assert set(counts) == {"1", "2"}
    assert 34 <= counts["2"] <= 86


def test_delete_version_in_use(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, _source("one"))
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.delete_function(FunctionName=name, Qualifier="1")
    lam.delete_alias(FunctionName=name, Name="live")
    lam.delete_function(FunctionName=name, Qualifier="1")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName=name, Qualifier="1")
    assert _tag(lam.invoke(FunctionName=name)) == "one"


def test_lifecycle_states_and_waiters(lam) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("state-fn")
    created = lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=EXECUTION_ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": _source("one")})},
    )
    assert created["State"] == "Pending"
    assert created["StateReason"] == "The function is being created."
    assert created["StateReasonCode"] == "Creating"
    assert "LastUpdateStatus" not in created
    assert created["Architectures"] == ["x86_64"]
    assert created["EphemeralStorage"] == {"Size": 512}
    assert created["TracingConfig"] == {"Mode": "PassThrough"}
    assert created["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"}
    assert created["SnapStart"] == {"ApplyOn": "None", "OptimizationStatus": "Off"}
    assert created["PackageType"] == "Zip"

    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1})
    lam.get_waiter("function_exists").wait(FunctionName=name, WaiterConfig={"Delay": 1})
    configuration = lam.get_function(FunctionName=name)["Configuration"]
    assert configuration["State"] == "Active"

    updated = lam.update_function_configuration(FunctionName=name, Description="d2")
    assert updated["LastUpdateStatus"] == "InProgress"
    assert updated["LastUpdateStatusReasonCode"] == "Creating"
    assert updated["RevisionId"] != configuration["RevisionId"]
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1})
    after = lam.get_function_configuration(FunctionName=name)
    assert after["LastUpdateStatus"] == "Successful"
    assert after["Description"] == "d2"

    lam.delete_function(FunctionName=name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)


def test_update_with_stale_revision(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, _source("one"))
    with pytest.raises(lam.exceptions.PreconditionFailedException):
        lam.update_function_configuration(FunctionName=name, Timeout=5, RevisionId="stale")
    current = lam.get_function(FunctionName=name)["Configuration"]["RevisionId"]
    assert (
        lam.update_function_configuration(FunctionName=name, Timeout=5, RevisionId=current)[
            "Timeout"
        ]
        == 5
    )


@pytest.mark.parametrize(
    "form",
    [
        "{name}",
        "arn:aws:lambda:us-east-1:000000000000:function:{name}",
        "000000000000:function:{name}",
        "{name}:$LATEST",
    ],
)
def test_name_forms_resolve(lam, form: str) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, _source("forms"), name=unique_name("getUser"))
    reference = form.format(name=name)

    assert lam.get_function(FunctionName=reference)["Configuration"]["FunctionName"] == name
    assert lam.get_function_configuration(FunctionName=reference)["FunctionName"] == name
    assert _tag(lam.invoke(FunctionName=reference)) == "forms"
    assert lam.update_function_configuration(FunctionName=reference, Timeout=4)["Timeout"] == 4
    code = make_zip({"app.py": _source("forms")})
    assert lam.update_function_code(FunctionName=reference, ZipFile=code)["FunctionName"] == name
    lam.delete_function(FunctionName=reference)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)


def test_prefix_never_matches(lam) -> None:  # type: ignore[no-untyped-def]
    base = unique_name("getUser")
    create_python_function(lam, _source("plural"), name=base + "s")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=base)


def test_update_during_update_conflicts(tmp_path: Path) -> None:
    process = ServerProcess(
        tmp_path / "data", tmp_path / "server.log", {"LAMBDASIM_LAMBDA_UPDATE_SECONDS": "2"}
    )
    try:
        lam = client("lambda", process.endpoint)
        name = create_python_function(lam, _source("one"), role="arn:aws:iam::000000000000:role/r")

        updated = lam.update_function_configuration(FunctionName=name, Description="d2")
        with pytest.raises(lam.exceptions.ResourceConflictException) as raised:
            lam.update_function_code(
                FunctionName=name, ZipFile=make_zip({"app.py": _source("two")})
            )
        in_progress = lam.get_function_configuration(FunctionName=name)["LastUpdateStatus"]
        lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1})
        after = lam.get_function_configuration(FunctionName=name)

        assert updated["LastUpdateStatus"] == "InProgress"
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
        assert raised.value.response["Error"]["Message"] == (
            "The operation cannot be performed at this time. An update is in progress for "
            f"resource: arn:aws:lambda:us-east-1:000000000000:function:{name}"
        )
        assert in_progress == "InProgress"
        assert after["LastUpdateStatus"] == "Successful"
        assert after["Description"] == "d2"
        assert _tag(lam.invoke(FunctionName=name)) == "one"
    finally:
        process.stop()
