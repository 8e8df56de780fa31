"""CloudWatch Logs filter patterns, compiled once per request into a predicate over messages.

Four forms, as CloudWatch reads them:

* plain text: ``ERROR Exception`` (every term), ``"Task timed out"`` (a phrase), ``?ERROR ?WARN``
  (any of them), ``-DEBUG`` (none of them); case-sensitive; an empty pattern matches everything;
* regular expression: ``%ERROR|WARN%``;
* JSON: ``{ $.level = "error" && ($.latency > 100 || $.retry IS TRUE) }`` over messages that are JSON;
* space-delimited: ``[ip, user, ..., status = 5*, bytes > 1000]`` over whitespace-separated fields.

A malformed pattern raises ``InvalidParameterException("Invalid filter pattern")``, as AWS does.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lambdad.http.errors import InvalidParameterException

Matcher = Callable[[str], bool]
_INVALID = "Invalid filter pattern"
_MISSING = object()


def compile_pattern(pattern: str | None) -> Matcher:
    """Return a predicate telling whether a message matches ``pattern``."""
    text = (pattern or "").strip()
    if not text:
        return _match_all
    if text.startswith("{"):
        return _JsonParser(text).parse()
    if text.startswith("["):
        return _compile_delimited(text)
    if len(text) > 1 and text.startswith("%") and text.endswith("%"):
        return _compile_regex(text[1:-1])
    return _compile_terms(text)


def _invalid() -> InvalidParameterException:
    return InvalidParameterException(_INVALID)


def _match_all(message: str) -> bool:
    return True


def _compile_regex(source: str) -> Matcher:
    try:
        regex = re.compile(source)
    except re.error as exc:
        raise _invalid() from exc
    return lambda message: regex.search(message) is not None


# --- plain text -----------------------------------------------------------------------------------


def _terms(text: str) -> list[tuple[str, str]]:
    """Split into (prefix, term) pairs; prefix is "", "?" or "-"."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        prefix = ""
        if text[i] in "?-" and i + 1 < len(text) and not text[i + 1].isspace():
            prefix, i = text[i], i + 1
        if text[i] == '"':
            term, i = _quoted(text, i)
        else:
            end = i
            while end < len(text) and not text[end].isspace():
                end += 1
            term, i = text[i:end], end
            if '"' in term:
                raise _invalid()
        out.append((prefix, term))
    return out


def _quoted(text: str, start: int) -> tuple[str, int]:
    """Read a double-quoted string starting at ``text[start] == '"'``; return (value, next index)."""
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            chars.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(chars), i + 1
        chars.append(char)
        i += 1
    raise _invalid()


def _compile_terms(text: str) -> Matcher:
    pairs = _terms(text)
    required = [t for p, t in pairs if p == ""]
    anyof = [t for p, t in pairs if p == "?"]
    excluded = [t for p, t in pairs if p == "-"]

    def match(message: str) -> bool:
        if any(t not in message for t in required):
            return False
        if anyof and not any(t in message for t in anyof):
            return False
        return not any(t in message for t in excluded)

    return match


# --- shared value comparison ----------------------------------------------------------------------


def _wildcard(value: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in value.split("*")), re.DOTALL)


@dataclass(frozen=True)
class _Comparison:
    """``<field> <op> <literal>``: numeric when the literal is a number, else string with ``*``."""

    op: str
    literal: str | float

    @classmethod
    def build(cls, op: str, literal: str | float) -> _Comparison:
        if op not in ("=", "!=") and not isinstance(literal, float):
            raise _invalid()
        return cls(op, literal)

    def test(self, value: Any) -> bool:
        if isinstance(self.literal, float):
            number = _number(value)
            return number is not None and _NUMERIC[self.op](number, self.literal)
        if not isinstance(value, str):
            return False
        hit = _wildcard(self.literal).fullmatch(value) is not None
        return hit if self.op == "=" else not hit


_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: math.isclose(a, b),
    "!=": lambda a, b: not math.isclose(a, b),
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


# --- JSON -----------------------------------------------------------------------------------------

_JSON_TOKEN = re.compile(
    r"""\s*(?:
        (?P<punct>&&|\|\||!=|<=|>=|=|<|>|\(|\)|\{|\})
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<selector>\$(?:\.[A-Za-z0-9_@\-*]+|\[(?:\d+|\*)\])*)
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w*]))
      | (?P<word>[^\s()"{}=!<>&|]+)
    )""",
    re.VERBOSE,
)
_SEGMENT = re.compile(r"\.([A-Za-z0-9_@\-*]+)|\[(\d+|\*)\]")


def _json_tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _JSON_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _invalid()
        kind = m.lastgroup
        assert kind is not None
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


