"""Delivery of records to destinations: SQS queues and SNS topics in the embedded
services, and Lambda functions through asynchronous invocation."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from .errors import InvalidParameterValueException
from .services import EmbeddedServices

logger = logging.getLogger("lambdasim.destinations")


def _parts(arn: str) -> list[str]:
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise InvalidParameterValueException(f"The destination ARN {arn} is invalid.")
    return parts


def _send_to_queue(
    services: EmbeddedServices, arn: str, body: str, attributes: dict[str, Any]
) -> None:
    from moto.sqs.models import sqs_backends

    _, _, _, region, account, name = _parts(arn)
    backend = sqs_backends[account][region]
    backend.send_message(name, body, message_attributes=attributes or None)


def _publish_to_topic(
    services: EmbeddedServices, arn: str, body: str, attributes: dict[str, Any]
) -> None:
    from moto.sns.models import sns_backends

    _, _, _, region, account, _ = _parts(arn)
    sns_backends[account][region].publish(body, arn=arn, message_attributes=attributes or None)


async def deliver(
    services: EmbeddedServices,
    arn: str,
    record: Any,
    *,
    invoke_function: Callable[[str, bytes], None] | None = None,
    attributes: dict[str, Any] | None = None,
) -> None:
    """Send `record` (JSON-serialisable, or a string sent as is) to the destination `arn`.

    Lambda destinations are invoked asynchronously through `invoke_function`.
    Failures are logged, not raised: a lost record must not fail the invocation
    it describes.
    """
    body = record if isinstance(record, str) else json.dumps(record)
    service = _parts(arn)[2]
    try:
        if service == "sqs":
            await services.run_sync(_send_to_queue, services, arn, body, attributes or {})
        elif service == "sns":
            await services.run_sync(_publish_to_topic, services, arn, body, attributes or {})
        elif service == "lambda" and invoke_function is not None:
            invoke_function(arn, body.encode())
        else:
            logger.warning("destination %s is not supported; the record was dropped", arn)
            return
    except Exception:
        logger.exception("could not deliver a record to %s", arn)
        return
    logger.info("delivered a record to %s", arn)
