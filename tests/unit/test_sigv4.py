"""SigV4 verification against AWS's official test suite and against botocore's own signer.

Every accepted request is also tampered with and must then be rejected, so a verifier that accepts
everything (or rejects everything) fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest
from botocore.credentials import Credentials

from lambdad.http.errors import (
    AccessDeniedException,
    AwsError,
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)
from lambdad.http.sigv4 import VerifiedCaller, verify_request

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "sigv4"
KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
VECTOR_TIME = datetime(2015, 8, 30, 12, 36, 0, tzinfo=UTC)
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:my-fn"


def lookup(key_id: str) -> str | None:
    return SECRET if key_id == KEY_ID else None


@dataclass(frozen=True)
class Raw:
    """A request as an ASGI server hands it over."""

    method: str
    path: bytes
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def verify(self, now: datetime | None = VECTOR_TIME) -> VerifiedCaller:
        return verify_request(self.method, self.path, self.query, self.headers, self.body, lookup, now)

    def with_header(self, name: bytes, edit: Callable[[bytes], bytes]) -> Raw:
        return replace(self, headers=[(n, edit(v) if n == name else v) for n, v in self.headers])


# --- the official test suite ---------------------------------------------------------------------


def parse_sreq(data: bytes) -> Raw:
    """Parse a ``.sreq`` file; folded header lines are joined with a space, as h11 does."""
    head, _, body = data.partition(b"\n\n")
    request_line, *lines = head.split(b"\n")
    method, _, rest = request_line.partition(b" ")
    target = rest.rpartition(b" ")[0]  # the target may hold spaces (get-space)
    path, _, query = target.partition(b"?")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            name, value = headers.pop()
            headers.append((name, value + b" " + line.strip()))
        else:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
    return Raw(method.decode(), path, query, headers, body)


def vector_files() -> list[Path]:
    return sorted(VECTORS.rglob("*.sreq")) if VECTORS.is_dir() else []


needs_vectors = pytest.mark.skipif(not VECTORS.is_dir(), reason=f"SigV4 test suite not found at {VECTORS}")
vectors = pytest.mark.parametrize("sreq", vector_files(), ids=lambda p: p.stem)


def load(sreq: Path) -> Raw:
    """The ``.sreq`` request, signed with the ``.authz`` header (see test_suite_sreq_authz_mismatch)."""
    authz = sreq.with_suffix(".authz").read_bytes().strip()
    return parse_sreq(sreq.read_bytes()).with_header(b"authorization", lambda _: authz)


def signed_names(raw: Raw) -> list[bytes]:
    auth = dict(raw.headers)[b"authorization"].decode()
    return [n.encode() for n in auth.split("SignedHeaders=")[1].split(",")[0].split(";")]


@needs_vectors
def test_suite_is_complete() -> None:
    stems = {p.stem for p in vector_files()}
    assert len(stems) >= 30
    assert {"get-vanilla", "get-space", "post-sts-header-after", "get-header-value-multiline"} <= stems


@needs_vectors
def test_suite_sreq_authz_mismatch() -> None:
    """One published ``.sreq`` carries another case's signature; its ``.authz``/``.sts`` agree.

    get-vanilla-with-session-token.sreq is signed with get-slash's signature (5fa00f...), which
    does not cover the session token its SignedHeaders names. We must reject it.
    """
    mismatched = []
    for sreq in vector_files():
        raw = parse_sreq(sreq.read_bytes())
        if dict(raw.headers)[b"authorization"] != sreq.with_suffix(".authz").read_bytes().strip():
            mismatched.append(sreq.stem)
            with pytest.raises(InvalidSignatureException):
                raw.verify()
    assert mismatched == ["get-vanilla-with-session-token"]


@needs_vectors
@vectors
def test_vector_accepted(sreq: Path) -> None:
    assert load(sreq).verify() == VerifiedCaller(KEY_ID, "us-east-1", "service")


@needs_vectors
@vectors
def test_vector_rejects_tampered_path(sreq: Path) -> None:
    raw = load(sreq)
    with pytest.raises(InvalidSignatureException):
        replace(raw, path=raw.path + b"x").verify()


@needs_vectors
@vectors
def test_vector_rejects_tampered_query(sreq: Path) -> None:
    raw = load(sreq)
    with pytest.raises(InvalidSignatureException):
        replace(raw, query=raw.query + b"&tampered=1" if raw.query else b"tampered=1").verify()


@needs_vectors
@vectors
def test_vector_rejects_tampered_body(sreq: Path) -> None:
    raw = load(sreq)
    with pytest.raises(InvalidSignatureException):
        replace(raw, body=raw.body + b"x").verify()


@needs_vectors
@vectors
def test_vector_rejects_each_tampered_signed_header(sreq: Path) -> None:
    raw = load(sreq)
    for name in signed_names(raw):
        if name == b"x-amz-date":  # one second later: same day, still within the clock skew
            tampered = raw.with_header(name, lambda v: v[:-2] + b"1Z")
        else:
            tampered = raw.with_header(name, lambda v: v + b"x")
        with pytest.raises(InvalidSignatureException):
            tampered.verify()


@needs_vectors
@vectors
def test_vector_rejects_tampered_method(sreq: Path) -> None:
    raw = load(sreq)
    with pytest.raises(InvalidSignatureException):
        replace(raw, method="PUT").verify()


@needs_vectors
@vectors
def test_vector_rejects_tampered_signature(sreq: Path) -> None:
    raw = load(sreq)

    def flip_last_hex_digit(value: bytes) -> bytes:
        return value[:-1] + (b"0" if value[-1:] != b"0" else b"1")

    with pytest.raises(InvalidSignatureException):
        raw.with_header(b"authorization", flip_last_hex_digit).verify()


@needs_vectors
def test_unsigned_header_may_change() -> None:
    """The token in post-sts-header-after was added after signing, so it is not covered."""
    raw = load(VECTORS / "post-sts-token" / "post-sts-header-after" / "post-sts-header-after.sreq")
    raw.with_header(b"x-amz-security-token", lambda v: b"other").verify()
    replace(raw, headers=[*raw.headers, (b"user-agent", b"curl")]).verify()


@needs_vectors
def test_duplicate_header_order_is_signed() -> None:
    raw = load(VECTORS / "get-header-key-duplicate" / "get-header-key-duplicate.sreq")
    dupes = [h for h in raw.headers if h[0] == b"my-header1"]
    others = [h for h in raw.headers if h[0] != b"my-header1"]
    with pytest.raises(InvalidSignatureException):
        replace(raw, headers=others + dupes[::-1]).verify()
    replace(raw, headers=others + dupes).verify()  # moving them as a block keeps their order


# --- time ----------------------------------------------------------------------------------------


@needs_vectors
def test_skew_of_exactly_five_minutes_is_accepted() -> None:
    raw = load(VECTORS / "get-vanilla" / "get-vanilla.sreq")
    raw.verify(VECTOR_TIME + timedelta(minutes=5))
    raw.verify(VECTOR_TIME - timedelta(minutes=5))


@needs_vectors
def test_stale_signature_message() -> None:
    raw = load(VECTORS / "get-vanilla" / "get-vanilla.sreq")
    with pytest.raises(InvalidSignatureException) as caught:
        raw.verify(VECTOR_TIME + timedelta(minutes=10))
    assert caught.value.message == (
        "Signature expired: 20150830T123600Z is now earlier than 20150830T124100Z (20150830T124600Z - 5 min.)"
    )


@needs_vectors
def test_future_signature_message() -> None:
    raw = load(VECTORS / "get-vanilla" / "get-vanilla.sreq")
    with pytest.raises(InvalidSignatureException) as caught:
        raw.verify(VECTOR_TIME - timedelta(minutes=5, seconds=1))
    assert caught.value.message == (
        "Signature not yet current: 20150830T123600Z is still later than 20150830T123559Z "
        "(20150830T123059Z + 5 min.)"
    )


@needs_vectors
def test_scope_date_must_match_request_date() -> None:
    raw = load(VECTORS / "get-vanilla" / "get-vanilla.sreq")
    tampered = raw.with_header(b"authorization", lambda v: v.replace(b"/20150830/", b"/20150831/"))
    with pytest.raises(InvalidSignatureException, match="Date in Credential scope does not match"):
        tampered.verify()


# --- who is calling ------------------------------------------------------------------------------


@needs_vectors
def test_unknown_access_key() -> None:
    raw = load(VECTORS / "get-vanilla" / "get-vanilla.sreq")
    tampered = raw.with_header(b"authorization", lambda v: v.replace(b"AKIDEXAMPLE", b"AKIDOTHER"))
    with pytest.raises(UnrecognizedClientException) as caught:
        tampered.verify()
    assert caught.value.message == "The security token included in the request is invalid."
    assert caught.value.status == 403


def test_missing_authentication() -> None:
    raw = Raw("GET", b"/2015-03-31/functions", b"", [(b"host", b"localhost")], b"")
    with pytest.raises(MissingAuthenticationTokenException) as caught:
        raw.verify()
    assert caught.value.message == "Missing Authentication Token"


def test_non_sigv4_authorization_names_everything_missing() -> None:
    raw = Raw("GET", b"/", b"", [(b"host", b"h"), (b"authorization", b"Bearer abc")], b"")
    with pytest.raises(IncompleteSignatureException) as caught:
        raw.verify()
    assert caught.value.message == (
        "Authorization header requires 'Credential' parameter. "
        "Authorization header requires 'Signature' parameter. "
        "Authorization header requires 'SignedHeaders' parameter. "
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        "Authorization=Bearer abc"
    )


def test_partial_authorization_names_only_what_is_missing() -> None:
    header = b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"
    raw = Raw(
        "GET",
        b"/",
        b"",
        [(b"host", b"h"), (b"x-amz-date", b"20150830T123600Z"), (b"authorization", header)],
        b"",
    )
    with pytest.raises(IncompleteSignatureException) as caught:
        raw.verify()
    assert caught.value.message == (
        "Authorization header requires 'Signature' parameter. "
        "Authorization header requires 'SignedHeaders' parameter. "
        f"Authorization={header.decode()}"
    )


@pytest.mark.parametrize(
    ("authorization", "error", "fragment"),
    [
        (b"AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request, SignedHeaders=host;"
         b"x-amz-date, Signature=00, junk",
         IncompleteSignatureException, "'junk' not a valid key=value pair"),
        (b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830, SignedHeaders=host;x-amz-date, Signature=00",
         IncompleteSignatureException, "Credential must have exactly 5 slash-delimited elements"),
        (b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws5, SignedHeaders=host, "
         b"Signature=00", InvalidSignatureException, "valid terminator: 'aws4_request', not 'aws5'"),
        (b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
         b"SignedHeaders=x-amz-date, Signature=00",
         InvalidSignatureException, "'Host' or ':authority' must be"),
    ],
)  # fmt: skip
def test_malformed_authorization(authorization: bytes, error: type[AwsError], fragment: str) -> None:
    headers = [(b"host", b"h"), (b"x-amz-date", b"20150830T123600Z"), (b"authorization", authorization)]
    with pytest.raises(error, match=fragment.replace("(", r"\(")):
        Raw("GET", b"/", b"", headers, b"").verify()


@needs_vectors
@pytest.mark.parametrize(
    "spell",
    [
        lambda c, h, s: f"AWS4-HMAC-SHA256 Credential={c},SignedHeaders={h},Signature={s}",
        lambda c, h, s: f"AWS4-HMAC-SHA256 Credential={c},   SignedHeaders={h}, Signature={s}  ",
        lambda c, h, s: f"AWS4-HMAC-SHA256 Signature={s}, Credential={c}, SignedHeaders={h}",
        lambda c, h, s: f"AWS4-HMAC-SHA256 Credential={c} SignedHeaders={h} Signature={s}",
    ],
    ids=["no-spaces", "extra-spaces", "reordered", "spaces-only"],
)
def test_authorization_spellings_all_verify(spell: Callable[[str, str, str], str]) -> None:
    """SDKs' spelling is parsed by one match; every other one AWS accepts gives the same claims."""
    raw = load(next(p for p in vector_files() if p.stem == "get-vanilla"))
    parts = dict(
        piece.strip().split("=", 1) for piece in dict(raw.headers)[b"authorization"].decode()[17:].split(",")
    )
    spelled = spell(parts["Credential"], parts["SignedHeaders"], parts["Signature"]).encode()
    assert spelled.startswith(b"AWS4-HMAC-SHA256 ")
    raw.with_header(b"authorization", lambda _: spelled).verify()
    with pytest.raises(InvalidSignatureException):
        raw.with_header(b"authorization", lambda _: spelled.replace(b"Signature=", b"Signature=0")).verify()


