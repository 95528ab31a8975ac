"""The execution-role check that CreateEventSourceMapping makes.

Lambda reads the event source with the function's execution role, so AWS rejects
a mapping whose role may not call the read actions on the source. lambdasim
evaluates the role's attached managed policies and inline policies in the
embedded IAM with moto's identity-policy evaluator: an explicit Deny wins, and
otherwise one Allow is enough.

NOTE: permissions boundaries, resource policies and policy conditions are not
evaluated, and moto's evaluator does not escape `.` in wildcard patterns.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import InvalidParameterValueException
from .settings import EventSource, SourceKind

logger = logging.getLogger("lambdasim.poller")

#: For each source, the actions the role must allow, each as a tuple of
#: alternatives of which one suffices.
REQUIRED_ACTIONS: dict[SourceKind, tuple[tuple[str, ...], ...]] = {
    SourceKind.SQS: (
        ("sqs:ReceiveMessage",),
        ("sqs:DeleteMessage",),
        ("sqs:GetQueueAttributes",),
    ),
    SourceKind.KINESIS: (
        ("kinesis:GetRecords",),
        ("kinesis:GetShardIterator",),
        ("kinesis:DescribeStream", "kinesis:DescribeStreamSummary"),
        ("kinesis:ListShards",),
    ),
    SourceKind.DYNAMODB_STREAMS: (
        ("dynamodb:GetRecords",),
        ("dynamodb:GetShardIterator",),
        ("dynamodb:DescribeStream",),
        ("dynamodb:ListStreams",),
    ),
}


def _role_documents(account_id: str, role_arn: str) -> list[Any] | None:
    """Return the role's policies for moto's evaluator, or None if the role is missing."""
    from moto.iam.models import iam_backends

    iam = iam_backends[account_id]["aws"]
    role = next((r for r in iam.roles.values() if r.arn == role_arn), None)
    if role is None:
        return None
    return [*role.managed_policies.values(), *role.policies.values()]


def _allowed(documents: list[Any], action: str, resource: str) -> bool:
    from moto.iam.access_control import IAMPolicy, PermissionResult

    allowed = False
    for document in documents:
        try:
            result = IAMPolicy(document).is_action_permitted(action, resource)
        except Exception:
            # moto's evaluator raises on policy shapes it does not know; such a
            # policy grants nothing here.
            logger.warning(
                "could not evaluate a policy for %s on %s", action, resource, exc_info=True
            )
            continue
        if result == PermissionResult.DENIED:
            return False
        if result == PermissionResult.PERMITTED:
            allowed = True
    return allowed


def missing_action(account_id: str, role_arn: str, source: EventSource) -> str | None:
    """Return the first read action that `role_arn` may not call on `source`, or None.

    Reads moto's IAM backend: call it in a worker thread through
    `EmbeddedServices.run_sync`.
    """
    documents = _role_documents(account_id, role_arn) or []
    for alternatives in REQUIRED_ACTIONS[source.kind]:
        if not any(_allowed(documents, action, source.arn) for action in alternatives):
            return alternatives[0]
    return None


def check_read_access(account_id: str, role_arn: str, source: EventSource) -> None:
    """Raise AWS's InvalidParameterValueException unless the role may read `source`.

    Blocking: call it through `EmbeddedServices.run_sync`.
    """
    action = missing_action(account_id, role_arn, source)
    if action is None:
        return
    if source.kind is SourceKind.SQS:
        raise InvalidParameterValueException(
            f"The function execution role does not have permissions to call "
            f"{action.split(':', 1)[1]} on SQS"
        )
    raise InvalidParameterValueException(
        f"Cannot access stream {source.arn}. Please ensure the role can perform the "
        "GetRecords, GetShardIterator, DescribeStream, and ListStreams Actions on your "
        "stream in IAM."
    )
