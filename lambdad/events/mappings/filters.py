"""Event filtering for event source mappings: EventBridge-style patterns over an SQS record.

A mapping's ``FilterCriteria.Filters[].Pattern`` is a JSON object whose leaves are lists of
conditions; a record passes when any one filter matches. The body of an SQS record is matched as
JSON when it parses as a JSON object, otherwise as the plain string. Supported conditions: exact
values (strings, numbers, booleans, null), ``prefix``, ``suffix``, ``equals-ignore-case``,
``anything-but`` (a value, a list, or a ``prefix``), ``numeric`` (``=``, ``<``, ``<=``, ``>``, ``>=``,
ranges) and ``exists``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from lambdad.http.errors import InvalidParameterValueException

Pattern = dict[str, Any]
_MISSING = object()
_NUMERIC_OPS = frozenset({"=", "<", "<=", ">", ">="})
_INVALID = "Invalid filter pattern definition."


def compile_criteria(criteria: Mapping[str, Any] | None) -> list[Pattern]:
    """Parse and check ``FilterCriteria``; raise AWS's error for a malformed pattern."""
    patterns = []
    for item in (criteria or {}).get("Filters") or []:
        raw = item.get("Pattern") if isinstance(item, Mapping) else None
        try:
            pattern = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            pattern = None
        if not isinstance(pattern, dict) or not _valid_object(pattern):
            raise InvalidParameterValueException(_INVALID)
        patterns.append(pattern)
    return patterns


def _valid_object(pattern: Mapping[str, Any]) -> bool:
    for rule in pattern.values():
        if isinstance(rule, dict):
            if not rule or not _valid_object(rule):
                return False
        elif not isinstance(rule, list) or not rule or not all(_valid_condition(c) for c in rule):
            return False
    return bool(pattern)


def _valid_condition(cond: Any) -> bool:
    if cond is None or isinstance(cond, str | int | float | bool):
        return True
    if not isinstance(cond, dict) or len(cond) != 1:
        return False
    ((kind, arg),) = cond.items()
    if kind == "exists":
        return isinstance(arg, bool)
    if kind in ("prefix", "suffix", "equals-ignore-case"):
        return isinstance(arg, str)
    if kind == "numeric":
        return _valid_numeric(arg)
    if kind == "anything-but":
        if isinstance(arg, list):
            return all(isinstance(v, str | int | float) for v in arg)
        if isinstance(arg, dict):
            return set(arg) == {"prefix"} and isinstance(arg["prefix"], str)
        return isinstance(arg, str | int | float)
    return False


def _valid_numeric(arg: Any) -> bool:
    if not isinstance(arg, list) or not arg or len(arg) % 2:
        return False
    pairs = zip(arg[::2], arg[1::2], strict=True)
    return all(op in _NUMERIC_OPS and _is_number(n) for op, n in pairs)


def record_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as filters see it: a JSON-object body is matched as an object."""
    view = dict(record)
    try:
        body = json.loads(record.get("body", ""))
    except ValueError:
        return view
    if isinstance(body, dict):
        view["body"] = body
    return view


def matches_any(patterns: Sequence[Pattern], record: Mapping[str, Any]) -> bool:
    """Whether ``record`` passes: no filters, or at least one pattern matches."""
    if not patterns:
        return True
    view = record_view(record)
    return any(matches(p, view) for p in patterns)


def matches(pattern: Mapping[str, Any], event: Any) -> bool:
    for key, rule in pattern.items():
        value = event.get(key, _MISSING) if isinstance(event, Mapping) else _MISSING
        if isinstance(rule, dict):
            if not matches(rule, value if isinstance(value, Mapping) else {}):
                return False
        elif not any(_condition(cond, value) for cond in rule):
            return False
    return True


def _condition(cond: Any, value: Any) -> bool:
    if isinstance(cond, dict):
        ((kind, arg),) = cond.items()
        if kind == "exists":
            return (value is not _MISSING) is arg
        if value is _MISSING:
            return False  # every other condition, anything-but included, needs the field present
        values = value if isinstance(value, list) else [value]
        if kind == "anything-but":
            return not any(_excluded(arg, v) for v in values)
        return any(_test(kind, arg, v) for v in values)
    if value is _MISSING:
        return False
    values = value if isinstance(value, list) else [value]
    return any(_equal(cond, v) for v in values)


def _test(kind: str, arg: Any, value: Any) -> bool:
    if kind == "prefix":
        return isinstance(value, str) and value.startswith(arg)
    if kind == "suffix":
        return isinstance(value, str) and value.endswith(arg)
    if kind == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == arg.lower()
    if kind == "numeric":
        return _is_number(value) and _numeric(arg, float(value))
    return False


def _excluded(arg: Any, value: Any) -> bool:
    if isinstance(arg, dict):
        return isinstance(value, str) and value.startswith(arg["prefix"])
    if isinstance(arg, list):
        return any(_equal(a, value) for a in arg)
    return _equal(arg, value)


def _numeric(arg: list[Any], value: float) -> bool:
    checks = {
        "=": value.__eq__,
        "<": value.__lt__,
        "<=": value.__le__,
        ">": value.__gt__,
        ">=": value.__ge__,
    }
    return all(checks[op](float(n)) for op, n in zip(arg[::2], arg[1::2], strict=True))


def _equal(cond: Any, value: Any) -> bool:
    if isinstance(cond, bool) or isinstance(value, bool) or cond is None or value is None:
        return cond is value or (isinstance(cond, bool) and cond == value and isinstance(value, bool))
    if _is_number(cond) and _is_number(value):
        return float(cond) == float(value)
    return bool(type(cond) is type(value) and cond == value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