def test_bad_date_header() -> None:
    header = b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
    header += b"SignedHeaders=host, "
    headers = [(b"host", b"h"), (b"x-amz-date", b"yesterday"), (b"authorization", header + b"Signature=00")]
    with pytest.raises(IncompleteSignatureException, match="ISO-8601 'basic format'. Got 'yesterday'"):
        Raw("GET", b"/", b"", headers, b"").verify()


# --- botocore as the client ----------------------------------------------------------------------


def wire(request: AWSRequest | AWSPreparedRequest) -> Raw:
    """What the server receives for a request botocore prepared: the HTTP client adds ``Host``."""
    prepared = request.prepare() if isinstance(request, AWSRequest) else request
    url = urlsplit(prepared.url)
    headers = [(b"host", url.netloc.encode())]
    headers += [(k.lower().encode(), _as_bytes(v)) for k, v in prepared.headers.items()]
    body = prepared.body if isinstance(prepared.body, bytes) else (prepared.body or "").encode()
    return Raw(prepared.method, url.path.encode(), url.query.encode(), headers, body)


def _as_bytes(value: object) -> bytes:
    """A full client's prepared headers are bytes; a bare AWSRequest's are str."""
    return value if isinstance(value, bytes) else str(value).encode()


def lambda_request(
    method: str = "POST", query: str = "Qualifier=%24LATEST", body: bytes = b'{"a": 1}'
) -> AWSRequest:
    """An Invoke as botocore's serializer builds it: the ARN label percent-encoded once in the URL."""
    encoded = FUNCTION_ARN.replace(":", "%3A")
    url = f"http://localhost:9000/2015-03-31/functions/{encoded}/invocations?{query}"
    headers = {"X-Amz-Invocation-Type": "RequestResponse"}
    return AWSRequest(method=method, url=url, data=body, headers=headers)


