"""AWS Signature Version 4 verification for every incoming request.

The verifier rebuilds the canonical request the way the client built it and compares signatures.
Two forms are accepted: the ``Authorization`` header and the presigned query string
(``X-Amz-Algorithm`` ... ``X-Amz-Signature``). Failures are raised as the AWS error AWS itself
returns, with AWS's wording, so SDKs surface the same messages.

The canonical URI has two accepted forms, tried in this order:

1. *double-encoded* (what botocore, the CLI and every non-S3 AWS SDK send): the path as it arrived,
   still percent-encoded, with dot segments and repeated slashes removed, percent-encoded again
   (``arn%3Aaws`` signs as ``arn%253Aaws``);
2. *single-encoded* (what the official SigV4 test suite specifies): each normalized segment decoded
   and encoded once. It differs from form 1 only when the path holds a ``%``, so it costs a second
   HMAC only then, and only when form 1 did not match.

The canonical request is built from raw bytes, so header values are signed exactly as received.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import ClassVar
from urllib.parse import quote_from_bytes, unquote_to_bytes

from lambdad.http.errors import (
    AccessDeniedException,
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = b"UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest().encode()
CLOCK_SKEW_S = 300
MAX_PRESIGN_EXPIRES = 604800  # one week, AWS's limit for X-Amz-Expires

MSG_MISSING_TOKEN = "Missing Authentication Token"
MSG_UNKNOWN_KEY = "The security token included in the request is invalid."
MSG_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
MSG_EXPIRED_PRESIGN = "Request has expired"
_DATE_REQUIRED = "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
_QUERY_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)

_PRESIGN_KEYS = {name.encode(): name for name in _QUERY_PARAMS}

_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
_PATH_SAFE_AND_PERCENT = _UNRESERVED + b"/%"
#: Unreserved bytes and upper-case %XX escapes only, ...
_CANONICAL_ENCODED = re.compile(rb"(?:[A-Za-z0-9_.~-]|%[0-9A-F]{2})*")
#: ... none of which escapes an unreserved byte (those must be bare in the canonical form).
_NEEDLESSLY_ENCODED = re.compile(rb"%(?:2D|2E|3[0-9]|4[1-9A-F]|5[0-9AF]|6[1-9A-F]|7[0-9AE])")

#: The Authorization header as SDKs write it; any other spelling goes through the general parser,
#: which gives the same claims (its values are the tokens between commas and whitespace).
_USUAL_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([^,\s]+)"
)

#: Whitespace that canonicalization would change inside a value: a run, or anything but a space.
_COLLAPSIBLE = re.compile(rb"\s\s|[\t\n\r\x0b\x0c]")

Headers = dict[bytes, list[bytes]]


class VerifiedCaller:
    """Who signed the request, and for which region and service they scoped the signature.
    (Plain classes here and below, made on every request: compiled, their __init__ is C, where a
    named tuple's __new__ and a dataclass's __init__ stay Python code.)"""

    def __init__(self, access_key_id: str, region: str, service: str) -> None:
        self.access_key_id = access_key_id
        self.region = region
        self.service = service

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifiedCaller):
            return NotImplemented
        return (self.access_key_id, self.region, self.service) == (
            other.access_key_id,
            other.region,
            other.service,
        )

    def __hash__(self) -> int:
        return hash((self.access_key_id, self.region, self.service))

    def __repr__(self) -> str:
        return f"VerifiedCaller({self.access_key_id!r}, {self.region!r}, {self.service!r})"


class _Auth:
    """The signature claims of one request, whichever form (header or query) carried them."""

    def __init__(
        self,
        access_key_id: str,
        scope_date: str,
        region: str,
        service: str,
        signed_headers: tuple[bytes, ...],
        signed_headers_raw: str,
        signature: str,
        presigned: bool,
        expires: str = "",  # X-Amz-Expires of a presigned URL, as sent
    ) -> None:
        self.access_key_id = access_key_id
        self.scope_date = scope_date
        self.region = region
        self.service = service
        self.signed_headers = signed_headers
        self.signed_headers_raw = signed_headers_raw
        self.signature = signature
        self.presigned = presigned
        self.expires = expires


def verify_request(
    method: str,
    raw_path: bytes,
    query_string: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    lookup_secret: Callable[[str], str | None],
    now: datetime | None = None,
) -> VerifiedCaller:
    """Return the verified caller of a request, or raise the 403 error AWS would return."""
    header_map = _header_map(headers)
    auth, amz_date, request_time, canonical_query = _read_auth(header_map, query_string)
    _check_time(auth, amz_date, request_time, now.timestamp() if now is not None else time.time())
    secret = lookup_secret(auth.access_key_id)
    if secret is None:
        raise UnrecognizedClientException(MSG_UNKNOWN_KEY)
    key = _signing_key(secret, auth.scope_date, auth.region, auth.service)
    scope = f"{auth.scope_date}/{auth.region}/{auth.service}/aws4_request"
    head = method.upper().encode() + b"\n"
    # Query, headers and signed-header list do not depend on the payload hash or the URI form.
    middle = b"\n".join(
        (
            b"",
            canonical_query,
            _canonical_headers(header_map, auth.signed_headers),
            auth.signed_headers_raw.encode(),
            b"",
        )
    )
    for payload_hash in _payload_hashes(header_map, body, auth.presigned):
        for uri in _canonical_uris(raw_path):
            if _matches(key, amz_date, scope, head + uri + middle + payload_hash, auth.signature):
                if auth.presigned:
                    _PresignedForm.unsigned_first = payload_hash == UNSIGNED_PAYLOAD
                return VerifiedCaller(auth.access_key_id, auth.region, auth.service)
    raise InvalidSignatureException(MSG_MISMATCH)


# --- reading the request -------------------------------------------------------------------------


def _header_map(headers: list[tuple[bytes, bytes]]) -> Headers:
    """Group header values by lowercase name, keeping arrival order (duplicates sign joined by ',')."""
    result: Headers = {}
    for name, value in headers:
        result.setdefault(name.lower(), []).append(value)
    return result


def _split_query(query_string: bytes) -> list[tuple[bytes, bytes]]:
    """Split a raw query string into raw (still encoded) key/value pairs; empty pieces are dropped."""
    pairs: list[tuple[bytes, bytes]] = []
    for piece in query_string.split(b"&"):
        if piece:
            key, _, value = piece.partition(b"=")
            pairs.append((key, value))
    return pairs


def _presign_params(query: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The decoded values of the presigned-URL parameters present (the first of each), in one pass."""
    found: dict[str, str] = {}
    for key, value in query:
        name = _PRESIGN_KEYS.get(key)
        if name is not None and name not in found:
            found[name] = (unquote_to_bytes(value) if b"%" in value else value).decode("utf-8", "replace")
    return found


