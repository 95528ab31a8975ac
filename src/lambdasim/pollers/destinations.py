"""On-failure destinations of stream mappings: the SQS queue or SNS topic for discarded batches."""

from __future__ import annotations

import datetime
import json
from typing import Any

from ..invoke import InvocationResult


def _iso_millis(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def failure_record(
    *,
    function_arn: str,
    condition: str,
    invoke_count: int,
    result: InvocationResult | None,
    batch_info_key: str,
    shard_id: str,
    stream_arn: str,
    first: tuple[int, float],
    last: tuple[int, float],
    batch_size: int,
    now: float,
) -> dict[str, Any]:
    """Return the invocation record AWS sends for a discarded stream batch.

    `condition` is `RetryAttemptsExhausted` or `RecordAgeExceeded`; `first` and
    `last` are the (sequence number, arrival time) of the batch's first and last
    records. The records themselves are not included, as on AWS.
    """
    request_context: dict[str, Any] = {
        "requestId": result.request_id if result is not None else None,
        "functionArn": function_arn,
        "condition": condition,
        "approximateInvokeCount": invoke_count,
    }
    document: dict[str, Any] = {"requestContext": request_context}
    if result is not None:
        document["responseContext"] = result.response_context()
    document["version"] = "1.0"
    document["timestamp"] = _iso_millis(now)
    document[batch_info_key] = {
        "shardId": shard_id,
        "startSequenceNumber": str(first[0]),
        "endSequenceNumber": str(last[0]),
        "approximateArrivalOfFirstRecord": _iso_millis(first[1]),
        "approximateArrivalOfLastRecord": _iso_millis(last[1]),
        "batchSize": batch_size,
        "streamArn": stream_arn,
    }
    return document


def send_failure_record(destination_arn: str, document: dict[str, Any]) -> None:
    """Send `document` to an SQS queue or SNS topic of the embedded services.

    Blocking: call it through `EmbeddedServices.run_sync`. Raises LookupError when
    the destination does not exist.
    """
    _, _, service, region, account_id, name = destination_arn.split(":", 5)
    body = json.dumps(document)
    if service == "sqs":
        from moto.sqs.models import sqs_backends

        backend = sqs_backends[account_id][region]
        if name not in backend.queues:
            raise LookupError(f"queue {destination_arn} does not exist")
        backend.send_message(name, body)
        return
    from moto.sns.models import sns_backends

    sns = sns_backends[account_id][region]
    if destination_arn not in sns.topics:
        raise LookupError(f"topic {destination_arn} does not exist")
    sns.publish(body, arn=destination_arn)
