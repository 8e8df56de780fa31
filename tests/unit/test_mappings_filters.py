"""FilterCriteria patterns and batch-item-failure reports of event source mappings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdad.environments.environment import InvokeOutcome
from lambdad.events.mappings.filters import compile_criteria, matches_any
from lambdad.events.mappings.poller import failed_items
from lambdad.http.errors import InvalidParameterValueException


def record(body: Any) -> dict[str, Any]:
    text = body if isinstance(body, str) else json.dumps(body)
    return {"messageId": "m", "body": text, "attributes": {"ApproximateReceiveCount": "1"}}


def passes(pattern: dict[str, Any], body: Any) -> bool:
    return matches_any(compile_criteria({"Filters": [{"Pattern": json.dumps(pattern)}]}), record(body))


@pytest.mark.parametrize(
    ("pattern", "yes", "no"),
    [
        ({"body": {"testItem": ["test24"]}}, {"testItem": "test24"}, {"testItem": "test45"}),
        ({"body": {"testItem": ["test24", "test45"]}}, {"testItem": "test45"}, {"testItem": "x"}),
        ({"body": {"test2": [{"exists": True}]}}, {"test2": "7411"}, {"other": 1}),
        ({"body": {"test2": [{"exists": False}]}}, {"other": 1}, {"test2": 1}),
        ({"body": {"test2": [{"numeric": [">", 100]}]}}, {"test2": 105}, {"test2": 93}),
        ({"body": {"test2": [{"numeric": [">=", 100, "<", 200]}]}}, {"test2": 105}, {"test2": 200}),
        ({"body": {"test2": [{"prefix": "us-1"}]}}, {"test2": "us-1-48454"}, {"test2": "eu-1"}),
        ({"body": {"s": [{"anything-but": ["a", "b"]}]}}, {"s": "c"}, {"s": "a"}),
        ({"body": {"s": [{"anything-but": {"prefix": "x"}}]}}, {"s": "y1"}, {"s": "x1"}),
        ({"body": {"n": {"deep": [1]}}}, {"n": {"deep": 1}}, {"n": {"deep": 2}}),
        ({"body": ["plain text"]}, "plain text", "other text"),
        ({"attributes": {"ApproximateReceiveCount": ["1"]}}, "x", None),
    ],
)
def test_patterns(pattern: dict[str, Any], yes: Any, no: Any) -> None:
    assert passes(pattern, yes)
    if no is not None:
        assert not passes(pattern, no)


def test_no_filters_pass_everything_and_any_filter_may_match() -> None:
    assert matches_any([], record("x"))
    criteria = {"Filters": [{"Pattern": '{"body": {"a": [1]}}'}, {"Pattern": '{"body": {"b": [2]}}'}]}
    assert matches_any(compile_criteria(criteria), record({"b": 2}))


@pytest.mark.parametrize("raw", [None, "simple string", '{"body": "x"}', '{"body": {"a": 1}}', "[1]"])
def test_invalid_patterns(raw: Any) -> None:
    with pytest.raises(InvalidParameterValueException, match="Invalid filter pattern definition."):
        compile_criteria({"Filters": [{"Pattern": raw}]})


def outcome(payload: Any, kind: str = "ok") -> InvokeOutcome:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return InvokeOutcome(
        kind=kind,
        payload=data,
        error_type=None,
        log=b"",
        duration_ms=1.0,
        max_memory_mb=1,
        environment_dead=False,
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"foo": "notvalid"}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b"}),
        (b"{not json", {"a", "b"}),
    ],
)
def test_batch_item_failures(payload: Any, expected: set[str]) -> None:
    assert failed_items(outcome(payload), ["a", "b"], report_failures=True) == expected


def test_errors_fail_the_batch_and_plain_mappings_ignore_reports() -> None:
    assert failed_items(outcome({}, kind="function_error"), ["a"], True) == {"a"}
    assert failed_items(outcome({"batchItemFailures": [{"itemIdentifier": "a"}]}), ["a"], False) == set()