def botocore_signed(credentials: Credentials | None = None) -> Raw:
    request = lambda_request()
    SigV4Auth(credentials or Credentials(KEY_ID, SECRET), "lambda", "us-west-2").add_auth(request)
    return wire(request)


def test_botocore_signed_lambda_request() -> None:
    raw = botocore_signed()
    assert b"arn%3Aaws%3Alambda" in raw.path
    assert raw.verify(now=None) == VerifiedCaller(KEY_ID, "us-west-2", "lambda")


def test_botocore_signed_request_with_session_token() -> None:
    raw = botocore_signed(Credentials(KEY_ID, SECRET, token="session-token"))
    raw.verify(now=None)
    with pytest.raises(InvalidSignatureException):
        raw.with_header(b"x-amz-security-token", lambda v: b"other-token").verify(now=None)


def test_botocore_double_encoding_is_required_for_encoded_paths() -> None:
    """A ``%3A`` in the path must sign as ``%253A``; decoding it to ``:`` gives another path."""
    raw = botocore_signed()
    with pytest.raises(InvalidSignatureException):
        replace(raw, path=raw.path.replace(b"%3A", b":")).verify(now=None)
    with pytest.raises(InvalidSignatureException):
        replace(raw, path=raw.path.replace(b"my-fn", b"my-fo")).verify(now=None)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: replace(r, body=b'{"a": 2}'),
        lambda r: replace(r, query=b"Qualifier=1"),
        lambda r: replace(r, method="PUT"),
        lambda r: r.with_header(b"x-amz-invocation-type", lambda v: b"Event"),
        lambda r: r.with_header(b"host", lambda v: b"evil:9000"),
    ],
    ids=["body", "query", "method", "header", "host"],
)
def test_botocore_signed_request_tampered(tamper: Callable[[Raw], Raw]) -> None:
    with pytest.raises(InvalidSignatureException):
        tamper(botocore_signed()).verify(now=None)