def _read_auth(header_map: Headers, query_string: bytes) -> tuple[_Auth, str, float, bytes]:
    """Pick the signature form the request uses and parse it; raise when there is none.
    Returns the claims, the signing time in both forms and the canonical query string."""
    authorization = header_map.get(b"authorization")
    if b"X-Amz-Algorithm" in query_string:
        if not authorization:
            claims = _presigned_claims(query_string)
            if claims is not None:
                return claims
        elif any(key == b"X-Amz-Algorithm" for key, _ in _split_query(query_string)):
            raise IncompleteSignatureException(
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter "
                "or the Authorization header should be specified"
            )
    if authorization:
        auth, amz_date, request_time = _parse_header_auth(authorization[0].decode("latin-1"), header_map)
        canonical_query = _canonical_query(_split_query(query_string), False) if query_string else b""
        return auth, amz_date, request_time, canonical_query
    raise MissingAuthenticationTokenException(MSG_MISSING_TOKEN)


@lru_cache(maxsize=256)
def _presigned_claims(query_string: bytes) -> tuple[_Auth, str, float, bytes] | None:
    """What a presigned URL's query string claims, and its canonical form (None when it has no
    X-Amz-Algorithm parameter): a pure function of the string, kept for the URL's next use (a
    presigned URL is made to be used until it expires). The signature is still computed and
    compared, and the time checked, on every request."""
    query = _split_query(query_string)
    if not any(key == b"X-Amz-Algorithm" for key, _ in query):
        return None
    auth, amz_date, request_time = _parse_query_auth(query)
    return auth, amz_date, request_time, _canonical_query(query, True)


