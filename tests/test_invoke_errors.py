"""Function errors, timeouts and bad requests, through the HTTP API."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from conftest import EXECUTION_ROLE, create_python_function, make_zip, unique_name

pytestmark = pytest.mark.docker


def _raw(
    endpoint: str, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict, dict]:
    """Send an unsigned request; return status, headers and the JSON body."""
    request = urllib.request.Request(endpoint + path, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, headers, data = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, data = error.code, dict(error.headers), error.read()
    lowered = {key.lower(): value for key, value in headers.items()}
    return status, lowered, json.loads(data) if data else {}


def test_handler_error_is_unhandled(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(
        lam, 'def handler(event, context):\n    raise ValueError("boom")\n'
    )

    response = lam.invoke(FunctionName=name, Payload=b"{}")

    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert response["ExecutedVersion"] == "$LATEST"
    body = json.loads(response["Payload"].read())
    assert body["errorMessage"] == "boom"
    assert body["errorType"] == "ValueError"
    assert body["requestId"] == response["ResponseMetadata"]["RequestId"]
    assert 'raise ValueError("boom")' in "".join(body["stackTrace"])
    assert "/var/task/app.py" in "".join(body["stackTrace"])


def test_timeout_kills_invocation(lam) -> None:  # type: ignore[no-untyped-def]
    source = "import time\ndef handler(event, context):\n    time.sleep(30)\n"
    name = create_python_function(lam, source, Timeout=1)

    started = time.monotonic()
    response = lam.invoke(FunctionName=name, Payload=b"{}")
    elapsed = time.monotonic() - started

    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    body = json.loads(response["Payload"].read())
    request_id = response["ResponseMetadata"]["RequestId"]
    assert body == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after 1.00 seconds",
    }
    # Killed at the timeout, not when the handler's 30 s sleep ends.
    assert elapsed < 20


def test_after_timeout_next_invoke_works(lam) -> None:  # type: ignore[no-untyped-def]
    source = (
        "import time\n"
        "def handler(event, context):\n"
        "    time.sleep(event.get('sleep', 0))\n"
        "    return 'done'\n"
    )
    name = create_python_function(lam, source, Timeout=1)

    first = lam.invoke(FunctionName=name, Payload=b'{"sleep": 5}')
    second = lam.invoke(FunctionName=name, Payload=b'{"sleep": 0}')

    assert first["FunctionError"] == "Unhandled"
    assert "FunctionError" not in second
    assert json.loads(second["Payload"].read()) == "done"


def test_container_exit_mid_invocation(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, "import os\ndef handler(event, context):\n    os._exit(3)\n")

    response = lam.invoke(FunctionName=name, Payload=b"{}")

    body = json.loads(response["Payload"].read())
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert body["errorMessage"].endswith("Error: Runtime exited with error: exit status 3")


@pytest.mark.parametrize(
    ("handler", "source", "error_type", "message_start"),
    [
        (
            "missing.handler",
            "def handler(e, c):\n    return 1\n",
            "Runtime.ImportModuleError",
            "Unable to import module 'missing': No module named 'missing'",
        ),
        (
            "app.nothere",
            "def handler(e, c):\n    return 1\n",
            "Runtime.HandlerNotFound",
            "Handler 'nothere' missing on module 'app'",
        ),
        (
            "app",
            "def handler(e, c):\n    return 1\n",
            "Runtime.MalformedHandlerName",
            "Bad handler 'app': ",
        ),
        (
            "app.handler",
            "def handler(:\n",
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module 'app': ",
        ),
    ],
)
def test_init_errors(lam, handler: str, source: str, error_type: str, message_start: str) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, source, Handler=handler)

    for _ in range(2):  # the same error again: no stuck container
        response = lam.invoke(FunctionName=name, Payload=b"{}")
        body = json.loads(response["Payload"].read())
        assert response["StatusCode"] == 200
        assert response["FunctionError"] == "Unhandled"
        assert body["errorType"] == error_type
        assert body["errorMessage"].startswith(message_start)
        assert body["requestId"] == ""


def test_empty_payload_and_null_result(lam) -> None:  # type: ignore[no-untyped-def]
    source = (
        "def handler(event, context):\n"
        "    if event.get('quiet'): return None\n"
        "    return {'type': type(event).__name__, 'event': event}\n"
    )
    name = create_python_function(lam, source)

    empty = lam.invoke(FunctionName=name)
    quiet = lam.invoke(FunctionName=name, Payload=b'{"quiet": true}')

    assert json.loads(empty["Payload"].read()) == {"type": "dict", "event": {}}
    assert quiet["Payload"].read() == b"null"
    assert "FunctionError" not in quiet


def test_json_scalars_accepted(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, "def handler(event, context):\n    return [event]\n")

    text = lam.invoke(FunctionName=name, Payload=b'"just a string"')
    number = lam.invoke(FunctionName=name, Payload=b"42")

    assert json.loads(text["Payload"].read()) == ["just a string"]
    assert json.loads(number["Payload"].read()) == [42]


@pytest.mark.parametrize(
    ("payload", "detail"),
    [(b"not json", None), (b'{"body": "n\x87r"}', "Invalid UTF-8 start byte 0x87")],
)
def test_invalid_json_payload(lam, endpoint: str, payload: bytes, detail: str | None) -> None:  # type: ignore[no-untyped-def]
    marker = unique_name("marker")
    name = create_python_function(lam, f"def handler(event, context):\n    print('{marker}')\n")

    status, headers, body = _raw(
        endpoint, "POST", f"/2015-03-31/functions/{name}/invocations", payload
    )

    assert status == 400
    assert headers["x-amzn-errortype"] == "InvalidRequestContentException"
    assert body["Type"] == "User"
    assert body["message"].startswith(
        "Could not parse request body into json: Could not parse payload into json: "
    )
    if detail:
        assert detail in body["message"]


def test_unknown_function(lam, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    arn = "arn:aws:lambda:us-east-1:000000000000:function:nope"
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as invoked:
        lam.invoke(FunctionName="nope", Payload=b"{}")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as got:
        lam.get_function(FunctionName="nope")
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as deleted:
        lam.delete_function(FunctionName="nope")
    status, headers, body = _raw(endpoint, "GET", "/2015-03-31/functions/nope")

    assert invoked.value.response["Error"]["Message"] == f"Function not found: {arn}:$LATEST"
    assert invoked.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert got.value.response["Error"]["Message"] == f"Function not found: {arn}"
    assert deleted.value.response["Error"]["Message"] == f"Function not found: {arn}"
    assert status == 404
    assert headers["x-amzn-errortype"] == "ResourceNotFoundException"
    assert body == {"Type": "User", "Message": f"Function not found: {arn}"}


@pytest.mark.parametrize("code", [b"this is not a zip", make_zip({"app.py": "x"})[:40]])
def test_bad_zip(lam, code: bytes) -> None:  # type: ignore[no-untyped-def]
    name = unique_name("bad-zip")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as raised:
        lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=EXECUTION_ROLE,
            Handler="app.handler",
            Code={"ZipFile": code},
        )
    assert raised.value.response["Error"]["Message"].startswith("Could not unzip uploaded file.")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)


def test_zip_slip_rejected(lam) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as raised:
        lam.create_function(
            FunctionName=unique_name("slip"),
            Runtime="python3.12",
            Role=EXECUTION_ROLE,
            Handler="app.handler",
            Code={"ZipFile": make_zip({"../../escape.py": "x = 1"})},
        )
    assert "../../escape.py" in raised.value.response["Error"]["Message"]


def test_unknown_runtime(lam) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as raised:
        lam.create_function(
            FunctionName=unique_name("rt"),
            Runtime="python9.9",
            Role=EXECUTION_ROLE,
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": "x = 1"})},
        )
    message = raised.value.response["Error"]["Message"]
    assert "Value 'python9.9' at 'runtime' failed to satisfy constraint" in message
    assert "python3.12" in message
    assert "nodejs20.x" in message


def test_deprecated_runtime(lam) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as raised:
        lam.create_function(
            FunctionName=unique_name("rt"),
            Runtime="python3.7",
            Role=EXECUTION_ROLE,
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": "x = 1"})},
        )
    assert raised.value.response["Error"]["Message"].startswith(
        "The runtime parameter of python3.7 is no longer supported"
    )


def test_missing_handler_parameter(lam, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps(
        {
            "FunctionName": unique_name("no-handler"),
            "Runtime": "python3.12",
            "Role": EXECUTION_ROLE,
            "Code": {"ZipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="},
        }
    ).encode()

    status, headers, answer = _raw(endpoint, "POST", "/2015-03-31/functions", body)

    assert status == 400
    assert headers["x-amzn-errortype"] == "InvalidParameterValueException"
    assert answer["message"] == (
        "Runtime and Handler are mandatory parameters for functions created with deployment "
        "packages."
    )


def test_duplicate_function(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, "def handler(e, c):\n    return 1\n")
    with pytest.raises(lam.exceptions.ResourceConflictException) as raised:
        create_python_function(lam, "def handler(e, c):\n    return 2\n", name=name)
    assert raised.value.response["Error"]["Message"] == f"Function already exist: {name}"


def test_environment_limit(lam) -> None:  # type: ignore[no-untyped-def]
    fits = create_python_function(
        lam, "def handler(e, c):\n    return 1\n", Environment={"Variables": {"BIG": "x" * 4086}}
    )
    assert lam.get_function(FunctionName=fits)["Configuration"]["Environment"]["Variables"]["BIG"]

    name = unique_name("env-big")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as raised:
        create_python_function(
            lam, "x = 1", name=name, Environment={"Variables": {"BIG": "x" * 4087}}
        )
    assert raised.value.response["Error"]["Message"] == (
        "Lambda was unable to configure your environment variables because the environment "
        "variables you have provided exceeded the 4KB limit. String measured: "
        + json.dumps({"BIG": "x" * 4087}, separators=(",", ":"))
    )
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)


@pytest.mark.parametrize(
    ("variables", "listed"),
    [
        ({"AWS_REGION": "eu-west-1"}, ["AWS_REGION"]),
        (
            {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
            ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
        ),
    ],
)
def test_reserved_variables(lam, variables: dict, listed: list[str]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as raised:
        create_python_function(lam, "x = 1", Environment={"Variables": variables})
    message = raised.value.response["Error"]["Message"]
    prefix = (
        "Lambda was unable to configure your environment variables because the environment "
        "variables you have provided contains reserved keys that are currently not supported "
        "for modification. Reserved keys used in this request: "
    )
    assert message.startswith(prefix)
    assert sorted(message[len(prefix) :].split(", ")) == listed


def test_dry_run(lam, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, "def handler(e, c):\n    return 1\n")

    response = lam.invoke(FunctionName=name, InvocationType="DryRun", Payload=b"{}")

    assert response["StatusCode"] == 204
    assert response["Payload"].read() == b""
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName="nope-dry", InvocationType="DryRun")


def test_unsupported_operation_named(lam) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(lam.exceptions.ClientError) as raised:
        lam.list_code_signing_configs()
    error = raised.value.response["Error"]
    assert error["Code"] == "UnsupportedOperationException"
    assert "ListCodeSigningConfigs" in error["Message"]


def test_server_keeps_serving(lam, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        _raw(endpoint, "POST", "/2015-03-31/functions", b"{not json")
        _raw(endpoint, "POST", "/2015-03-31/functions/nope/invocations", b"x")

    status, _, health = _raw(endpoint, "GET", "/_lambdasim/health")

    assert status == 200
    assert health["status"] == "ok"
    assert health["docker"] is True
    assert lam.list_functions()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_late_body_keeps_connection(endpoint: str) -> None:
    import http.client
    import socket

    host, port = endpoint.removeprefix("http://").split(":")
    body = b'{"AllowedPublishers": {"SigningProfileVersionArns": ["x"]}}'
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        # Headers first and the body later, as boto3 sends them. The server may respond
        # before the body arrives, and the connection must still serve the next request.
        connection.sendall(
            b"POST /2020-04-22/code-signing-configs/ HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        time.sleep(0.3)
        connection.sendall(body)
        first = http.client.HTTPResponse(connection)
        first.begin()
        first.read()
        connection.sendall(
            b"GET /2019-09-30/functions/nope-late/concurrency HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        second = http.client.HTTPResponse(connection)
        second.begin()
        answer = json.loads(second.read())

    assert first.status == 400
    assert second.status == 404
    assert answer["Message"].endswith(":function:nope-late")
