"""Function names, ARNs and qualifiers as the Lambda API accepts them.

Wherever AWS takes a function it accepts a plain name (`my-fn`), a name with a
qualifier (`my-fn:live`), a partial ARN (`000000000000:function:my-fn`) and a full
ARN (`arn:aws:lambda:us-east-1:000000000000:function:my-fn`), each optionally
followed by `:qualifier`.
"""

from __future__ import annotations

import functools
import re

import attrs

from .errors import (
    InvalidParameterValueException,
    ResourceNotFoundException,
    ValidationException,
)

# The pattern of the `FunctionName` shape in the botocore Lambda model.
FUNCTION_NAME_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?"
    r"(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
)
_FUNCTION_NAME = re.compile(FUNCTION_NAME_PATTERN)
_FULL_ARN = re.compile(
    r"arn:(?P<partition>aws[a-zA-Z-]*):lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"function:(?P<name>[a-zA-Z0-9-_]+)(:(?P<qualifier>\$LATEST|[a-zA-Z0-9-_]+))?"
)
_PARTIAL_ARN = re.compile(
    r"(?P<account>\d{12}):function:(?P<name>[a-zA-Z0-9-_]+)"
    r"(:(?P<qualifier>\$LATEST|[a-zA-Z0-9-_]+))?"
)
_PLAIN = re.compile(r"(?P<name>[a-zA-Z0-9-_]+)(:(?P<qualifier>\$LATEST|[a-zA-Z0-9-_]+))?")

MAX_NAME_LENGTH = 64


@attrs.frozen
class FunctionRef:
    """A parsed reference to a function, with the qualifier if one was given."""

    name: str
    qualifier: str | None = None


def function_arn(region: str, account_id: str, name: str, qualifier: str | None = None) -> str:
    """Return the ARN of function `name`, with `:qualifier` when one is given."""
    arn = f"arn:aws:lambda:{region}:{account_id}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def validate_function_name(name: str) -> None:
    """Raise ValidationException unless `name` is a valid name for a new function."""
    if not re.fullmatch(r"[a-zA-Z0-9-_]+", name) or len(name) > MAX_NAME_LENGTH:
        raise ValidationException(
            f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: "
            f"{FUNCTION_NAME_PATTERN}"
        )


@functools.lru_cache(maxsize=4096)
def parse_function_ref(
    value: str, *, region: str, account_id: str, qualifier: str | None = None
) -> FunctionRef:
    """Parse a function name or ARN as the Lambda API accepts it.

    `qualifier` is the separate `Qualifier` parameter; when the name carries one too,
    both must agree. An ARN of another region or account gives a not-found error,
    like AWS does.
    """
    if not _FUNCTION_NAME.fullmatch(value):
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at 'functionName' failed to "
            f"satisfy constraint: Member must satisfy regular expression pattern: "
            f"{FUNCTION_NAME_PATTERN}"
        )
    match = _FULL_ARN.fullmatch(value)
    if match is not None:
        if match["region"] != region:
            raise ResourceNotFoundException(
                f"Functions from '{match['region']}' are not reachable in this region ('{region}')"
            )
    else:
        match = _PARTIAL_ARN.fullmatch(value) or _PLAIN.fullmatch(value)
    if match is None:
        # The model's pattern allows forms such as an ARN without its account.
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at 'functionName' failed to "
            f"satisfy constraint: Member must satisfy regular expression pattern: "
            f"{FUNCTION_NAME_PATTERN}"
        )
    account = match.groupdict().get("account")
    name = match["name"]
    derived = match["qualifier"]
    if account is not None and account != account_id:
        raise ResourceNotFoundException(
            f"Function not found: {function_arn(region, account, name, derived or qualifier)}"
        )
    if derived is not None and qualifier is not None and derived != qualifier:
        raise InvalidParameterValueException(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    return FunctionRef(name=name, qualifier=derived or qualifier)