def _parse_header_auth(value: str, header_map: Headers) -> tuple[_Auth, str, float]:
    """Parse ``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...``."""
    usual = _USUAL_AUTHORIZATION.fullmatch(value.strip())
    date_value = _date_header(header_map)
    if usual is not None and date_value is not None:  # what every SDK sends: one C-level match
        amz_date, request_time = _parse_date(date_value)
        credential, signed_headers, signature = usual.groups()
        return _make_auth(credential, signed_headers, signature, False), amz_date, request_time
    algorithm, _, rest = value.strip().partition(" ")
    params = _auth_params(rest, value) if algorithm == ALGORITHM else {}
    missing = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if name not in params
    ]
    if date_value is None:
        missing.append(_DATE_REQUIRED)
    if missing or date_value is None:
        raise IncompleteSignatureException(" ".join(missing) + f" Authorization={value}")
    amz_date, request_time = _parse_date(date_value)
    auth = _make_auth(params["Credential"], params["SignedHeaders"], params["Signature"], False)
    return auth, amz_date, request_time


def _auth_params(rest: str, value: str) -> dict[str, str]:
    """Split the header's ``key=value`` pairs; AWS separates them by commas and/or spaces."""
    params: dict[str, str] = {}
    for token in rest.replace(",", " ").split():
        key, eq, item = token.partition("=")
        if not eq:
            raise IncompleteSignatureException(
                f"'{token}' not a valid key=value pair (missing equal-sign) "
                f"in Authorization header: '{value}'."
            )
        params[key] = item
    return params


def _date_header(header_map: Headers) -> str | None:
    """Return the signing time's header value: ``X-Amz-Date`` wins over ``Date``."""
    values = header_map.get(b"x-amz-date") or header_map.get(b"date")
    return values[0].decode("latin-1").strip() if values else None


def _parse_query_auth(query: list[tuple[bytes, bytes]]) -> tuple[_Auth, str, float]:
    """Parse the presigned-URL parameters; all six are required, as AWS requires them."""
    values = _presign_params(query)
    missing = [f"AWS query-string parameters must include '{n}'." for n in _QUERY_PARAMS if n not in values]
    if missing:
        raise IncompleteSignatureException(" ".join(missing) + " Re-examine the query-string parameters.")
    if values["X-Amz-Algorithm"] != ALGORITHM:
        raise IncompleteSignatureException(
            f"X-Amz-Algorithm only supports '{ALGORITHM}', got '{values['X-Amz-Algorithm']}'."
        )
    amz_date, request_time = _parse_date(values["X-Amz-Date"])
    auth = _make_auth(values["X-Amz-Credential"], values["X-Amz-SignedHeaders"], values["X-Amz-Signature"],
                      True, values["X-Amz-Expires"])  # fmt: skip
    return auth, amz_date, request_time


def _make_auth(
    credential: str, signed_headers: str, signature: str, presigned: bool, expires: str = ""
) -> _Auth:
    """Validate the credential scope and signed-header list shared by both forms."""
    key_id, scope_date, region, service, names, names_raw = _scope(credential, signed_headers)
    return _Auth(key_id, scope_date, region, service, names, names_raw, signature, presigned, expires)


@lru_cache(maxsize=1024)  # a client signs many requests with the same credential and header list
def _scope(credential: str, signed_headers: str) -> tuple[str, str, str, str, tuple[bytes, ...], str]:
    parts = credential.rsplit("/", 4)
    if len(parts) != 5 or not parts[0]:
        raise IncompleteSignatureException(
            "Credential must have exactly 5 slash-delimited elements, "
            f"e.g. keyid/date/region/service/term, got '{credential}'"
        )
    key_id, scope_date, region, service, terminator = parts
    if terminator != "aws4_request":
        raise InvalidSignatureException(
            f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        )
    names = tuple(sorted(name.encode() for name in signed_headers.lower().split(";") if name))
    if b"host" not in names:
        raise InvalidSignatureException(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        )
    return key_id, scope_date, region, service, names, signed_headers.lower()