def test_single_encoded_path_fallback() -> None:
    """A signer that does not re-encode the path (as S3-style signers do) is accepted too."""
    request = lambda_request()
    S3SigV4Auth(Credentials(KEY_ID, SECRET), "lambda", "us-east-1").add_auth(request)
    raw = wire(request)
    assert b"%3A" in raw.path
    raw.verify(now=None)
    with pytest.raises(InvalidSignatureException):
        replace(raw, path=raw.path.replace(b"my-fn", b"my-fo")).verify(now=None)


def test_botocore_unsigned_payload_header() -> None:
    request = lambda_request()
    request.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
    SigV4Auth(Credentials(KEY_ID, SECRET), "lambda", "us-east-1").add_auth(request)
    raw = wire(request)
    replace(raw, body=b"anything").verify(now=None)  # the client chose not to sign the body


def test_botocore_query_needing_reencoding() -> None:
    request = lambda_request("GET", "Marker=a%20b%2Fc&MaxItems=5&FunctionVersion=ALL")
    SigV4Auth(Credentials(KEY_ID, SECRET), "lambda", "us-east-1").add_auth(request)
    wire(request).verify(now=None)


def test_full_botocore_client_request() -> None:
    """The request a real lambda client sends, captured just before it would go on the wire."""
    import botocore.session

    captured: list[AWSPreparedRequest] = []

    class Captured(Exception):
        pass

    def capture(request: AWSPreparedRequest, **_: object) -> None:
        captured.append(request)
        raise Captured

    session = botocore.session.get_session()
    client = session.create_client(
        "lambda", region_name="eu-west-1", endpoint_url="http://localhost:9000",
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
    )  # fmt: skip
    client.meta.events.register("before-send", capture)
    with pytest.raises(Captured):
        client.invoke(FunctionName=FUNCTION_ARN, Qualifier="$LATEST", Payload=b'{"a": 1}')
    raw = wire(captured[0])
    assert b"%3A" in raw.path
    assert raw.verify(now=None) == VerifiedCaller(KEY_ID, "eu-west-1", "lambda")


