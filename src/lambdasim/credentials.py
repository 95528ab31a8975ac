"""Execution-role credentials for function containers.

A function runs with temporary credentials of its execution role, obtained with
STS AssumeRole from the embedded services, as the Lambda service does. moto's STS
hands out credentials for any role ARN without checking the role or its trust
policy, so both checks happen here. When the role is missing or does not trust
`lambda.amazonaws.com`, the function gets the account's default credentials and
a warning names the function and the role.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import logging
import urllib.parse
from typing import Any, Protocol

import attrs

from .services import EmbeddedServices

logger = logging.getLogger("lambdasim.credentials")

LAMBDA_SERVICE_PRINCIPAL = "lambda.amazonaws.com"

#: Credentials used when the execution role cannot be assumed. moto accepts any key,
#: and STS GetCallerIdentity reports them as the account's default identity.
DEFAULT_ACCESS_KEY_ID = "test"
DEFAULT_SECRET_ACCESS_KEY = "test"

#: AWS requires role session names of 2 to 64 characters.
_MIN_SESSION_NAME = 2


@attrs.frozen
class Credentials:
    """AWS credentials handed to one execution environment."""

    access_key_id: str
    secret_access_key: str = attrs.field(repr=False)
    session_token: str | None = attrs.field(default=None, repr=False)
    #: When the credentials stop working; None for the default credentials.
    expiration: datetime.datetime | None = None
    #: The assumed role's session ARN, or None for the default credentials.
    assumed_role_arn: str | None = None


class CredentialsSource(Protocol):
    """The source of execution environments' credentials."""

    async def for_function(self, function_name: str, role_arn: str) -> Credentials:
        """Return credentials of `role_arn` for a new environment of `function_name`."""
        ...


def session_name_for(function_name: str) -> str:
    """Return the STS session name Lambda uses for a function's execution role."""
    if len(function_name) < _MIN_SESSION_NAME:
        return f"{function_name}@lambda_function"
    return function_name


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statement_matches(statement: dict[str, Any]) -> bool:
    actions = [str(action).lower() for action in _as_list(statement.get("Action", []))]
    if not any(fnmatch.fnmatchcase("sts:assumerole", pattern) for pattern in actions):
        return False
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    if "*" in _as_list(principal.get("AWS", [])):
        return True
    return LAMBDA_SERVICE_PRINCIPAL in _as_list(principal.get("Service", []))


def trust_policy_allows_lambda(document: str | dict[str, Any]) -> bool:
    """Tell whether a role's trust policy lets the Lambda service assume the role.

    NOTE: conditions are not evaluated: a statement with a Condition counts as if
    the condition held.
    """
    if isinstance(document, str):
        text = document
        if text.lstrip().startswith("%7B"):
            text = urllib.parse.unquote(text)
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            return False
    if not isinstance(document, dict):
        return False
    statements = [s for s in _as_list(document.get("Statement", [])) if isinstance(s, dict)]
    matching = [s for s in statements if _statement_matches(s)]
    if any(s.get("Effect") == "Deny" for s in matching):
        return False
    return any(s.get("Effect") == "Allow" for s in matching)


@attrs.define(eq=False)
class CredentialsProvider:
    """Assumes functions' execution roles in the embedded IAM and STS."""

    services: EmbeddedServices
    session_seconds: int = 3600

    async def for_function(self, function_name: str, role_arn: str) -> Credentials:
        """Return credentials of `role_arn` for a new environment of `function_name`."""
        return await self.services.run_sync(self._assume, function_name, role_arn)

    def _assume(self, function_name: str, role_arn: str) -> Credentials:
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends

        account_id = self.services.account_id
        iam = iam_backends[account_id]["aws"]
        role_name = role_arn.rsplit("/", 1)[-1]
        role = iam.roles.get(_role_id_for_name(iam, role_name)) if role_name else None
        if role is None or role.arn != role_arn:
            logger.warning(
                "function %s: execution role %s does not exist; the function runs with "
                "the account's default credentials",
                function_name,
                role_arn,
            )
            return Credentials(DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY)
        if not trust_policy_allows_lambda(role.assume_role_policy_document):
            logger.warning(
                "function %s: the trust policy of execution role %s does not allow %s; "
                "the function runs with the account's default credentials",
                function_name,
                role_arn,
                LAMBDA_SERVICE_PRINCIPAL,
            )
            return Credentials(DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY)
        sts = sts_backends[account_id]["aws"]
        assumed = sts.assume_role(
            region_name=self.services.region,
            role_session_name=session_name_for(function_name),
            role_arn=role_arn,
            policy=None,
            duration=self.session_seconds,
            external_id=None,
        )
        expiration = assumed.expiration.replace(tzinfo=datetime.UTC)
        return Credentials(
            access_key_id=assumed.access_key_id,
            secret_access_key=assumed.secret_access_key,
            session_token=assumed.session_token,
            expiration=expiration,
            assumed_role_arn=assumed.arn,
        )


def _role_id_for_name(iam: Any, role_name: str) -> str | None:
    for role_id, role in iam.roles.items():
        if role.name == role_name:
            return role_id
    return None