@lru_cache(maxsize=1024)  # requests within one second share their date
def _parse_date(value: str) -> tuple[str, float]:
    """Parse ISO 8601 basic (``20150830T123600Z``) or an RFC 1123 ``Date``; return the basic form
    and the time in seconds since the epoch."""
    if len(value) == 16 and value[8] == "T" and value[15] == "Z" and (value[:8] + value[9:15]).isdigit():
        try:
            parsed = datetime(
                int(value[0:4]), int(value[4:6]), int(value[6:8]),
                int(value[9:11]), int(value[11:13]), int(value[13:15]), tzinfo=UTC,
            )  # fmt: skip
            return value, parsed.timestamp()
        except ValueError:
            pass
    try:
        parsed = parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError, IndexError):
        raise IncompleteSignatureException(
            f"Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601"
        ) from None
    return parsed.strftime("%Y%m%dT%H%M%SZ"), parsed.timestamp()


# --- time ----------------------------------------------------------------------------------------


def _check_time(auth: _Auth, amz_date: str, request_time: float, now: float) -> None:
    """Reject a scope dated another day, a clock skew over 5 minutes, or an expired presigned URL.
    Times are seconds since the epoch: datetime arithmetic cost several times as much per request."""
    if auth.scope_date != amz_date[:8]:
        raise InvalidSignatureException(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{auth.scope_date}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    if request_time > now + CLOCK_SKEW_S:
        raise InvalidSignatureException(
            f"Signature not yet current: {amz_date} is still later than "
            f"{_iso(now + CLOCK_SKEW_S)} ({_iso(now)} + 5 min.)"
        )
    if auth.presigned:
        _check_expires(request_time, auth.expires, now)
    elif request_time < now - CLOCK_SKEW_S:
        raise InvalidSignatureException(
            f"Signature expired: {amz_date} is now earlier than "
            f"{_iso(now - CLOCK_SKEW_S)} ({_iso(now)} - 5 min.)"
        )


def _check_expires(request_time: float, raw: str, now: float) -> None:
    """A presigned URL lives ``X-Amz-Expires`` seconds (1 to a week) from its ``X-Amz-Date``."""
    if not raw.isdigit():
        raise IncompleteSignatureException(f"X-Amz-Expires should be a number, got '{raw}'")
    expires = int(raw)
    if expires < 1:
        raise IncompleteSignatureException("X-Amz-Expires must be non-negative")
    if expires > MAX_PRESIGN_EXPIRES:
        raise IncompleteSignatureException(
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGN_EXPIRES}"
        )
    if now > request_time + expires:
        raise AccessDeniedException(MSG_EXPIRED_PRESIGN)


