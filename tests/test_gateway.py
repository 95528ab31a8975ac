"""The one-port gateway, over real HTTP: moto services, the Lambda side and routing.

A module fixture runs the gateway with Hypercorn in a background thread (its
own `trio.run`), because boto3 blocks. The Lambda side is a small Quart-Trio
app defined here. moto keeps global state per process, so every test uses
resource names of its own.
"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import os
import queue
import socket
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import boto3
import botocore
import botocore.config
import pytest
import trio
from quart import request
from quart_trio import QuartTrio

from lambdasim.server.gateway import (
    LAMBDA_PATH_PREFIXES,
    Gateway,
    Route,
    WSGIBridge,
    build_environ,
    classify,
)
from lambdasim.server.serve import serve_http
from lambdasim.services import EmbeddedServices, configure_moto_environment

ACCOUNT_ID = "000000000000"
REGION = "us-east-1"
SIGV4 = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/{service}/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=abc"
)


def make_lambda_app() -> QuartTrio:
    """Build a stand-in for lambdasim's Quart app that names itself in every response."""
    app = QuartTrio("lambdasim-gateway-test")

    @app.route("/_lambdasim/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "served_by": "lambda_app"}

    @app.route("/2015-03-31/functions", methods=["GET"])
    async def list_functions() -> dict[str, Any]:
        return {"Functions": [], "NextMarker": "served-by-lambda-app"}

    @app.route("/v2/")
    async def registry_base() -> tuple[dict[str, str], int, dict[str, str]]:
        headers = {"Docker-Distribution-API-Version": "registry/2.0"}
        return (
            {"served_by": "registry", "authorization": request.headers.get("Authorization", "")},
            200,
            headers,
        )

    return app


@attrs.define(eq=False)
class BackgroundServer:
    """A server running `trio.run` in a thread, with a way to cancel it from outside."""

    thread: threading.Thread
    trio_token: trio.lowlevel.TrioToken
    cancel_scope: trio.CancelScope
    address: tuple[str, int]

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    def stop(self) -> None:
        self.trio_token.run_sync_soon(self.cancel_scope.cancel)
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the server thread did not stop within 30 s"


def start_background_server(app: Any) -> BackgroundServer:
    """Serve `app` on 127.0.0.1:0 in a new thread, and return once it accepts connections."""
    started: queue.Queue[tuple[Any, ...]] = queue.Queue()

    async def main() -> None:
        with trio.CancelScope() as cancel_scope:
            async with trio.open_nursery() as nursery:
                try:
                    address = await nursery.start(
                        lambda task_status: serve_http(
                            app, host="127.0.0.1", port=0, task_status=task_status
                        )
                    )
                except BaseException as exc:
                    started.put((exc,))
                    raise
                started.put((trio.lowlevel.current_trio_token(), cancel_scope, address))

    thread = threading.Thread(target=trio.run, args=(main,), name="gateway-test-server")
    thread.start()
    result = started.get(timeout=60)
    if len(result) == 1:
        thread.join(timeout=30)
        raise RuntimeError("the test server failed to start") from result[0]
    token, cancel_scope, address = result
    return BackgroundServer(thread, token, cancel_scope, address)


@pytest.fixture(scope="module")
def services() -> EmbeddedServices:
    return EmbeddedServices(account_id=ACCOUNT_ID, region=REGION)


@pytest.fixture(scope="module")
def server(services: EmbeddedServices) -> Iterator[BackgroundServer]:
    gateway = Gateway(lambda_app=make_lambda_app(), aws_app=WSGIBridge(services))
    background = start_background_server(gateway)
    yield background
    background.stop()


@pytest.fixture(scope="module")
def client(server: BackgroundServer) -> Any:
    """Return a factory of boto3 clients for the gateway, with dummy credentials."""

    def make(service: str, signature_version: str | None = None) -> Any:
        config = botocore.config.Config(
            retries={"total_max_attempts": 1}, signature_version=signature_version
        )
        return boto3.client(
            service,
            endpoint_url=server.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=config,
        )

    return make


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# --- S3 -------------------------------------------------------------------------------


def test_s3_object_round_trip(client: Any) -> None:
    s3 = client("s3")
    bucket = unique("bucket")
    s3.create_bucket(Bucket=bucket)

    s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello world")
    assert s3.get_object(Bucket=bucket, Key="hello.txt")["Body"].read() == b"hello world"

    head = s3.head_object(Bucket=bucket, Key="hello.txt")
    assert head["ContentLength"] == 11
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200

    deleted = s3.delete_object(Bucket=bucket, Key="hello.txt")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="hello.txt")
    assert missing.value.response["Error"]["Code"] == "404"


