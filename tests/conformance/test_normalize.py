"""The comparison itself: placeholders bind consistently, everything else must be equal."""

from __future__ import annotations

from tests.conformance.normalize import Bindings, compare, normalize


def test_placeholders_bind_consistently_and_injectively() -> None:
    recorded = {"A": "fn:<function-name:1>", "B": "<function-name:1>", "C": "<uuid:1>"}
    assert compare(recorded, {"A": "fn:x", "B": "x", "C": "u"}, Bindings()) is None
    assert compare(recorded, {"A": "fn:x", "B": "y", "C": "u"}, Bindings()).path == "B"
    assert compare(recorded, {"A": "fn:x", "B": "x", "C": "x"}, Bindings()).path == "C"


def test_static_values_structure_and_types_must_match() -> None:
    assert compare({"A": 1}, {"A": 2}, Bindings()).path == "A"
    assert compare({"A": "x"}, {"A": "x", "B": 1}, Bindings()).path == "B"
    assert compare({"A": [1]}, {"A": [1, 2]}, Bindings()).path == "A"
    assert compare({"A": "<code-size>"}, {"A": 12}, Bindings()) is None


def test_normalize_account_region_partition_dates() -> None:
    ours = normalize(
        {
            "FunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:f",
            "LastModified": "2024-01-01T00:00:00.000+0000",
            "ResponseMetadata": {"HTTPStatusCode": 200, "RequestId": "r", "HTTPHeaders": {"a": "b"}},
        }
    )
    assert ours == {
        "FunctionArn": "arn:<partition>:lambda:<region>:111111111111:function:f",
        "LastModified": "date",
        "ResponseMetadata": {"HTTPHeaders": {}, "HTTPStatusCode": 200},
    }