def _iso(moment: float) -> str:
    """Format a time (seconds since the epoch) as SigV4's ISO 8601 basic form."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(moment))


# --- the canonical request -----------------------------------------------------------------------


@lru_cache(maxsize=1024)  # a client calls the same few paths again and again
def _canonical_uris(raw_path: bytes) -> tuple[bytes, ...]:
    """The canonical URIs to try: double-encoded, then single-encoded when it differs (see module doc)."""
    return tuple(_candidate_uris(raw_path))


def _candidate_uris(raw_path: bytes) -> Iterator[bytes]:
    normalized = _remove_dot_segments(raw_path)
    if normalized.translate(None, _PATH_SAFE_AND_PERCENT):
        double = quote_from_bytes(normalized, safe="/~").encode()
    else:
        double = normalized.replace(b"%", b"%25")  # the same result, without quote's per-byte loop
    yield double
    if b"%" in normalized:
        single = b"/".join(
            quote_from_bytes(unquote_to_bytes(seg), safe="~").encode() for seg in normalized.split(b"/")
        )
        if single != double:
            yield single


def _remove_dot_segments(path: bytes) -> bytes:
    """RFC 3986 dot-segment removal plus collapsing of repeated slashes, as botocore does it."""
    if not path:
        return b"/"
    if b"//" not in path and b"/." not in path and path[:1] == b"/":
        return path  # nothing to remove: the common case
    output: list[bytes] = []
    for segment in path.split(b"/"):
        if segment == b"..":
            if output:
                output.pop()
        elif segment and segment != b".":
            output.append(segment)
    first = b"/" if path.startswith(b"/") else b""
    last = b"/" if path.endswith(b"/") and output else b""
    return first + b"/".join(output) + last


def _canonical_query(query: list[tuple[bytes, bytes]], presigned: bool) -> bytes:
    """Re-encode each pair per RFC 3986 and sort by key, then value; never sign the signature."""
    pairs = sorted(
        (_rfc3986(key), _rfc3986(value))
        for key, value in query
        if not (presigned and key == b"X-Amz-Signature")
    )
    return b"&".join(key + b"=" + value for key, value in pairs)


@lru_cache(maxsize=4096)  # a presigning client repeats most of its parameters on every request
def _rfc3986(raw: bytes) -> bytes:
    """Decode then encode with only unreserved characters left bare (``+`` stays a literal plus)."""
    if _CANONICAL_ENCODED.fullmatch(raw) and not _NEEDLESSLY_ENCODED.search(raw):
        return raw  # already as SigV4 spells it (the common case): skip quote's per-byte loop
    return quote_from_bytes(unquote_to_bytes(raw), safe="-_.~").encode()


def _canonical_headers(header_map: Headers, names: tuple[bytes, ...]) -> bytes:
    """``name:value`` lines for the signed headers, values trimmed and inner whitespace collapsed."""
    out = []
    for name in names:  # sorted by _scope
        values = header_map.get(name, ())
        if len(values) == 1 and not _COLLAPSIBLE.search(values[0]):
            value = values[0].strip()  # the common case: nothing inside to collapse
        else:
            value = b",".join(b" ".join(v.split()) for v in values)
        out.append(name + b":" + value + b"\n")
    return b"".join(out)


def _payload_hashes(header_map: Headers, body: bytes, presigned: bool) -> Iterator[bytes]:
    """The payload hashes to try: the client's declared one, else sha256(body).

    A presigned URL may also sign ``UNSIGNED-PAYLOAD``: S3-style presigners always do, while
    botocore's generic ``SigV4QueryAuth`` (and AWS's non-S3 services) hash the actual, usually
    empty, body.
    """
    declared = header_map.get(b"x-amz-content-sha256")
    if declared:
        yield declared[0].strip()
        return
    unsigned_first = presigned and _PresignedForm.unsigned_first
    if unsigned_first:
        yield UNSIGNED_PAYLOAD
    yield hashlib.sha256(body).hexdigest().encode() if body else EMPTY_SHA256  # only when needed
    if presigned and not unsigned_first:
        yield UNSIGNED_PAYLOAD


class _PresignedForm:
    """Which payload hash the last presigned URL verified with, tried first on the next one: the
    other attempt is a whole second signature. Only the order of the attempts depends on it."""

    unsigned_first: ClassVar[bool] = False


# --- signing -------------------------------------------------------------------------------------


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class _Signer:
    """HMAC-SHA256 under one key (RFC 2104), with the padded key's two hash states computed once:
    each signature then copies them instead of setting up HMAC from the key (half the time)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:  # longer than SHA-256's block: hashed first, as RFC 2104 says
            key = hashlib.sha256(key).digest()
        block = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._outer = hashlib.sha256(block.translate(_OPAD))

    def hexdigest(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


@lru_cache(maxsize=256)
def _signing_key(secret: str, date: str, region: str, service: str) -> _Signer:
    """Derive the day's signing key; cached because it costs four HMACs and changes once a day."""
    key = _hmac(("AWS4" + secret).encode(), date.encode())
    key = _hmac(key, region.encode())
    key = _hmac(key, service.encode())
    return _Signer(_hmac(key, b"aws4_request"))


def _hmac(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256, the only primitive SigV4 uses."""
    return hmac.new(key, message, hashlib.sha256).digest()


def _matches(key: _Signer, amz_date: str, scope: str, canonical_request: bytes, signature: str) -> bool:
    """Sign the string-to-sign for this canonical request and compare in constant time."""
    string_to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical_request).hexdigest()}"
    expected = key.hexdigest(string_to_sign.encode())
    return hmac.compare_digest(expected.encode(), signature.encode())
