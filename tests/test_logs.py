"""Invocation logs: LogType=Tail and CloudWatch Logs, with real containers."""

from __future__ import annotations

import base64
import json
import re
import time

import pytest
from conftest import client, create_python_function

pytestmark = pytest.mark.docker

LOG_SOURCE = """\
def handler(event, context):
    print("marker-123")
    if event.get("big"):
        print("x" * 10000)
    for index in range(event.get("lines", 0)):
        print(f"line-{index}")
    return {}
"""


def _tail(response: dict) -> str:
    return base64.b64decode(response["LogResult"]).decode()


def test_tail_has_report_lines(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, LOG_SOURCE)

    cold = lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    warm = lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")

    request_id = cold["ResponseMetadata"]["RequestId"]
    text = _tail(cold)
    start = text.index(f"START RequestId: {request_id} Version: $LATEST")
    marker = text.index("marker-123")
    end = text.index(f"END RequestId: {request_id}")
    report = text.index(f"REPORT RequestId: {request_id}\tDuration: ")
    assert start < marker < end < report
    report_line = text[report:].splitlines()[0]
    assert "\tBilled Duration: " in report_line
    assert "\tMemory Size: 128 MB\tMax Memory Used: " in report_line
    assert "\tInit Duration: " in report_line
    used = int(re.search(r"Max Memory Used: (\d+) MB", report_line).group(1))
    assert 1 <= used <= 128
    assert "Init Duration" not in _tail(warm)


def test_tail_is_last_four_kilobytes(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, LOG_SOURCE)

    response = lam.invoke(FunctionName=name, Payload=b'{"big": true}', LogType="Tail")

    raw = base64.b64decode(response["LogResult"])
    assert len(raw) <= 4096
    text = raw.decode()
    assert "marker-123" not in text
    assert text.rstrip("\n").splitlines()[-1].startswith("REPORT RequestId: ")


def test_no_tail_unless_asked(lam) -> None:  # type: ignore[no-untyped-def]
    name = create_python_function(lam, LOG_SOURCE)

    plain = lam.invoke(FunctionName=name, Payload=b"{}")
    explicit_none = lam.invoke(FunctionName=name, Payload=b"{}", LogType="None")

    assert "LogResult" not in plain
    assert "LogResult" not in explicit_none
    assert "x-amz-log-result" not in plain["ResponseMetadata"]["HTTPHeaders"]


def _stream_messages(logs, group: str, reports: int) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    """Poll the group's first stream until it has `reports` REPORT lines.

    Returns the stream's name and its messages.
    """
    stream, messages = "", []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        streams = []
        if logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
            streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
        if streams:
            stream = streams[0]["logStreamName"]
            events = logs.get_log_events(
                logGroupName=group, logStreamName=stream, startFromHead=True
            )["events"]
            messages = [event["message"] for event in events]
            if sum(m.startswith("REPORT ") for m in messages) >= reports:
                break
        time.sleep(0.2)
    return stream, messages


def test_cloudwatch_logs_in_order(lam, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    logs = client("logs", endpoint)
    name = create_python_function(lam, LOG_SOURCE)
    response = lam.invoke(FunctionName=name, Payload=json.dumps({"lines": 30}).encode())
    request_id = response["ResponseMetadata"]["RequestId"]
    group = f"/aws/lambda/{name}"

    stream, messages = _stream_messages(logs, group, 1)

    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", stream)
    assert messages[0] == f"START RequestId: {request_id} Version: $LATEST"
    assert messages[1] == "marker-123"
    assert messages[2:32] == [f"line-{index}" for index in range(30)]
    assert messages[32] == f"END RequestId: {request_id}"
    assert messages[33].startswith(f"REPORT RequestId: {request_id}\t")


def test_back_to_back_reports_memory(lam, endpoint: str) -> None:  # type: ignore[no-untyped-def]
    logs = client("logs", endpoint)
    name = create_python_function(lam, LOG_SOURCE)
    request_ids = []
    # Each invoke usually starts within 20 ms of the previous response, so every log
    # but the last is closed by the next invocation instead of by quiet output.
    for _ in range(5):
        response = lam.invoke(FunctionName=name, Payload=b"{}")
        request_ids.append(response["ResponseMetadata"]["RequestId"])

    _, messages = _stream_messages(logs, f"/aws/lambda/{name}", 5)

    reports = [m for m in messages if m.startswith("REPORT ")]
    assert [r.split("\t")[0] for r in reports] == [f"REPORT RequestId: {i}" for i in request_ids]
    for report in reports:
        used = int(re.search(r"Max Memory Used: (\d+) MB", report).group(1))
        assert 1 <= used <= 128, report


def test_timeout_logged(lam) -> None:  # type: ignore[no-untyped-def]
    source = "import time\ndef handler(event, context):\n    print('going to sleep')\n    time.sleep(10)\n"
    name = create_python_function(lam, source, Timeout=1)

    response = lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")

    text = _tail(response)
    request_id = response["ResponseMetadata"]["RequestId"]
    assert "going to sleep" in text
    assert f"{request_id} Task timed out after 1.00 seconds" in text
    assert f"END RequestId: {request_id}" in text
