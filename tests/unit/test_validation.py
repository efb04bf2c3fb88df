"""The item contract: what passes, and the reason a person reads when it does not."""

from __future__ import annotations

import pytest
from disa_lambda import contracts
from disa_lambda.logic.validation import find_problem, pipeline_owned_fields
from disa_lambda.models.status import Field
from jsonschema import Draft7Validator

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "body",
    [
        {"message": {"S": "hello"}},
        {"message": {"S": "x" * 200_000}},
        {"message": {"S": "ünïcødé ✓ 🎉"}, "subject": {"S": "Order shipped!"}},
        {
            "message": {"S": "m"},
            "attributes": {
                "M": {
                    "kind": {"S": "a"},
                    "n": {"N": "-1000000000"},
                    "d": {"N": "3.14159"},
                    "tags": {"SS": ["a", "b"]},
                    "nums": {"NS": ["1", "2"]},
                    "a.b-c_d": {"S": "x"},
                }
            },
        },
        {"message": {"S": "m"}, "messageGroupId": {"S": "group-1"}, "deduplicationId": {"S": "d!1"}},
    ],
)
def test_valid_items_have_no_problem(body):
    assert find_problem(body) is None


@pytest.mark.parametrize(
    ("body", "starts_with"),
    [
        ({}, "message: missing"),
        ({"subject": {"S": "s"}}, "message: missing"),
        ({"message": {"N": "1"}}, "message: must be a non-empty string"),
        ({"message": {"S": ""}}, "message: must be a non-empty string"),
        ({"message": {"L": []}}, "message: must be a non-empty string"),
        ({"message": {"S": "m"}, "mesage": {"S": "typo"}}, "mesage: not an attribute Disa knows"),
        ({"message": {"S": "m"}, "subject": {"S": "two\nlines"}}, "subject: must be a string attribute"),
        ({"message": {"S": "m"}, "subject": {"S": "x" * 100}}, "subject: must be a string attribute"),
        ({"message": {"S": "m"}, "subject": {"S": " leading space"}}, "subject:"),
        ({"message": {"S": "m"}, "attributes": {"S": "not a map"}}, "attributes: must be a map attribute"),
        (
            {"message": {"S": "m"}, "attributes": {"M": {"AWS.reserved": {"S": "v"}}}},
            "attributes.AWS.reserved: message attribute names",
        ),
        (
            {"message": {"S": "m"}, "attributes": {"M": {"amazon.x": {"S": "v"}}}},
            "attributes.amazon.x: message attribute names",
        ),
        (
            {"message": {"S": "m"}, "attributes": {"M": {"a..b": {"S": "v"}}}},
            "attributes.a..b: message attribute names",
        ),
        ({"message": {"S": "m"}, "attributes": {"M": {".a": {"S": "v"}}}}, "attributes..a: message attribute names"),
        (
            {"message": {"S": "m"}, "attributes": {"M": {"flag": {"BOOL": True}}}},
            "attributes.flag: a message attribute value",
        ),
        (
            {"message": {"S": "m"}, "attributes": {"M": {"big": {"N": "1e12"}}}},
            "attributes.big: a message attribute value",
        ),
        (
            {"message": {"S": "m"}, "attributes": {"M": {"empty": {"S": ""}}}},
            "attributes.empty: a message attribute value",
        ),
        (
            {"message": {"S": "m"}, "attributes": {"M": {f"a{i}": {"S": "v"} for i in range(9)}}},
            "attributes: at most 8",
        ),
        ({"message": {"S": "m"}, "messageGroupId": {"S": ""}}, "messageGroupId: must be a string attribute"),
        ({"message": {"S": "m"}, "deduplicationId": {"S": "x" * 129}}, "deduplicationId: must be a string attribute"),
        ({"message": {"S": "m"}, "status": {"S": "SUCCESSFUL"}}, "status: is written by Disa"),
        ({"message": {"S": "m"}, "claimToken": {"S": "t"}}, "claimToken: is written by Disa"),
    ],
)
def test_invalid_items_are_explained_starting_with_the_field(body, starts_with):
    assert find_problem(body).startswith(starts_with)


def test_contract_lists_every_attribute_the_pipeline_writes():
    written = {v for k, v in vars(Field).items() if not k.startswith("_")}
    assert pipeline_owned_fields() == written


@pytest.mark.parametrize("name", contracts.names())
def test_every_contract_is_a_valid_draft7_schema(name):
    Draft7Validator.check_schema(contracts.load(name))


def test_the_execution_input_carries_the_published_message_contract():
    published = contracts.load("published-message")
    carried = contracts.load("execution-input")["properties"]["publish"]
    assert carried == {k: v for k, v in published.items() if k not in ("$schema", "$id")}