def test_s3_escaped_key_and_metadata_names(client: Any) -> None:
    s3 = client("s3")
    bucket = unique("bucket")
    s3.create_bucket(Bucket=bucket)
    key = "folder%2Fname/with space.txt"

    s3.put_object(
        Bucket=bucket, Key=key, Body=b"data", Metadata={"my_key": "v1", "other-key": "v2"}
    )

    listed = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == [key]
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == b"data"
    assert got["Metadata"] == {"my_key": "v1", "other-key": "v2"}


@pytest.mark.parametrize(
    ("signature_version", "credential_parameter"),
    [("s3v4", "X-Amz-Credential="), (None, "AWSAccessKeyId=")],
    ids=["sigv4", "boto3-default-sigv2"],
)
def test_s3_presigned_get_with_urllib(
    client: Any, server: BackgroundServer, signature_version: str | None, credential_parameter: str
) -> None:
    s3 = client("s3", signature_version=signature_version)
    bucket = unique("bucket")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="shared.bin", Body=b"\x00\x01presigned")

    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared.bin"}, ExpiresIn=300
    )
    assert url.startswith(server.url + "/")
    assert credential_parameter in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.read() == b"\x00\x01presigned"


def test_s3_multipart_unseekable_upload(client: Any) -> None:
    s3 = client("s3")
    bucket = unique("bucket")
    s3.create_bucket(Bucket=bucket)
    # 9 MiB exceeds boto3's 8 MiB multipart threshold, so the body arrives as
    # several parts, each in several ASGI body messages.
    data = bytes(range(256)) * (9 * 4096)

    s3.upload_fileobj(UnseekableStream(data), bucket, "big.bin")

    got = s3.get_object(Bucket=bucket, Key="big.bin")
    assert got["ETag"].endswith('-2"')
    assert got["Body"].read() == data


def test_s3_put_with_chunked_transfer_encoding(client: Any, server: BackgroundServer) -> None:
    s3 = client("s3")
    bucket = unique("bucket")
    s3.create_bucket(Bucket=bucket)

    connection = http.client.HTTPConnection(*server.address, timeout=10)
    connection.request(
        "PUT", f"/{bucket}/chunked.txt", body=iter([b"hello ", b"chunked"]), encode_chunked=True
    )
    response = connection.getresponse()
    response.read()
    connection.close()

    assert response.status == 200
    assert s3.get_object(Bucket=bucket, Key="chunked.txt")["Body"].read() == b"hello chunked"


class UnseekableStream(io.RawIOBase):
    """A readable stream that cannot seek, so boto3 cannot know its length up front."""

    def __init__(self, data: bytes) -> None:
        self._buffer = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        chunk = self._buffer.read(len(target))
        target[: len(chunk)] = chunk
        return len(chunk)


# --- Other services -------------------------------------------------------------------


def test_dynamodb_put_and_get(client: Any) -> None:
    dynamodb = client("dynamodb")
    table = unique("table")
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    dynamodb.put_item(TableName=table, Item={"pk": {"S": "a"}, "value": {"N": "42"}})

    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": "a"}})["Item"]
    assert item == {"pk": {"S": "a"}, "value": {"N": "42"}}


