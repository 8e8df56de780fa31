"""CloudWatch filter patterns: plain terms, phrases, any-of, exclusion, regex, JSON, space-delimited."""

from __future__ import annotations

import pytest

from lambdad.http.errors import InvalidParameterException
from lambdad.observe.filter_pattern import compile_pattern


@pytest.mark.parametrize(
    ("pattern", "message", "expected"),
    [
        ("", "anything", True),
        ("   ", "anything", True),
        (None, "anything", True),
        ("ERROR", "[ERROR] boom", True),
        ("ERROR", "error: boom", False),
        ("ERROR boom", "boom ERROR", True),
        ("ERROR boom", "ERROR only", False),
        ('"Task timed out"', "2024 Task timed out after 3.00 seconds", True),
        ('"Task timed out"', "Task out timed", False),
        ("?ERROR ?WARN", "WARN disk", True),
        ("?ERROR ?WARN", "INFO disk", False),
        ("ERROR -Exiting", "ERROR bad input", True),
        ("ERROR -Exiting", "ERROR Exiting now", False),
        ('-"health check"', "GET /healthz ok", True),
        ('-"health check"', "health check ok", False),
        ("%ERR(OR)?|WARN%", "an ERR here", True),
        ("%^START%", "REPORT RequestId", False),
    ],
)
def test_text_patterns(pattern: str | None, message: str, expected: bool) -> None:
    assert compile_pattern(pattern)(message) is expected


@pytest.mark.parametrize(
    ("pattern", "message", "expected"),
    [
        ('{ $.level = "error" }', '{"level": "error"}', True),
        ('{ $.level = "error" }', '{"level": "ERROR"}', False),
        ("{ $.level = err* }", '{"level": "error"}', True),
        ('{ $.level != "error" }', '{"level": "info"}', True),
        ("{ $.latency > 100 }", '{"latency": 150}', True),
        ("{ $.latency > 100 }", '{"latency": 50}', False),
        ("{ $.latency >= 100.5 }", '{"latency": 100.5}', True),
        ("{ $.latency > 100 }", '{"latency": "slow"}', False),
        ("{ $.code = 200 }", '{"code": 200}', True),
        ("{ $.a.b[1].c = x }", '{"a": {"b": [{}, {"c": "x"}]}}', True),
        ('{ $.level = "error" && $.latency > 100 }', '{"level": "error", "latency": 5}', False),
        ('{ $.level = "error" || $.latency > 100 }', '{"level": "info", "latency": 500}', True),
        ('{ ($.a = 1 || $.b = 2) && $.c = "x" }', '{"b": 2, "c": "x"}', True),
        ('{ ($.a = 1 || $.b = 2) && $.c = "x" }', '{"b": 2, "c": "y"}', False),
        ("{ $.ok IS TRUE }", '{"ok": true}', True),
        ("{ $.ok IS FALSE }", '{"ok": true}', False),
        ("{ $.v IS NULL }", '{"v": null}', True),
        ("{ $.missing NOT EXISTS }", '{"v": 1}', True),
        ("{ $.v NOT EXISTS }", '{"v": 1}', False),
        ('{ $.level = "error" }', "level=error, not JSON", False),
        ('{ $.level = "error" }', "[1, 2]", False),
    ],
)
def test_json_patterns(pattern: str, message: str, expected: bool) -> None:
    assert compile_pattern(pattern)(message) is expected


@pytest.mark.parametrize(
    ("pattern", "message", "expected"),
    [
        ("[ip, user, ...]", "10.0.0.1 bob GET /", True),
        ("[a, b]", "one two three", False),
        ("[a, b, c]", "one two three", True),
        (
            "[ip, ..., status = 404, bytes]",
            '1.2.3.4 - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 404 2326',
            True,
        ),
        ("[ip, ..., status = 4*, bytes > 3000]", '1.2.3.4 - "GET / HTTP/1.0" 404 2326', False),
        ('[ip, user = "bob", ...]', "1.2.3.4 bob x", True),
        ("[level != INFO, ...]", "INFO hello", False),
    ],
)
def test_space_delimited_patterns(pattern: str, message: str, expected: bool) -> None:
    assert compile_pattern(pattern)(message) is expected


@pytest.mark.parametrize(
    "pattern",
    [
        '"unterminated',
        'a"b',
        "{ $.a = }",
        "{ $.a = 1",
        '{ $.a > "x" }',
        "{ a = 1 }",
        "{ $.a IS MAYBE }",
        "{ $.a NOT THERE }",
        "{ $.a = 1 && }",
        "{ $.a = 1 } extra",
        "[a, b = ]",
        "[a, b",
        "%(unclosed%",
    ],
)
def test_malformed_patterns_are_invalid_parameters(pattern: str) -> None:
    with pytest.raises(InvalidParameterException, match="Invalid filter pattern") as info:
        compile_pattern(pattern)
    assert info.value.code == "InvalidParameterException"
    assert info.value.status == 400