def _select(doc: Any, selector: str) -> Any:
    value = doc
    for name, index in _SEGMENT.findall(selector[1:]):
        if name and isinstance(value, dict):
            value = value.get(name, _MISSING)
        elif index and index != "*" and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _json_doc(message: str) -> Any:
    stripped = message.strip()
    if not stripped.startswith(("{", "[")):
        return _MISSING
    try:
        return json.loads(stripped)
    except ValueError:
        return _MISSING


JsonTest = Callable[[Any], bool]


class _JsonParser:
    """Recursive descent over ``{ expr }`` with ``||`` binding looser than ``&&``."""

    def __init__(self, text: str) -> None:
        self.tokens = _json_tokens(text)
        self.pos = 0

    def parse(self) -> Matcher:
        self._expect("punct", "{")
        test = self._or()
        self._expect("punct", "}")
        if self.pos != len(self.tokens):
            raise _invalid()

        def match(message: str) -> bool:
            doc = _json_doc(message)
            return doc is not _MISSING and test(doc)

        return match

    def _peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def _next(self) -> tuple[str, str]:
        token = self._peek()
        if token[0] == "end":
            raise _invalid()
        self.pos += 1
        return token

    def _expect(self, kind: str, value: str | None = None) -> str:
        got_kind, got = self._next()
        if got_kind != kind or (value is not None and got != value):
            raise _invalid()
        return got

    def _or(self) -> JsonTest:
        tests = [self._and()]
        while self._peek() == ("punct", "||"):
            self.pos += 1
            tests.append(self._and())
        return tests[0] if len(tests) == 1 else (lambda doc: any(t(doc) for t in tests))

    def _and(self) -> JsonTest:
        tests = [self._atom()]
        while self._peek() == ("punct", "&&"):
            self.pos += 1
            tests.append(self._atom())
        return tests[0] if len(tests) == 1 else (lambda doc: all(t(doc) for t in tests))

    def _atom(self) -> JsonTest:
        if self._peek() == ("punct", "("):
            self.pos += 1
            test = self._or()
            self._expect("punct", ")")
            return test
        selector = self._expect("selector")
        kind, token = self._next()
        if kind == "word" and token.upper() in ("IS", "NOT"):
            return self._keyword(selector, token.upper())
        if kind != "punct" or token not in _NUMERIC:
            raise _invalid()
        comparison = _Comparison.build(token, self._literal())
        return lambda doc: comparison.test(_select(doc, selector))

    def _keyword(self, selector: str, first: str) -> JsonTest:
        word = self._expect("word").upper()
        if first == "NOT":
            if word != "EXISTS":
                raise _invalid()
            return lambda doc: _select(doc, selector) is _MISSING
        expected: dict[str, Any] = {"NULL": None, "TRUE": True, "FALSE": False}
        if word not in expected:
            raise _invalid()
        want = expected[word]
        return lambda doc: _select(doc, selector) is want

    def _literal(self) -> str | float:
        kind, token = self._next()
        if kind == "number":
            return float(token)
        if kind == "string":
            return str(json.loads(token))
        if kind == "word":
            return token
        raise _invalid()


# --- space-delimited ------------------------------------------------------------------------------

_FIELD = re.compile(r'"([^"]*)"|\[([^\]]*)\]|(\S+)')
_SPEC = re.compile(r"^\s*([A-Za-z_][\w\-]*)\s*(?:(!=|<=|>=|=|<|>)\s*(.+?))?\s*$")
_Spec = tuple[str, "_Comparison | None"]


def _compile_delimited(text: str) -> Matcher:
    if not text.endswith("]"):
        raise _invalid()
    specs: list[_Spec | None] = []
    inner = text[1:-1].strip()
    for part in inner.split(",") if inner else []:
        if part.strip() == "...":
            specs.append(None)
            continue
        m = _SPEC.match(part)
        if m is None:
            raise _invalid()
        name, op, raw = m.groups()
        comparison = None if op is None else _Comparison.build(op, _delimited_literal(raw))
        specs.append((name, comparison))

    def match(message: str) -> bool:
        return _match_fields(specs, _fields(message))

    return match


def _fields(message: str) -> list[str]:
    """Whitespace-separated fields; text in "" or [] is one field, without its delimiters."""
    return ["".join(m.groups("")) for m in _FIELD.finditer(message)]


def _delimited_literal(raw: str) -> str | float:
    raw = raw.strip()
    if raw.startswith('"'):
        value, end = _quoted(raw, 0)
        if end != len(raw):
            raise _invalid()
        return value
    try:
        return float(raw)
    except ValueError:
        return raw


def _match_fields(specs: list[_Spec | None], fields: list[str]) -> bool:
    if not specs:
        return not fields
    head, rest = specs[0], specs[1:]
    if head is None:
        return any(_match_fields(rest, fields[i:]) for i in range(len(fields) + 1))
    if not fields:
        return False
    _, comparison = head
    if comparison is not None and not comparison.test(fields[0]):
        return False
    return _match_fields(rest, fields[1:])