# --- presigned URLs ------------------------------------------------------------------------------


def presigned(expires: int = 60, credentials: Credentials | None = None, s3_style: bool = False) -> Raw:
    """A presigned GET; ``s3_style`` signs UNSIGNED-PAYLOAD as S3 presigners do (botocore hashes the body)."""
    request = lambda_request("GET", body=b"")
    signer = S3SigV4QueryAuth if s3_style else SigV4QueryAuth
    signer(credentials or Credentials(KEY_ID, SECRET), "lambda", "us-east-1", expires).add_auth(request)
    return wire(request)


def test_presigned_url_accepted() -> None:
    raw = presigned()
    assert b"X-Amz-Signature=" in raw.query
    assert raw.verify(now=None) == VerifiedCaller(KEY_ID, "us-east-1", "lambda")


def test_presigned_url_s3_style_unsigned_payload() -> None:
    raw = presigned(s3_style=True)
    raw.verify(now=None)
    replace(raw, body=b"anything").verify(now=None)  # UNSIGNED-PAYLOAD: the body is not covered


def test_presigned_forms_alternating_all_verify() -> None:
    """The form that verified last is tried first next time: only the order may change, so URLs of
    both forms, in any order, verify, and a body under a hashed-payload URL is still checked."""
    hashed, unsigned = presigned(), presigned(s3_style=True)
    for raw in (unsigned, unsigned, hashed, hashed, unsigned, hashed):
        assert raw.verify(now=None) == VerifiedCaller(KEY_ID, "us-east-1", "lambda")
    unsigned.verify(now=None)  # UNSIGNED-PAYLOAD is now tried first ...
    with pytest.raises(InvalidSignatureException):  # ... and a hashed URL's changed body still fails
        replace(hashed, body=b"anything").verify(now=None)


def test_presigned_url_body_is_signed_when_hashed() -> None:
    with pytest.raises(InvalidSignatureException):
        replace(presigned(), body=b"anything").verify(now=None)


def test_presigned_url_with_session_token() -> None:
    raw = presigned(credentials=Credentials(KEY_ID, SECRET, token="tok/en+="))
    assert b"X-Amz-Security-Token=" in raw.query
    raw.verify(now=None)
    with pytest.raises(InvalidSignatureException):
        replace(
            raw, query=raw.query.replace(b"X-Amz-Security-Token=tok", b"X-Amz-Security-Token=bad")
        ).verify(now=None)


def test_presigned_url_tampered() -> None:
    raw = presigned()
    with pytest.raises(InvalidSignatureException):
        replace(raw, query=raw.query.replace(b"Qualifier=%24LATEST", b"Qualifier=1")).verify(now=None)
    with pytest.raises(InvalidSignatureException):
        replace(raw, path=raw.path.replace(b"my-fn", b"my-fo")).verify(now=None)