def test_dynamodb_streams_list_streams(client: Any) -> None:
    dynamodb = client("dynamodb")
    table = unique("streamed")
    created = dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    stream_arn = created["TableDescription"]["LatestStreamArn"]

    streams = client("dynamodbstreams").list_streams(TableName=table)["Streams"]

    assert [stream["StreamArn"] for stream in streams] == [stream_arn]


def test_sqs_send_and_receive(client: Any) -> None:
    sqs = client("sqs")
    queue_url = sqs.create_queue(QueueName=unique("queue"))["QueueUrl"]

    sqs.send_message(QueueUrl=queue_url, MessageBody="hello queue")

    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1)["Messages"]
    assert [message["Body"] for message in messages] == ["hello queue"]


def test_iam_role_with_aws_managed_policy(client: Any) -> None:
    iam = client("iam")
    role = unique("role")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))

    policy_arn = "arn:aws:iam::aws:policy/AmazonS3FullAccess"
    iam.attach_role_policy(RoleName=role, PolicyArn=policy_arn)

    attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    assert [policy["PolicyArn"] for policy in attached] == [policy_arn]


def test_sts_caller_identity_account(client: Any) -> None:
    identity = client("sts").get_caller_identity()

    assert identity["Account"] == ACCOUNT_ID


def test_services_run_sync_reads_moto_backend(client: Any, services: EmbeddedServices) -> None:
    role = unique("direct-read")
    client("iam").create_role(RoleName=role, AssumeRolePolicyDocument="{}")

    def role_arn() -> str:
        from moto.iam.models import iam_backends

        return iam_backends[ACCOUNT_ID]["aws"].get_role(role).arn

    arn = trio.run(services.run_sync, role_arn)

    assert arn == f"arn:aws:iam::{ACCOUNT_ID}:role/{role}"


def test_configure_moto_rejects_other_account(services: EmbeddedServices) -> None:
    trio.run(services.load)

    with pytest.raises(RuntimeError, match="already imported with account 000000000000"):
        configure_moto_environment("111111111111")

    assert os.environ["MOTO_ACCOUNT_ID"] == ACCOUNT_ID


@pytest.mark.parametrize("account_id", ["12345", "abcdefghijkl", "0000000000000"])
def test_configure_moto_rejects_invalid_account(account_id: str) -> None:
    with pytest.raises(ValueError, match="account_id must be 12 digits"):
        configure_moto_environment(account_id)


def test_embedded_services_rejects_zero_threads() -> None:
    with pytest.raises(ValueError, match="max_threads must be at least 1, got 0"):
        EmbeddedServices(max_threads=0)


# --- The Lambda side ------------------------------------------------------------------


def test_control_path_reaches_lambda_app(server: BackgroundServer) -> None:
    with urllib.request.urlopen(f"{server.url}/_lambdasim/health", timeout=10) as response:
        body = json.load(response)

    assert body == {"status": "ok", "served_by": "lambda_app"}


def test_signed_lambda_request_reaches_lambda_app(client: Any) -> None:
    listed = client("lambda").list_functions()

    assert listed["NextMarker"] == "served-by-lambda-app"


def test_registry_basic_auth_reaches_lambda_app(server: BackgroundServer) -> None:
    registry_request = urllib.request.Request(
        f"{server.url}/v2/", headers={"Authorization": "Basic QVdTOnRva2Vu"}
    )
    with urllib.request.urlopen(registry_request, timeout=10) as response:
        assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        body = json.load(response)

    assert body == {"served_by": "registry", "authorization": "Basic QVdTOnRva2Vu"}


def test_keep_alive_survives_2000_requests(server: BackgroundServer) -> None:
    connection = http.client.HTTPConnection(*server.address, timeout=10)
    connection.request("GET", "/_lambdasim/health")
    connection.getresponse().read()
    first_socket = connection.sock

    for _ in range(2000):
        connection.request("GET", "/_lambdasim/health")
        response = connection.getresponse()
        response.read()
        assert response.status == 200

    assert connection.sock is first_socket
    connection.close()


