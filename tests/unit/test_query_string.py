"""lambdad.http.app.parse_query against the standard library's parse_qs it replaces on the hot path."""

from __future__ import annotations

import random
from urllib.parse import parse_qs

from lambdad.http.app import parse_query


def test_agrees_with_parse_qs_on_edge_cases_and_random_strings() -> None:
    cases = [b"", b"a", b"a=", b"=b", b"a=1&a=2", b"&&a=1&", b"a+b=c+d", b"%41=%42", b"x=%E2%82%AC",
             b"x=%zz", b"q=%ff", b"\xe9=\xe8", b"a=b=c", b"a;b=c"]  # fmt: skip
    rng = random.Random(7)
    pieces = [b"a", b"=", b"&", b"%", b"2", b"B", b"+", b"\xc3", b" ", b"%41", b";"]
    cases += [b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(5000)]
    for raw in cases:
        assert parse_query(raw) == parse_qs(raw.decode("latin-1"), keep_blank_values=True), raw
