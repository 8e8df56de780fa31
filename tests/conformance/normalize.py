"""Normalise our boto3 responses the way the AWS recordings were normalised, and compare them.

The recordings (``/work/shared/conformance/aws-recorded``) are boto3-parsed responses from real AWS
after LocalStack's snapshot transformers: ``ResponseMetadata`` cut to the status code, dates replaced
by ``date``/``datetime``, account ``111111111111``, ``<region>``/``<partition>`` in ARNs, and every
other dynamic value (names, uuids, sha256s, sizes) replaced by a ``<placeholder>``.

Our side is normalised with the same static rules (:func:`normalize`); the dynamic values are then
matched by :func:`compare`: a recorded ``<kind:N>`` placeholder binds to the value in the same spot of
our response, and must stand for that same value everywhere else in the test (and no other indexed
placeholder may stand for it: AWS's transformers give one value one placeholder). An unindexed
``<kind>`` placeholder (``<code-size>``, ``<location>``, ``<uuid>``) matches any non-empty text.
Everything else -- structure, keys, status codes, error codes, messages, every static value -- must be
equal, and :func:`compare` names the first difference by path.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from botocore.response import StreamingBody

OUR_ACCOUNT = "000000000000"
RECORDED_ACCOUNT = "111111111111"
OUR_REGION = "us-east-1"

# Keys whose ISO-8601 string values the recordings replaced by "date".
DATE_KEYS = frozenset({"LastModified", "CreationTime", "CreatedDate", "LastModifiedTime", "timestamp"})
# Bare (unbracketed) placeholders some recordings use, matched like an unindexed placeholder.
BARE_PLACEHOLDERS = frozenset({"code-sha256"})
# The placeholders our normalisation itself produces; they are compared as literal text.
STATIC_PLACEHOLDERS = frozenset({"<region>", "<partition>"})

_PLACEHOLDER = re.compile(r"<[A-Za-z_][A-Za-z0-9_\-]*(?::\d+)?>|<a:len\(\d+\)>")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def _normalize_str(value: str) -> str:
    value = value.replace(OUR_ACCOUNT, RECORDED_ACCOUNT)
    value = re.sub(r"\barn:aws:", "arn:<partition>:", value)
    return value.replace(OUR_REGION, "<region>")


def _payload(body: StreamingBody | bytes) -> Any:
    raw = body.read() if isinstance(body, StreamingBody) else body
    text = raw.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return _normalize_str(text)
    # LocalStack's snapshot parses JSON documents, but keeps scalars ("null", "1") as the text.
    return normalize(parsed) if isinstance(parsed, (dict, list)) else _normalize_str(text)


def normalize(value: Any, key: str | None = None) -> Any:
    """Our response (or anything inside it) with the recordings' static normalisation applied."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k == "ResponseMetadata":
                out[k] = {"HTTPHeaders": {}, "HTTPStatusCode": v["HTTPStatusCode"]}
            elif k in ("Policy",) and isinstance(v, str):
                out[k] = normalize(json.loads(v))
            else:
                out[k] = normalize(v, k)
        return out
    if isinstance(value, list):
        return [normalize(v, key) for v in value]
    if isinstance(value, datetime.datetime):
        return "datetime"
    if isinstance(value, (StreamingBody, bytes)) and key == "Payload":
        return _payload(value)
    if isinstance(value, str):
        if key in DATE_KEYS and _ISO_DATE.match(value):
            return "date"
        return _normalize_str(value)
    return value


def normalize_error(error: ClientError) -> dict[str, Any]:
    """A ClientError as the recordings keep it: Error.Code/Message, Type, the body's Message/message."""
    response = error.response
    out: dict[str, Any] = {
        "Error": {"Code": response["Error"]["Code"], "Message": response["Error"].get("Message", "")}
    }
    for key in ("Message", "message", "Type"):
        if key in response:
            out[key] = response[key]
    out["ResponseMetadata"] = response["ResponseMetadata"]
    return normalize(out)


@dataclass
class Bindings:
    """Which of our values each indexed placeholder stands for, across one recorded test."""

    values: dict[str, str] = field(default_factory=dict)

    def copy(self) -> Bindings:
        return Bindings(dict(self.values))


@dataclass
class Difference:
    path: str
    recorded: Any
    ours: Any

    def __str__(self) -> str:
        return f"at {self.path or '<root>'}: recorded {self.recorded!r}, ours {self.ours!r}"


def _match_str(recorded: str, ours: str, bindings: Bindings) -> bool:
    if recorded in BARE_PLACEHOLDERS:
        return bool(ours)
    tokens = [m for m in _PLACEHOLDER.finditer(recorded) if m.group(0) not in STATIC_PLACEHOLDERS]
    if not tokens:
        return recorded == ours
    pattern = ""
    groups: dict[str, str] = {}
    pos = 0
    for n, m in enumerate(tokens):
        pattern += re.escape(recorded[pos : m.start()])
        name = m.group(0)
        indexed = re.search(r":\d+>$", name) is not None
        if indexed and name in bindings.values:
            pattern += re.escape(bindings.values[name])
        elif indexed and name in groups:
            pattern += f"(?P={groups[name]})"
        else:
            group = f"g{n}"
            if indexed:
                groups[name] = group
            pattern += f"(?P<{group}>.+?)"
        pos = m.end()
    pattern += re.escape(recorded[pos:])
    found = re.fullmatch(pattern, ours, re.DOTALL)
    if found is None:
        return False
    new = {name: found.group(group) for name, group in groups.items()}
    taken = {v: k for k, v in bindings.values.items()}
    for name, value in new.items():
        if taken.get(value, name) != name:
            return False  # one value, two placeholders: AWS had two different values here
        taken[value] = name
    bindings.values.update(new)
    return True


def compare(recorded: Any, ours: Any, bindings: Bindings, path: str = "") -> Difference | None:
    """The first difference between a recorded entry and our normalised one, or None."""
    if isinstance(recorded, dict):
        if not isinstance(ours, dict):
            return Difference(path, recorded, ours)
        for key in sorted(set(recorded) | set(ours)):
            sub = f"{path}.{key}" if path else key
            if key not in ours:
                return Difference(sub, recorded[key], "<missing>")
            if key not in recorded:
                return Difference(sub, "<missing>", ours[key])
            diff = compare(recorded[key], ours[key], bindings, sub)
            if diff:
                return diff
        return None
    if isinstance(recorded, list):
        if not isinstance(ours, list) or len(recorded) != len(ours):
            return Difference(path, recorded, ours)
        for n, (r, o) in enumerate(zip(recorded, ours, strict=True)):
            diff = compare(r, o, bindings, f"{path}[{n}]")
            if diff:
                return diff
        return None
    if isinstance(recorded, str) and _PLACEHOLDER.search(recorded) and type(ours) in (int, float):
        ours = str(ours)  # sizes and counts the recordings replaced by a placeholder
    if isinstance(recorded, str) and isinstance(ours, str):
        trial = bindings.copy()
        if not _match_str(recorded, ours, trial):
            return Difference(path, recorded, ours)
        bindings.values.update(trial.values)
        return None
    if type(recorded) is not type(ours) or recorded != ours:
        return Difference(path, recorded, ours)
    return None