def test_services_reset_deletes_resources(client: Any, services: EmbeddedServices) -> None:
    sqs = client("sqs")
    queue_name = unique("reset")
    sqs.create_queue(QueueName=queue_name)

    trio.run(services.run_sync, services.reset)

    assert sqs.list_queues(QueueNamePrefix=queue_name).get("QueueUrls", []) == []
    # The IAM backend is created again with the AWS managed policies.
    policy = client("iam").get_policy(PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")
    assert policy["Policy"]["PolicyName"] == "AmazonS3FullAccess"


# --- classify -------------------------------------------------------------------------


def http_scope(
    path: str,
    *,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    query_string: bytes = b"",
) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": quote(path).encode("ascii"),
        "query_string": query_string,
        "headers": headers or [],
    }


def signed(service: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", SIGV4.format(service=service).encode("ascii"))]


@pytest.mark.parametrize(
    ("scope", "route"),
    [
        (
            http_scope(
                "/2015-03-31/functions/f/invocations", method="POST", headers=signed("lambda")
            ),
            Route.LAMBDA,
        ),
        (http_scope("/2018-10-31/layers", headers=signed("lambda")), Route.LAMBDA),
        (http_scope("/my-bucket/key", headers=signed("s3")), Route.AWS),
        (http_scope("/", method="POST", headers=signed("dynamodb")), Route.AWS),
        (http_scope("/", method="POST", headers=signed("sts")), Route.AWS),
        # A signed SES v2 request shares the registry's /v2/ prefix.
        (http_scope("/v2/email/identities", headers=signed("ses")), Route.AWS),
        # A signed request to a Lambda-looking path still goes by its signature.
        (http_scope("/2015-03-31/functions", headers=signed("s3")), Route.AWS),
        (http_scope("/_lambdasim/health", headers=signed("s3")), Route.LAMBDA),
    ],
    ids=[
        "lambda-invoke",
        "lambda-layers",
        "s3",
        "dynamodb",
        "sts",
        "sesv2",
        "s3-date-path",
        "control",
    ],
)
def test_classify_signed(scope: dict[str, Any], route: Route) -> None:
    assert classify(scope) is route


@pytest.mark.parametrize(
    ("scope", "route"),
    [
        (http_scope("/2015-03-31/functions/"), Route.LAMBDA),
        (http_scope("/2014-11-13/functions/f/invoke-async/", method="POST"), Route.LAMBDA),
        (http_scope("/2021-10-31/functions/f/url"), Route.LAMBDA),
        (http_scope("/_lambdasim/health"), Route.LAMBDA),
        (http_scope("/v2/"), Route.REGISTRY),
        (http_scope("/v2/repo/blobs/uploads/", method="POST"), Route.REGISTRY),
        (
            http_scope(
                "/v2/repo/manifests/latest", headers=[(b"authorization", b"Basic QVdTOnRva2Vu")]
            ),
            Route.REGISTRY,
        ),
        (
            http_scope("/v2/repo/manifests/latest", headers=[(b"authorization", b"Bearer token")]),
            Route.REGISTRY,
        ),
        (http_scope("/public-bucket/key"), Route.AWS),
        (http_scope("/"), Route.AWS),
        # SigV2 has no credential scope, so it is routed like an unsigned request.
        (
            http_scope("/bucket/key", headers=[(b"authorization", b"AWS AKID:c2lnbmF0dXJl")]),
            Route.AWS,
        ),
        (http_scope("/2015-03-31x/functions"), Route.AWS),
    ],
    ids=[
        "lambda-path",
        "lambda-2014-path",
        "lambda-url-path",
        "control",
        "registry-base",
        "registry-upload",
        "registry-basic-auth",
        "registry-bearer",
        "anonymous-s3",
        "root",
        "sigv2",
        "not-a-lambda-prefix",
    ],
)
def test_classify_unsigned(scope: dict[str, Any], route: Route) -> None:
    assert classify(scope) is route


@pytest.mark.parametrize(
    ("credential", "route"),
    [
        (b"AKID%2F20240101%2Fus-east-1%2Fs3%2Faws4_request", Route.AWS),
        (b"AKID%2F20240101%2Fus-east-1%2Flambda%2Faws4_request", Route.LAMBDA),
    ],
    ids=["s3", "lambda"],
)
def test_classify_presigned(credential: bytes, route: Route) -> None:
    query = (
        b"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + credential + b"&X-Amz-Signature=abc"
    )
    # Even a presigned URL whose path looks like the Lambda API goes by its scope.
    scope = http_scope("/2015-03-31/functions/", query_string=query)

    assert classify(scope) is route


def test_classify_presigned_registry_path_is_aws() -> None:
    query = b"X-Amz-Credential=AKID%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"

    assert classify(http_scope("/v2/object", query_string=query)) is Route.AWS


def test_classify_sigv4a_scope() -> None:
    headers = [
        (
            b"authorization",
            b"AWS4-ECDSA-P256-SHA256 Credential=AKID/20240101/lambda/aws4_request, Signature=abc",
        )
    ]

    assert classify(http_scope("/anything", headers=headers)) is Route.LAMBDA


def test_lambda_prefixes_match_botocore_model() -> None:
    data_dir = Path(botocore.__file__).parent / "data" / "lambda"
    prefixes = set()
    for model_path in data_dir.glob("*/service-2.json*"):
        opener = gzip.open if model_path.suffix == ".gz" else open
        with opener(model_path, "rt") as model_file:
            model = json.load(model_file)
        for operation in model["operations"].values():
            first_segment = operation["http"]["requestUri"].split("/")[1]
            prefixes.add(f"/{first_segment}/")

    assert prefixes == set(LAMBDA_PATH_PREFIXES)


# --- The WSGI bridge ------------------------------------------------------------------


def test_build_environ_raw_uri_and_headers() -> None:
    scope = http_scope(
        "/bucket/a/b",
        method="PUT",
        headers=[
            (b"host", b"127.0.0.1:4599"),
            (b"content-type", b"text/plain"),
            (b"content-length", b"999"),
            (b"x-amz-meta-my_key", b"kept"),
            (b"x-custom_header", b"dropped"),
            (b"x-amz-meta-dup-name", b"dashed"),
            (b"x-amz-meta-dup_name", b"underscored"),
            (b"x-repeated", b"one"),
            (b"x-repeated", b"two"),
        ],
        query_string=b"tagging=",
    )
    scope["raw_path"] = b"/bucket/a%2Fb"

    environ = build_environ(scope, b"body")

    assert environ["PATH_INFO"] == "/bucket/a/b"
    assert environ["RAW_URI"] == "/bucket/a%2Fb?tagging="
    assert environ["REQUEST_URI"] == "/bucket/a%2Fb?tagging="
    assert environ["QUERY_STRING"] == "tagging="
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "4"
    assert environ["wsgi.input"].read() == b"body"
    assert environ["HTTP_HOST"] == "127.0.0.1:4599"
    assert environ["HTTP_X_AMZ_META_MY_KEY"] == "kept"
    assert "HTTP_X_CUSTOM_HEADER" not in environ
    assert environ["HTTP_X_AMZ_META_DUP_NAME"] == "dashed"
    assert environ["HTTP_X_REPEATED"] == "one,two"
    assert environ["moto.preserved_header_names"] == {"HTTP_X_AMZ_META_MY_KEY": "x-amz-meta-my_key"}


def test_build_environ_encodes_unicode_path_as_latin1() -> None:
    scope = http_scope("/bucket/caf\u00e9")
    scope["raw_path"] = b"/bucket/caf%C3%A9"

    environ = build_environ(scope, b"")

    assert environ["PATH_INFO"] == "/bucket/caf\u00c3\u00a9"
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/bucket/caf\u00e9"
    assert environ["HTTP_HOST"] == "localhost:80"


def run_bridge(
    bridge: WSGIBridge, scope: dict[str, Any], body: bytes = b""
) -> list[dict[str, Any]]:
    """Send one request through `bridge` in a new trio run and return the ASGI messages it sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    trio.run(bridge, scope, receive, send)
    return sent


def test_bridge_sends_start_for_empty_body(services: EmbeddedServices) -> None:
    def no_content(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("204 No Content", [("x-test", "yes")])
        return []

    sent = run_bridge(WSGIBridge(services, no_content), http_scope("/", method="DELETE"))

    assert sent == [
        {"type": "http.response.start", "status": 204, "headers": [(b"x-test", b"yes")]},
        {"type": "http.response.body", "body": b"", "more_body": False},
    ]


def test_bridge_streams_each_chunk(services: EmbeddedServices) -> None:
    def chunked(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"a", b"", b"b"]

    sent = run_bridge(WSGIBridge(services, chunked), http_scope("/"))

    assert sent[1:] == [
        {"type": "http.response.body", "body": b"a", "more_body": True},
        {"type": "http.response.body", "body": b"b", "more_body": False},
    ]


def test_bridge_turns_exception_into_500(
    services: EmbeddedServices, caplog: pytest.LogCaptureFixture
) -> None:
    def failing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise KeyError("broken backend")

    sent = run_bridge(WSGIBridge(services, failing), http_scope("/x", method="POST"))

    assert sent[0]["status"] == 500
    assert b"KeyError" in sent[1]["body"]
    assert "embedded AWS service failed on POST /x" in caplog.text


# --- serve_http -----------------------------------------------------------------------


def make_lifespan_app(
    events: list[str], slow_request_arrived: trio.Event | None = None
) -> QuartTrio:
    app = QuartTrio("lambdasim-serve-test")

    @app.before_serving
    async def startup() -> None:
        events.append("startup")

    @app.after_serving
    async def shutdown() -> None:
        events.append("shutdown")

    @app.route("/slow")
    async def slow() -> str:
        if slow_request_arrived is not None:
            slow_request_arrived.set()
        # Still running when the test cancels the server.
        await trio.sleep(0.3)
        return "finished"

    return app


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def refuses_connections(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


async def test_serve_http_cancel_is_graceful() -> None:
    events: list[str] = []
    slow_result: list[bytes] = []
    slow_request_arrived = trio.Event()
    app = make_lifespan_app(events, slow_request_arrived)

    async with trio.open_nursery() as nursery:
        address = await nursery.start(
            lambda task_status: serve_http(app, host="127.0.0.1", port=0, task_status=task_status)
        )
        assert address[0] == "127.0.0.1"
        assert address[1] != 0
        assert events == ["startup"]

        async def request_slow() -> None:
            slow_result.append(
                await trio.to_thread.run_sync(fetch, f"http://{address[0]}:{address[1]}/slow")
            )

        nursery.start_soon(request_slow)
        await slow_request_arrived.wait()
        nursery.cancel_scope.cancel()

    assert slow_result == [b"finished"]
    assert events == ["startup", "shutdown"]
    assert await trio.to_thread.run_sync(refuses_connections, address)


async def test_serve_http_shutdown_trigger_returns() -> None:
    events: list[str] = []
    trigger = trio.Event()

    async with trio.open_nursery() as nursery:
        address = await nursery.start(
            lambda task_status: serve_http(
                make_lifespan_app(events),
                host="127.0.0.1",
                port=0,
                task_status=task_status,
                shutdown_trigger=trigger.wait,
            )
        )
        trigger.set()

    assert events == ["startup", "shutdown"]
    assert await trio.to_thread.run_sync(refuses_connections, address)


async def test_serve_http_port_in_use_raises_oserror() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async with trio.open_nursery() as nursery:
            with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
                await nursery.start(
                    lambda task_status: serve_http(
                        make_lifespan_app([]), host="127.0.0.1", port=port, task_status=task_status
                    )
                )
