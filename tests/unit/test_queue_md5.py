"""SQS's message digests, checked against the values AWS's own documentation shows."""

from __future__ import annotations

from lambdad.events.queues.md5 import md5_of_attributes, md5_of_body

CITY = {"DataType": "String", "StringValue": "Any City"}
POSTAL = {"DataType": "String", "StringValue": "ABC123"}


def test_body_digest_is_hex_md5_of_utf8() -> None:
    # AWS CLI docs, send-message: "51b0a325...39163aa0".
    digest = md5_of_body("Information about the largest city in Any Region.")
    assert digest.startswith("51b0a325") and digest.endswith("39163aa0")
    assert md5_of_body("é") == "66ddcd97cfdeabb2f6fb8a999b4bc76f"  # of b"\xc3\xa9"


def test_attribute_digest_matches_aws_examples() -> None:
    # AWS CLI docs, receive-message: two string attributes, then one.
    both = md5_of_attributes({"PostalCode": POSTAL, "City": CITY})
    assert both is not None and both.startswith("9424c491") and both.endswith("26bc3ae7")
    one = md5_of_attributes({"PostalCode": POSTAL})
    assert one is not None and one.startswith("b8e89563") and one.endswith("e088e74f")


def test_attribute_digest_is_order_independent_and_typed() -> None:
    a = md5_of_attributes({"City": CITY, "PostalCode": POSTAL})
    assert a == md5_of_attributes({"PostalCode": POSTAL, "City": CITY})
    binary = md5_of_attributes({"City": {"DataType": "Binary", "BinaryValue": b"Any City"}})
    assert binary != md5_of_attributes({"City": CITY})
    number = md5_of_attributes({"n": {"DataType": "Number", "StringValue": "1"}})
    assert number != md5_of_attributes({"n": {"DataType": "String", "StringValue": "1"}})


def test_no_attributes_has_no_digest() -> None:
    assert md5_of_attributes({}) is None
