"""What the request path remembers between requests changes no answer: route matches, inputs
that passed validation, and request ids that are still random version-4 UUIDs."""

from __future__ import annotations

import uuid

import pytest

from lambdad.http import awsmodel
from lambdad.http.app import new_request_id
from lambdad.http.errors import ValidationException

OPERATIONS = awsmodel.build_operations(awsmodel.load_model("lambda"))
INVOKE = OPERATIONS["Invoke"]


def test_request_ids_are_random_version_4_uuids() -> None:
    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:2_000]:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
    assert {text[19] for text in ids} == set("89ab")  # every variant digit occurs


def test_remembered_route_matches_keep_each_paths_labels() -> None:
    router = awsmodel.RestRouter(OPERATIONS)
    for _ in range(3):
        for name in ("alpha", "beta", "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Agamma"):
            found = router.match("POST", f"/2015-03-31/functions/{name}/invocations", {})
            assert found is not None
            op, labels = found
            assert op.name == "Invoke"
            assert labels == {"FunctionName": name.replace("%3A", ":")}
            labels["FunctionName"] = "changed by a caller"  # must not leak into the next match


def test_routes_decided_by_the_query_are_not_remembered() -> None:
    router = awsmodel.RestRouter(OPERATIONS)
    path = "/2019-09-30/functions/fn/provisioned-concurrency"
    for _ in range(2):
        listed = router.match("GET", path, {"List": ["ALL"]})
        single = router.match("GET", path, {"Qualifier": ["1"]})
        assert listed is not None and listed[0].name == "ListProvisionedConcurrencyConfigs"
        assert single is not None and single[0].name == "GetProvisionedConcurrencyConfig"


@pytest.mark.parametrize(
    "bad",
    [
        {"FunctionName": "fn", "InvocationType": "Sometimes"},
        {"FunctionName": "fn", "LogType": "All"},
        {"FunctionName": "fn", "Qualifier": "not a qualifier!"},
    ],
)
def test_invalid_inputs_are_refused_after_valid_ones(bad: dict[str, str]) -> None:
    good = {"FunctionName": "fn", "InvocationType": "Event", "LogType": "Tail", "Qualifier": "1"}
    for _ in range(2):
        awsmodel.validate(INVOKE, {**good, "Payload": b"{}"})
        with pytest.raises(ValidationException):
            awsmodel.validate(INVOKE, {**bad, "Payload": b"{}"})
