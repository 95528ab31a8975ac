"""Event filtering: the `FilterCriteria` of an event source mapping.

Lambda filters records with the event pattern language of Amazon EventBridge. A
`FilterCriteria` holds up to five patterns, and a record is delivered when any
of them matches. A pattern is a JSON object whose keys name fields of the record:

- an object value matches the nested object of the same name;
- a list value is a list of rules, and the field matches when any rule does.
  A rule is a literal (string, number, boolean or null, compared exactly, so
  `300` and `300.0` differ) or one of the operators `prefix`, `suffix`,
  `equals-ignore-case`, `anything-but`, `numeric` and `exists`. A field whose
  value is an array matches when any element matches.

Every field named in a pattern must match; fields the pattern does not name are
ignored. Each event source has a data field that it decodes before matching
(`body` for SQS, `data` for Kinesis, `dynamodb` for DynamoDB Streams). The
pollers build the record view that patterns are matched against.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..errors import InvalidParameterValueException

#: Filters allowed in one `FilterCriteria` (AWS's default quota).
MAX_FILTERS = 5

INVALID_PATTERN = "Invalid filter pattern definition."

_NUMERIC_OPERATORS = ("=", "<", "<=", ">", ">=")
_STRING_OPERATORS = ("prefix", "suffix", "equals-ignore-case")
_MISSING = object()


def _invalid(detail: str) -> InvalidParameterValueException:
    # AWS's message names no detail; lambdasim adds it after AWS's text.
    return InvalidParameterValueException(f"{INVALID_PATTERN} {detail}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _literal_equal(rule: Any, value: Any) -> bool:
    # Booleans, integers and floats are distinct, like the JSON text they came from.
    return type(rule) is type(value) and rule == value


def _check_string_operand(operator: str, operand: Any) -> None:
    if not isinstance(operand, str):
        raise _invalid(f"The value of {operator!r} must be a string, got {operand!r}.")


def _check_numeric(operand: Any) -> None:
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise _invalid(
            f"'numeric' takes [op, number] or [op, number, op, number], got {operand!r}."
        )
    for index in range(0, len(operand), 2):
        operator, bound = operand[index], operand[index + 1]
        if operator not in _NUMERIC_OPERATORS or not _is_number(bound):
            raise _invalid(f"Invalid 'numeric' comparison {operator!r} {bound!r}.")


def _check_anything_but(operand: Any) -> None:
    if isinstance(operand, dict):
        if len(operand) != 1:
            raise _invalid(f"'anything-but' takes one operator, got {operand!r}.")
        ((operator, inner),) = operand.items()
        if operator not in _STRING_OPERATORS:
            raise _invalid(f"'anything-but' does not support {operator!r}.")
        _check_string_operand(operator, inner)
        return
    values = operand if isinstance(operand, list) else [operand]
    if not values or not all(isinstance(v, str) or _is_number(v) for v in values):
        raise _invalid(f"'anything-but' takes strings or numbers, got {operand!r}.")


def _check_rule(rule: Any) -> None:
    if rule is None or isinstance(rule, (str, bool)) or _is_number(rule):
        return
    if not isinstance(rule, dict) or len(rule) != 1:
        raise _invalid(f"A rule must be a literal or an object with one operator, got {rule!r}.")
    ((operator, operand),) = rule.items()
    if operator in _STRING_OPERATORS:
        _check_string_operand(operator, operand)
    elif operator == "numeric":
        _check_numeric(operand)
    elif operator == "anything-but":
        _check_anything_but(operand)
    elif operator == "exists":
        if not isinstance(operand, bool):
            raise _invalid(f"The value of 'exists' must be true or false, got {operand!r}.")
    else:
        raise _invalid(f"Unsupported operator {operator!r}.")


def _check_pattern(pattern: Any, path: str) -> None:
    if not isinstance(pattern, dict) or not pattern:
        raise _invalid(f"{path or 'The pattern'} must be a non-empty JSON object.")
    for key, value in pattern.items():
        where = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            _check_pattern(value, where)
        elif isinstance(value, list):
            if not value:
                raise _invalid(f"The rule list of {where!r} is empty.")
            for rule in value:
                _check_rule(rule)
        else:
            raise _invalid(f"The value of {where!r} must be an object or a list of rules.")


def _numeric_match(operand: list[Any], value: Any) -> bool:
    if not _is_number(value):
        return False
    for index in range(0, len(operand), 2):
        operator, bound = operand[index], operand[index + 1]
        if operator == "=" and not value == bound:
            return False
        if operator == "<" and not value < bound:
            return False
        if operator == "<=" and not value <= bound:
            return False
        if operator == ">" and not value > bound:
            return False
        if operator == ">=" and not value >= bound:
            return False
    return True


def _string_match(operator: str, operand: str, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if operator == "prefix":
        return value.startswith(operand)
    if operator == "suffix":
        return value.endswith(operand)
    return value.casefold() == operand.casefold()


def _anything_but_match(operand: Any, value: Any) -> bool:
    if isinstance(operand, dict):
        ((operator, inner),) = operand.items()
        return isinstance(value, str) and not _string_match(operator, inner, value)
    if not (isinstance(value, str) or _is_number(value)):
        return False
    excluded = operand if isinstance(operand, list) else [operand]
    return not any(_literal_equal(item, value) for item in excluded)


def _rule_matches(rule: Any, value: Any) -> bool:
    """Tell whether one rule matches one present, non-array value."""
    if not isinstance(rule, dict):
        return _literal_equal(rule, value)
    ((operator, operand),) = rule.items()
    if operator in _STRING_OPERATORS:
        return _string_match(operator, operand, value)
    if operator == "numeric":
        return _numeric_match(operand, value)
    if operator == "anything-but":
        return _anything_but_match(operand, value)
    # The caller evaluates "exists", because only it can tell a missing field apart.
    return False


def _rules_match(rules: list[Any], value: Any) -> bool:
    for rule in rules:
        if isinstance(rule, dict) and "exists" in rule:
            if rule["exists"] == (value is not _MISSING):
                return True
            continue
        if value is _MISSING:
            continue
        candidates = value if isinstance(value, list) else [value]
        if any(_rule_matches(rule, candidate) for candidate in candidates):
            return True
    return False


def pattern_matches(pattern: Mapping[str, Any], event: Any) -> bool:
    """Tell whether `event` (decoded JSON) matches a checked pattern."""
    if not isinstance(event, Mapping):
        return False
    for key, expected in pattern.items():
        value = event.get(key, _MISSING)
        if isinstance(expected, dict):
            if value is _MISSING:
                # Only rules saying that nested fields do not exist can match.
                if not _absent_matches(expected):
                    return False
                continue
            if isinstance(value, list):
                if not any(pattern_matches(expected, item) for item in value):
                    return False
            elif not pattern_matches(expected, value):
                return False
        elif not _rules_match(expected, value):
            return False
    return True


def _absent_matches(pattern: Mapping[str, Any]) -> bool:
    for expected in pattern.values():
        if isinstance(expected, dict):
            if not _absent_matches(expected):
                return False
        elif not _rules_match(expected, _MISSING):
            return False
    return True


@attrs.frozen
class FilterCriteria:
    """The checked filters of a mapping, with the patterns as AWS returns them."""

    #: The `Pattern` strings as the caller sent them.
    texts: tuple[str, ...]
    #: The same patterns, decoded.
    patterns: tuple[Mapping[str, Any], ...] = attrs.field(eq=False, repr=False)

    @classmethod
    def parse(cls, criteria: Any, *, data_key: str | None = None) -> FilterCriteria | None:
        """Check a `FilterCriteria` request member; None when it has no filters.

        `data_key` names the source's data field. For stream sources its pattern
        must be an object, so set `data_key` for them; SQS also accepts a list of
        rules for `body`, matched against bodies that are not JSON objects.
        Raises InvalidParameterValueException for anything AWS rejects.
        """
        if criteria is None:
            return None
        if not isinstance(criteria, dict):
            raise _invalid(f"FilterCriteria must be an object, got {criteria!r}.")
        filters = criteria.get("Filters")
        if filters is None or filters == []:
            return None
        if not isinstance(filters, list):
            raise _invalid(f"Filters must be a list, got {filters!r}.")
        if len(filters) > MAX_FILTERS:
            raise InvalidParameterValueException(
                f"The filter criteria contains {len(filters)} filters, more than the maximum "
                f"of {MAX_FILTERS}."
            )
        texts, patterns = [], []
        for item in filters:
            text = item.get("Pattern") if isinstance(item, dict) else None
            if not isinstance(text, str):
                raise _invalid(f"Each filter needs a Pattern string, got {item!r}.")
            try:
                pattern = json.loads(text)
            except ValueError:
                raise _invalid(f"The pattern is not valid JSON: {text!r}.") from None
            _check_pattern(pattern, "")
            if (
                data_key is not None
                and data_key in pattern
                and not isinstance(pattern[data_key], dict)
            ):
                raise _invalid(f"The pattern for {data_key!r} must be a JSON object.")
            texts.append(text)
            patterns.append(pattern)
        return cls(tuple(texts), tuple(patterns))

    def to_request(self) -> dict[str, Any]:
        """Return the criteria in the shape of the `FilterCriteria` member."""
        return {"Filters": [{"Pattern": text} for text in self.texts]}

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Tell whether any pattern matches `event`."""
        return any(pattern_matches(pattern, event) for pattern in self.patterns)

    def patterns_for(self, key: str) -> Sequence[Any]:
        """Return what each pattern expects of field `key`, for the ones that name it."""
        return [pattern[key] for pattern in self.patterns if key in pattern]


def decode_json_object(text: str | bytes) -> dict[str, Any] | None:
    """Return `text` decoded when it is a JSON object, else None."""
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None
