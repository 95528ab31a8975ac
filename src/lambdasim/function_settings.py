"""Per-function settings kept beside the function: tags, resource policies and
asynchronous invocation configurations.

`FunctionSettings` stores them by function name and qualifier, and validates
every value with AWS's limits and error messages. The settings hold no
reference to the simulator, so the operations of the Lambda API take it as
their first argument and resolve function names, ARNs and qualifiers through
`Simulator.get_function`. The simulator calls `forget` when it deletes a
function, and the asynchronous invoker reads `event_invoke_config`.

Tags belong to the function itself. Policies and invocation configurations
belong to one qualifier each: the unqualified function, a version or an alias.
An unqualified invocation configuration is the one of `$LATEST`, as on AWS.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .arns import function_arn, parse_function_ref
from .errors import (
    InvalidParameterValueException,
    PolicyLengthExceededException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
    ValidationException,
)

if TYPE_CHECKING:
    from .simulator import Simulator

LATEST = "$LATEST"

MAX_TAGS = 50
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256
#: Characters AWS allows in tag keys and values besides letters, numbers and spaces.
_TAG_PUNCTUATION = frozenset("_.:/=+-@")
#: The pattern that AWS's tag validation messages quote.
_TAG_PATTERN_TEXT = r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$"

#: Size in bytes of the JSON policy document that AWS allows per function, version or alias.
MAX_POLICY_SIZE = 20480

#: AWS's retry and event age defaults for asynchronous invocation.
DEFAULT_MAXIMUM_RETRY_ATTEMPTS = 2
DEFAULT_MAXIMUM_EVENT_AGE = 21600
#: Inclusive ranges of the `MaximumRetryAttempts` and `MaximumEventAgeInSeconds` shapes.
RETRY_ATTEMPTS_RANGE = (0, 2)
EVENT_AGE_RANGE = (60, 21600)

# Patterns and lengths of shapes in the botocore Lambda model (botocore 1.44.8).
TAGGABLE_RESOURCE_PATTERN = (
    r"arn:(aws[a-zA-Z-]*):lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:"
    r"(function:[a-zA-Z0-9-_]+(:(\$LATEST|[a-zA-Z0-9-_]+))?"
    r"|code-signing-config:csc-[a-z0-9]{17}"
    r"|event-source-mapping:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12}"
    r"|(capacity-provider|network-connector):[a-zA-Z0-9-_]{1,64})"
)
QUALIFIER_PATTERN = r"\$(LATEST(\.PUBLISHED)?)|[a-zA-Z0-9-_$]+"
STATEMENT_ID_PATTERN = r"([a-zA-Z0-9-_]+)"
REMOVE_STATEMENT_ID_PATTERN = r"([a-zA-Z0-9-_.]+)"
ACTION_PATTERN = r"(lambda:[*]|lambda:[a-zA-Z]+|[*])"
ARN_PATTERN = (
    r"arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:"
    r"((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1})?:(\d{12})?:(.*)"
)
DESTINATION_ARN_PATTERN = r"$|kafka://([^.]([a-zA-Z0-9\-_.]{0,248}))|" + ARN_PATTERN
MAX_DESTINATION_ARN_LENGTH = 350
SOURCE_ACCOUNT_PATTERN = r"\d{12}"
PRINCIPAL_ORG_ID_PATTERN = r"o-[a-z0-9]{10,32}"
EVENT_SOURCE_TOKEN_PATTERN = r"[a-zA-Z0-9._\-]+"
FUNCTION_URL_AUTH_TYPES = ("NONE", "AWS_IAM")

#: Services that asynchronous invocation can send records to. S3 takes failure records only.
_SUCCESS_DESTINATION_SERVICES = frozenset({"sqs", "sns", "lambda", "events"})
_FAILURE_DESTINATION_SERVICES = _SUCCESS_DESTINATION_SERVICES | {"s3"}

_SERVICE_PRINCIPAL = re.compile(r"[a-z0-9][a-z0-9.-]*\.[a-z]{2,}")
_IAM_PRINCIPAL_ARN = re.compile(r"arn:aws[a-zA-Z-]*:(iam|sts)::\d{12}:\S+")


def _constraint_error(value: str, member: str, constraint: str) -> ValidationException:
    """Return AWS's validation error for a value already rendered, e.g. `'x'` or `null`."""
    return ValidationException(
        f"1 validation error detected: Value {value} at '{member}' failed to satisfy "
        f"constraint: {constraint}"
    )