def test_presigned_url_expiry() -> None:
    raw = presigned(expires=60)
    signed_at = datetime.strptime(_query_value(raw, b"X-Amz-Date"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    raw.verify(signed_at + timedelta(seconds=60))
    with pytest.raises(AccessDeniedException) as caught:
        raw.verify(signed_at + timedelta(seconds=61))
    assert caught.value.message == "Request has expired"
    assert caught.value.status == 403


def test_a_presigned_url_used_again_is_verified_in_full_again() -> None:
    """Its parsed query is kept for the next use; the signature, the key and the time are not."""
    raw = presigned(expires=60)
    signed_at = datetime.strptime(_query_value(raw, b"X-Amz-Date"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    raw.verify(signed_at)
    with pytest.raises(InvalidSignatureException):  # the same URL, the server's secret changed
        verify_request(raw.method, raw.path, raw.query, raw.headers, raw.body, lambda _: "other", signed_at)
    with pytest.raises(UnrecognizedClientException):
        verify_request(raw.method, raw.path, raw.query, raw.headers, raw.body, lambda _: None, signed_at)
    with pytest.raises(InvalidSignatureException):  # the same URL, another method
        replace(raw, method="DELETE").verify(signed_at)
    with pytest.raises(AccessDeniedException):
        raw.verify(signed_at + timedelta(seconds=61))
    raw.verify(signed_at)


@pytest.mark.parametrize(("expires", "fragment"), [(0, "non-negative"), (604801, "less than a week")])
def test_presigned_expires_bounds(expires: int, fragment: str) -> None:
    raw = presigned(expires)
    with pytest.raises(IncompleteSignatureException, match=fragment):
        raw.verify(now=None)


def test_presigned_url_expires_of_a_week_accepted() -> None:
    presigned(604800).verify(now=None)


def test_presigned_url_missing_parameters() -> None:
    raw = Raw("GET", b"/", b"X-Amz-Algorithm=AWS4-HMAC-SHA256", [(b"host", b"h")], b"")
    with pytest.raises(IncompleteSignatureException) as caught:
        raw.verify()
    assert "AWS query-string parameters must include 'X-Amz-Credential'." in caught.value.message
    assert "'X-Amz-Algorithm'" not in caught.value.message


def test_presigned_and_header_together_rejected() -> None:
    raw = presigned()
    raw = replace(raw, headers=[*raw.headers, (b"authorization", b"AWS4-HMAC-SHA256 Credential=x")])
    with pytest.raises(IncompleteSignatureException, match="Only one auth mechanism allowed"):
        raw.verify(now=None)


def _query_value(raw: Raw, name: bytes) -> str:
    for piece in raw.query.split(b"&"):
        key, _, value = piece.partition(b"=")
        if key == name:
            return value.decode()
    raise AssertionError(f"{name!r} not in query")


def test_query_canonicalization_shortcut_agrees_with_decode_then_encode() -> None:
    """_rfc3986 skips re-encoding values already in canonical form; every escape must agree."""
    from urllib.parse import quote_from_bytes, unquote_to_bytes

    from lambdad.http.sigv4 import _rfc3986

    values = [b"a%%%02X" % b for b in range(256)] + [b"a%%%02x" % b for b in range(256)]
    values += [b"LKIA%2F20261123%2Fus-east-1%2Flambda%2Faws4_request", b"a+b", b"%zz", b"a%2", b"%E2%82%AC"]
    for raw in values:
        assert _rfc3986(raw) == quote_from_bytes(unquote_to_bytes(raw), safe="-_.~").encode(), raw


def test_header_value_shortcut_agrees_with_trim_and_collapse() -> None:
    """_canonical_headers skips collapsing values with no whitespace run; every mix must agree."""
    import itertools

    from lambdad.http.sigv4 import _canonical_headers

    spaces = [b" ", b"  ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c", b""]
    for a, b, c in itertools.product(spaces, repeat=3):
        value = a + b"x" + b + b"y" + c
        assert _canonical_headers({b"h": [value]}, (b"h",)) == b"h:" + b" ".join(value.split()) + b"\n"
    assert _canonical_headers({b"h": [b" a ", b"b  c"]}, (b"h",)) == b"h:a,b c\n"


def test_signer_is_hmac_sha256() -> None:
    """The precomputed-pads HMAC equals the standard library's for any key and message."""
    import hmac as std_hmac
    import random

    from lambdad.http.sigv4 import _Signer

    rng = random.Random(5)
    for key_len in (0, 1, 32, 63, 64, 65, 200):
        key = rng.randbytes(key_len)
        signer = _Signer(key)
        for msg_len in (0, 1, 55, 64, 1000):
            message = rng.randbytes(msg_len)
            assert signer.hexdigest(message) == std_hmac.new(key, message, "sha256").hexdigest()