def _check_pattern(value: object, member: str, pattern: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise _constraint_error(
            f"'{value}'", member, f"Member must satisfy regular expression pattern: {pattern}"
        )
    return value


def _check_length(value: object, member: str, maximum: int) -> None:
    # A value that is not a string fails the pattern check that follows.
    if isinstance(value, str) and len(value) > maximum:
        raise _constraint_error(
            f"'{value}'", member, f"Member must have length less than or equal to {maximum}"
        )


def _check_integer(value: object, member: str, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _constraint_error(f"'{value}'", member, "Member must be an integer")
    low, high = bounds
    if value < low:
        raise _constraint_error(
            f"'{value}'", member, f"Member must have value greater than or equal to {low}"
        )
    if value > high:
        raise _constraint_error(
            f"'{value}'", member, f"Member must have value less than or equal to {high}"
        )
    return value


# Tags ------------------------------------------------------------------------------


def _is_tag_text(text: str) -> bool:
    # The AWS pattern uses the Unicode classes \p{L}, \p{Z} and \p{N}, which `re` lacks.
    return all(char in _TAG_PUNCTUATION or unicodedata.category(char)[0] in "LZN" for char in text)


def _java_map(tags: Mapping[str, str]) -> str:
    """Render a map the way AWS's validation messages do: `{k1=v1, k2=v2}`."""
    return "{" + ", ".join(f"{key}={value}" for key, value in tags.items()) + "}"


def validate_tags(tags: Mapping[str, str]) -> None:
    """Raise the error AWS returns for `tags`, or return if they are valid.

    Checks each key and value (type, length, characters, the reserved `aws:`
    prefix) and the limit of 50 tags. CreateFunction and TagResource use it
    before they change anything.
    """
    if not isinstance(tags, Mapping):
        raise InvalidParameterValueException(f"Tags must be a map of strings, got {tags!r}")
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidParameterValueException(
                f"Tag keys and values must be strings, got {key!r}: {value!r}"
            )
        if not 1 <= len(key) <= MAX_TAG_KEY_LENGTH or not _is_tag_text(key):
            raise _constraint_error(
                f"'{_java_map(tags)}'",
                "tags",
                "Map keys must satisfy constraint: [Member must have length less than or equal "
                f"to {MAX_TAG_KEY_LENGTH}, Member must have length greater than or equal to 1, "
                f"Member must satisfy regular expression pattern: {_TAG_PATTERN_TEXT}]",
            )
        if len(value) > MAX_TAG_VALUE_LENGTH or not _is_tag_text(value):
            raise _constraint_error(
                f"'{_java_map(tags)}'",
                "tags",
                "Map value must satisfy constraint: [Member must have length less than or equal "
                f"to {MAX_TAG_VALUE_LENGTH}, Member must have length greater than or equal to 0, "
                f"Member must satisfy regular expression pattern: {_TAG_PATTERN_TEXT}]",
            )
        if key.lower().startswith("aws:"):
            # NOTE: AWS rejects the prefix; this wording is not confirmed against Lambda.
            raise InvalidParameterValueException(
                f"The tag key '{key}' is not valid. Tag keys starting with 'aws:' are reserved "
                "for internal use."
            )
    _check_tag_count(tags)


def _check_tag_count(tags: Mapping[str, str]) -> None:
    if len(tags) > MAX_TAGS:
        raise InvalidParameterValueException("Number of tags exceeds resource tag limit.")


# Resource policies -------------------------------------------------------------------


@attrs.define(eq=False)
class ResourcePolicy:
    """The resource-based policy of one function, version or alias."""

    #: Statements by Sid, in the order they were added.
    statements: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    # NOTE: AWS reports the function's or alias's RevisionId here and changes it on
    # every policy change, but lambdasim keeps a separate id per policy.
    revision_id: str = attrs.field(factory=lambda: str(uuid.uuid4()))

    def document(self) -> dict[str, Any]:
        """Return the policy as AWS's GetPolicy shows it, before JSON encoding."""
        return {
            "Version": "2012-10-17",
            "Id": "default",
            "Statement": list(self.statements.values()),
        }


def _policy_principal(principal: object) -> str | dict[str, str]:
    """Return the `Principal` element for AddPermission's `Principal` parameter."""
    if isinstance(principal, str):
        if principal == "*":
            return "*"
        if re.fullmatch(r"\d{12}", principal):
            return {"AWS": f"arn:aws:iam::{principal}:root"}
        if _IAM_PRINCIPAL_ARN.fullmatch(principal):
            return {"AWS": principal}
        if _SERVICE_PRINCIPAL.fullmatch(principal):
            return {"Service": principal}
    raise InvalidParameterValueException(
        "The provided principal was invalid. Please check the principal and try again."
    )


def _policy_condition(
    *,
    source_arn: str | None,
    source_account: str | None,
    principal_org_id: str | None,
    function_url_auth_type: str | None,
    event_source_token: str | None,
    invoked_via_function_url: bool | None,
) -> dict[str, dict[str, str]]:
    """Return the `Condition` element, validating each parameter against the model."""
    condition: dict[str, dict[str, str]] = {}
    string_equals: dict[str, str] = {}
    if source_account is not None:
        string_equals["AWS:SourceAccount"] = _check_pattern(
            source_account, "sourceAccount", SOURCE_ACCOUNT_PATTERN
        )
    if principal_org_id is not None:
        _check_length(principal_org_id, "principalOrgID", 34)
        string_equals["aws:PrincipalOrgID"] = _check_pattern(
            principal_org_id, "principalOrgID", PRINCIPAL_ORG_ID_PATTERN
        )
    if event_source_token is not None:
        string_equals["lambda:EventSourceToken"] = _check_pattern(
            event_source_token, "eventSourceToken", EVENT_SOURCE_TOKEN_PATTERN
        )
    if function_url_auth_type is not None:
        if function_url_auth_type not in FUNCTION_URL_AUTH_TYPES:
            raise _constraint_error(
                f"'{function_url_auth_type}'",
                "functionUrlAuthType",
                "Member must satisfy enum value set: [NONE, AWS_IAM]",
            )
        string_equals["lambda:FunctionUrlAuthType"] = function_url_auth_type
    if string_equals:
        condition["StringEquals"] = string_equals
    if source_arn is not None:
        condition["ArnLike"] = {
            "AWS:SourceArn": _check_pattern(source_arn, "sourceArn", ARN_PATTERN)
        }
    if invoked_via_function_url:
        condition["Bool"] = {"lambda:InvokedViaFunctionUrl": "true"}
    return condition


# Asynchronous invocation ---------------------------------------------------------------


@attrs.frozen
class EventInvokeConfig:
    """The asynchronous invocation settings of one function, version or alias.

    A field is None when the configuration does not set it. The `effective_*`
    properties then return AWS's default.
    """

    #: The qualified ARN the configuration belongs to, `...:function:name:$LATEST` when unqualified.
    function_arn: str
    #: Seconds since the epoch, with milliseconds, of the last Put or Update.
    last_modified: float
    maximum_retry_attempts: int | None = None
    #: Seconds an event may wait in the queue before it is dropped.
    maximum_event_age: int | None = None
    #: Destination ARN for records of successful invocations.
    on_success: str | None = None
    #: Destination ARN for records of events that failed every attempt or expired.
    on_failure: str | None = None

    @property
    def effective_retry_attempts(self) -> int:
        if self.maximum_retry_attempts is None:
            return DEFAULT_MAXIMUM_RETRY_ATTEMPTS
        return self.maximum_retry_attempts

    @property
    def effective_event_age(self) -> int:
        if self.maximum_event_age is None:
            return DEFAULT_MAXIMUM_EVENT_AGE
        return self.maximum_event_age


def _java_destination_config(destination_config: Mapping[str, Any]) -> str:
    """Render a DestinationConfig the way AWS's "is invalid" message does."""
    parts = []
    for key, kind in (("OnSuccess", "onSuccess"), ("OnFailure", "onFailure")):
        side = destination_config.get(key)
        if side is None:
            parts.append(f"{kind}=null")
        else:
            destination = side.get("Destination") or "null"
            parts.append(f"{kind}={key}(destination={destination})")
    return f"DestinationConfig({', '.join(parts)})"


# The store -------------------------------------------------------------------------------


@attrs.define(eq=False)
class FunctionSettings:
    """Settings of every function of one simulator, keyed by function name.

    Lookups (`tags`, `event_invoke_config`, `forget`) take resolved function
    names. The Lambda API operations take the `Simulator` first and accept
    every function reference form that AWS accepts.
    """

    _tags: dict[str, dict[str, str]] = attrs.field(factory=dict, init=False)
    #: Policies by (function name, qualifier), qualifier None for the function itself.
    _policies: dict[tuple[str, str | None], ResourcePolicy] = attrs.field(factory=dict, init=False)
    #: Configurations by (function name, qualifier), `$LATEST` for the function itself.
    _invoke_configs: dict[tuple[str, str], EventInvokeConfig] = attrs.field(
        factory=dict, init=False
    )

    # Lookups ---------------------------------------------------------------------------

    def tags(self, function_name: str) -> dict[str, str]:
        """Return a copy of a function's tags, an empty dict when it has none."""
        return dict(self._tags.get(function_name, {}))

    def set_tags(self, function_name: str, tags: Mapping[str, str]) -> None:
        """Replace a function's tags, as CreateFunction's `Tags` does.

        Raises the AWS error for invalid tags. Call `validate_tags` before the
        function is created so that invalid tags create nothing.
        """
        validate_tags(tags)
        if tags:
            self._tags[function_name] = dict(tags)
        else:
            self._tags.pop(function_name, None)

    def event_invoke_config(
        self, function_name: str, qualifier: str | None = None
    ) -> EventInvokeConfig | None:
        """Return the asynchronous invocation settings for an invocation of
        `function_name` with `qualifier`, or None when there are none.

        An unqualified invocation reads the configuration of `$LATEST`. A
        version or alias reads only its own, as on AWS.
        """
        return self._invoke_configs.get((function_name, qualifier or LATEST))

    def forget(self, function_name: str, qualifier: str | None = None) -> None:
        """Drop the settings of a deleted function, or of one deleted version or alias."""
        if qualifier is None:
            self._tags.pop(function_name, None)
            for key in [key for key in self._policies if key[0] == function_name]:
                del self._policies[key]
            for key in [key for key in self._invoke_configs if key[0] == function_name]:
                del self._invoke_configs[key]
            return
        self._policies.pop((function_name, qualifier), None)
        self._invoke_configs.pop((function_name, qualifier), None)

    # Name resolution ---------------------------------------------------------------------

    def _resolve(
        self, simulator: Simulator, function_name: str, qualifier: str | None
    ) -> tuple[str, str | None]:
        """Return the (name, qualifier) that a reference names, or raise AWS's errors.

        Only the syntax is checked, so the function may not exist.
        """
        if qualifier is not None:
            _check_length(qualifier, "qualifier", 128)
            _check_pattern(qualifier, "qualifier", QUALIFIER_PATTERN)
        ref = parse_function_ref(
            function_name,
            region=simulator.config.region,
            account_id=simulator.config.account_id,
            qualifier=qualifier,
        )
        return ref.name, ref.qualifier

    def _arn(self, simulator: Simulator, name: str, qualifier: str | None = None) -> str:
        return function_arn(simulator.config.region, simulator.config.account_id, name, qualifier)

    def _tagged_function(self, simulator: Simulator, resource_arn: str) -> str:
        """Return the function name of a taggable resource ARN that exists."""
        _check_length(resource_arn, "resource", 10000)
        _check_pattern(resource_arn, "resource", TAGGABLE_RESOURCE_PATTERN)
        if ":function:" not in resource_arn:
            # TODO: tags on event source mappings and code signing configurations.
            raise ResourceNotFoundException("The resource you requested does not exist.")
        name, qualifier = self._resolve(simulator, resource_arn, None)
        if qualifier is not None:
            raise InvalidParameterValueException(
                "Tags on function aliases and versions are not supported. Please specify a "
                "function ARN."
            )
        simulator.get_function(name)
        return name

    # Tags ----------------------------------------------------------------------------------

    def tag_resource(
        self, simulator: Simulator, resource_arn: str, tags: Mapping[str, str] | None
    ) -> None:
        """Add or overwrite tags of the function that `resource_arn` names."""
        name = self._tagged_function(simulator, resource_arn)
        if not tags:
            # AWS's own wording for TagResource without tags.
            raise InvalidParameterValueException(
                "An error occurred and the request cannot be processed."
            )
        validate_tags(tags)
        merged = {**self._tags.get(name, {}), **tags}
        _check_tag_count(merged)
        self._tags[name] = merged

    def untag_resource(self, simulator: Simulator, resource_arn: str, keys: Iterable[str]) -> None:
        """Remove tags by key. Keys that the function does not have are ignored."""
        name = self._tagged_function(simulator, resource_arn)
        keys = list(keys)
        if not keys:
            raise _constraint_error("null", "tagKeys", "Member must not be null")
        remaining = {k: v for k, v in self._tags.get(name, {}).items() if k not in keys}
        self.set_tags(name, remaining)

    def list_tags(self, simulator: Simulator, resource_arn: str) -> dict[str, str]:
        """Return the tags of the function that `resource_arn` names."""
        return self.tags(self._tagged_function(simulator, resource_arn))

    # Resource policies ---------------------------------------------------------------------

    def add_permission(
        self,
        simulator: Simulator,
        function_name: str,
        *,
        statement_id: str,
        action: str,
        principal: str,
        qualifier: str | None = None,
        source_arn: str | None = None,
        source_account: str | None = None,
        principal_org_id: str | None = None,
        function_url_auth_type: str | None = None,
        event_source_token: str | None = None,
        invoked_via_function_url: bool | None = None,
        revision_id: str | None = None,
    ) -> dict[str, Any]:
        """Add a statement to the policy of a function, version or alias and return it.

        Raises ResourceConflictException when the policy has a statement with
        the same id, and PreconditionFailedException when `revision_id` is given
        and differs from the policy's current one.
        """
        name, qualifier = self._resolve(simulator, function_name, qualifier)
        _check_length(statement_id, "statementId", 100)
        _check_pattern(statement_id, "statementId", STATEMENT_ID_PATTERN)
        _check_length(action, "action", 10000)
        _check_pattern(action, "action", ACTION_PATTERN)
        deployed = simulator.get_function(name, qualifier)
        if qualifier == LATEST:
            raise InvalidParameterValueException(
                "We currently do not support adding policies for $LATEST."
            )
        statement: dict[str, Any] = {
            "Sid": statement_id,
            "Effect": "Allow",
            "Principal": _policy_principal(principal),
            "Action": action,
            "Resource": self._arn(simulator, name, qualifier),
        }
        condition = _policy_condition(
            source_arn=source_arn,
            source_account=source_account,
            principal_org_id=principal_org_id,
            function_url_auth_type=function_url_auth_type,
            event_source_token=event_source_token,
            invoked_via_function_url=invoked_via_function_url,
        )
        if condition:
            statement["Condition"] = condition

        policy = self._policies.get((name, qualifier))
        current_revision = policy.revision_id if policy is not None else deployed.revision_id
        if revision_id is not None and revision_id != current_revision:
            raise _revision_mismatch()
        if policy is not None and statement_id in policy.statements:
            raise ResourceConflictException(
                f"The statement id ({statement_id}) provided already exists. Please provide a "
                "new statement id, or remove the existing statement."
            )
        statements = {**(policy.statements if policy else {}), statement_id: statement}
        size = len(json.dumps(ResourcePolicy(statements).document()).encode())
        if size > MAX_POLICY_SIZE:
            raise PolicyLengthExceededException(
                f"The final policy size ({size}) is bigger than the limit ({MAX_POLICY_SIZE})."
            )
        self._policies[(name, qualifier)] = ResourcePolicy(statements)
        return statement

    def remove_permission(
        self,
        simulator: Simulator,
        function_name: str,
        statement_id: str,
        *,
        qualifier: str | None = None,
        revision_id: str | None = None,
    ) -> None:
        """Remove a statement from the policy of a function, version or alias."""
        name, qualifier = self._resolve(simulator, function_name, qualifier)
        _check_length(statement_id, "statementId", 100)
        _check_pattern(statement_id, "statementId", REMOVE_STATEMENT_ID_PATTERN)
        simulator.get_function(name, qualifier)
        policy = self._policies.get((name, qualifier))
        if policy is None:
            raise ResourceNotFoundException("No policy is associated with the given resource.")
        if revision_id is not None and revision_id != policy.revision_id:
            raise _revision_mismatch()
        if statement_id not in policy.statements:
            raise ResourceNotFoundException(
                f"Statement {statement_id} is not found in resource policy."
            )
        statements = {sid: s for sid, s in policy.statements.items() if sid != statement_id}
        if statements:
            self._policies[(name, qualifier)] = ResourcePolicy(statements)
        else:
            del self._policies[(name, qualifier)]

    def get_policy(
        self, simulator: Simulator, function_name: str, qualifier: str | None = None
    ) -> ResourcePolicy:
        """Return the policy of a function, version or alias that has statements."""
        name, qualifier = self._resolve(simulator, function_name, qualifier)
        simulator.get_function(name, qualifier)
        policy = self._policies.get((name, qualifier))
        if policy is None:
            raise ResourceNotFoundException("The resource you requested does not exist.")
        return policy

    # Asynchronous invocation ------------------------------------------------------------------

    def put_event_invoke_config(
        self,
        simulator: Simulator,
        function_name: str,
        qualifier: str | None = None,
        *,
        maximum_retry_attempts: int | None = None,
        maximum_event_age: int | None = None,
        destination_config: Mapping[str, Any] | None = None,
    ) -> EventInvokeConfig:
        """Set the asynchronous invocation settings of a function, version or alias.

        Replaces an existing configuration, so settings left out are removed.
        `destination_config` has the model's shape,
        `{"OnSuccess": {"Destination": arn}, "OnFailure": {"Destination": arn}}`.
        """
        name, qualifier = self._existing_target(simulator, function_name, qualifier)
        return self._store_invoke_config(
            simulator,
            name,
            qualifier,
            None,
            maximum_retry_attempts=maximum_retry_attempts,
            maximum_event_age=maximum_event_age,
            destination_config=destination_config,
        )

    def update_event_invoke_config(
        self,
        simulator: Simulator,
        function_name: str,
        qualifier: str | None = None,
        *,
        maximum_retry_attempts: int | None = None,
        maximum_event_age: int | None = None,
        destination_config: Mapping[str, Any] | None = None,
    ) -> EventInvokeConfig:
        """Change some asynchronous invocation settings and keep the others.

        Settings given as None keep their value. In `destination_config`, an
        `OnSuccess` or `OnFailure` entry replaces that destination, and `{}`
        removes it.
        """
        name, qualifier = self._existing_target(simulator, function_name, qualifier)
        current = self._invoke_configs.get((name, qualifier))
        if current is None:
            raise self._no_invoke_config(simulator, name, qualifier)
        return self._store_invoke_config(
            simulator,
            name,
            qualifier,
            current,
            maximum_retry_attempts=maximum_retry_attempts,
            maximum_event_age=maximum_event_age,
            destination_config=destination_config,
        )

    def get_event_invoke_config(
        self, simulator: Simulator, function_name: str, qualifier: str | None = None
    ) -> EventInvokeConfig:
        """Return the asynchronous invocation settings of a function, version or alias."""
        name, qualifier = self._resolve(simulator, function_name, qualifier)
        # AWS reports the missing configuration even when the function does not exist.
        config = self._invoke_configs.get((name, qualifier or LATEST))
        if config is None:
            raise self._no_invoke_config(simulator, name, qualifier or LATEST)
        return config

    def delete_event_invoke_config(
        self, simulator: Simulator, function_name: str, qualifier: str | None = None
    ) -> None:
        """Delete the asynchronous invocation settings of a function, version or alias."""
        name, qualifier = self._resolve(simulator, function_name, qualifier)
        if self._invoke_configs.pop((name, qualifier or LATEST), None) is None:
            raise self._no_invoke_config(simulator, name, qualifier or LATEST)

    def list_event_invoke_configs(
        self, simulator: Simulator, function_name: str
    ) -> list[EventInvokeConfig]:
        """Return every asynchronous invocation configuration of a function, in the
        order they were first put."""
        name, _ = self._existing_target(simulator, function_name, None)
        return [config for key, config in self._invoke_configs.items() if key[0] == name]

    def _existing_target(
        self, simulator: Simulator, function_name: str, qualifier: str | None
    ) -> tuple[str, str]:
        name, qualifier = self._resolve(simulator, function_name, qualifier)
        try:
            simulator.get_function(name, qualifier)
        except ResourceNotFoundException:
            # AWS's wording for these operations, for functions, versions and aliases alike.
            raise ResourceNotFoundException("The function doesn't exist.") from None
        return name, qualifier or LATEST

    def _no_invoke_config(
        self, simulator: Simulator, name: str, qualifier: str
    ) -> ResourceNotFoundException:
        arn = self._arn(simulator, name, qualifier)
        return ResourceNotFoundException(f"The function {arn} doesn't have an EventInvokeConfig")

    def _store_invoke_config(
        self,
        simulator: Simulator,
        name: str,
        qualifier: str,
        current: EventInvokeConfig | None,
        *,
        maximum_retry_attempts: int | None,
        maximum_event_age: int | None,
        destination_config: Mapping[str, Any] | None,
    ) -> EventInvokeConfig:
        settings = (maximum_retry_attempts, maximum_event_age, destination_config)
        if all(setting is None for setting in settings):
            raise InvalidParameterValueException(
                "You must specify at least one of error handling or destination setting."
            )
        if maximum_retry_attempts is not None:
            _check_integer(maximum_retry_attempts, "maximumRetryAttempts", RETRY_ATTEMPTS_RANGE)
        if maximum_event_age is not None:
            _check_integer(maximum_event_age, "maximumEventAgeInSeconds", EVENT_AGE_RANGE)
        on_success, on_failure = self._destinations(simulator, name, destination_config)

        if current is not None:
            if maximum_retry_attempts is None:
                maximum_retry_attempts = current.maximum_retry_attempts
            if maximum_event_age is None:
                maximum_event_age = current.maximum_event_age
            if destination_config is None or "OnSuccess" not in destination_config:
                on_success = current.on_success
            if destination_config is None or "OnFailure" not in destination_config:
                on_failure = current.on_failure
        config = EventInvokeConfig(
            function_arn=self._arn(simulator, name, qualifier),
            last_modified=round(time.time(), 3),
            maximum_retry_attempts=maximum_retry_attempts,
            maximum_event_age=maximum_event_age,
            on_success=on_success,
            on_failure=on_failure,
        )
        self._invoke_configs[(name, qualifier)] = config
        return config

    def _destinations(
        self, simulator: Simulator, name: str, destination_config: Mapping[str, Any] | None
    ) -> tuple[str | None, str | None]:
        """Validate a DestinationConfig and return its (on-success, on-failure) ARNs."""
        if destination_config is None:
            return None, None
        if not isinstance(destination_config, Mapping):
            raise InvalidParameterValueException(
                f"DestinationConfig must be an object, got {destination_config!r}"
            )
        arns: list[str | None] = []
        for key, member, services in (
            ("OnSuccess", "onSuccess", _SUCCESS_DESTINATION_SERVICES),
            ("OnFailure", "onFailure", _FAILURE_DESTINATION_SERVICES),
        ):
            side = destination_config.get(key) or {}
            if not isinstance(side, Mapping):
                raise InvalidParameterValueException(f"{key} must be an object, got {side!r}")
            destination = side.get("Destination") or None
            if destination is not None:
                self._check_destination(
                    simulator,
                    name,
                    destination,
                    f"destinationConfig.{member}.destination",
                    services,
                    destination_config,
                )
            arns.append(destination)
        return arns[0], arns[1]

    def _check_destination(
        self,
        simulator: Simulator,
        name: str,
        destination: str,
        member: str,
        services: frozenset[str],
        destination_config: Mapping[str, Any],
    ) -> None:
        _check_length(destination, member, MAX_DESTINATION_ARN_LENGTH)
        _check_pattern(destination, member, DESTINATION_ARN_PATTERN)
        service = destination.split(":")[2] if destination.startswith("arn:") else None
        if service not in services:
            raise InvalidParameterValueException(
                f"The provided destination config {_java_destination_config(destination_config)} "
                "is invalid."
            )
        # NOTE: AWS also checks that the execution role may send to the destination
        # and that queues, topics and buses exist. lambdasim checks functions only.
        if service != "lambda":
            return
        try:
            target, _ = self._resolve(simulator, destination, None)
        except (ValidationException, InvalidParameterValueException, ResourceNotFoundException):
            raise InvalidParameterValueException(
                f"The destination ARN {destination} is invalid."
            ) from None
        if target == name:
            raise InvalidParameterValueException(
                "You can't specify the function as a destination for itself."
            )
        try:
            simulator.get_function(destination)
        except ResourceNotFoundException:
            raise InvalidParameterValueException(
                f"The destination ARN {destination} is invalid."
            ) from None


def _revision_mismatch() -> PreconditionFailedException:
    # NOTE: this wording is not confirmed by a recorded AWS response.
    return PreconditionFailedException(
        "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy "
        "API to retrieve the latest Revision Id"
    )
