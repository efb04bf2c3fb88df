"""Canaries for engine patch 0007 (a Step Functions Choice rule compares its Variable with
the value at another path by the Path variants of the timestamp and string operators:
TimestampGreaterThanPath, StringLessThanPath and the rest). Each fails on ministack 1.5.33 as
released, which evaluates every such rule as false: the Choice always takes its Default, even
when a path selects nothing (AWS fails the execution with States.Runtime).

They run tiny state machines of their own, not Disa's, so a failure names the engine
behaviour and not a Disa defect.
"""

from __future__ import annotations

import json
import uuid

import pytest

from disa.common.aws_helpers import wait_until

pytestmark = pytest.mark.e2e

ROLE = "arn:aws:iam::000000000000:role/canary"
RIGHT = "2026-12-01T21:40:00.123Z"
# Left values: a millisecond before RIGHT, the same instant written with another offset,
# and a millisecond after.
LESS, EQUAL, GREATER = "2026-12-01T21:40:00.122Z", "2026-12-01T22:40:00.123+01:00", "2026-12-01T21:40:00.124Z"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _run(sfn, definition: dict, execution_input: dict) -> dict:
    machine = sfn.create_state_machine(name=_unique("canary-choice"), definition=json.dumps(definition), roleArn=ROLE)
    execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input=json.dumps(execution_input))
    return wait_until(
        lambda: sfn.describe_execution(executionArn=execution["executionArn"]),
        lambda described: described["status"] != "RUNNING",
        timeout=30,
        interval=0.1,
    )


def _comparing(rule: dict) -> dict:
    """A machine whose Choice ends in "yes" when ``rule`` holds, else in "no" (its Default)."""
    return {
        "StartAt": "Compare",
        "States": {
            "Compare": {"Type": "Choice", "Choices": [{**rule, "Next": "Yes"}], "Default": "No"},
            "Yes": {"Type": "Pass", "Result": "yes", "End": True},
            "No": {"Type": "Pass", "Result": "no", "End": True},
        },
    }


def _branches(local_cloud, operator: str, pairs: list[tuple[object, object]]) -> list[str]:
    """The branch taken for each (left, right) input of ``{"Variable": "$.left", operator: "$.right"}``."""
    sfn = local_cloud.clients()("stepfunctions")
    definition = _comparing({"Variable": "$.left", operator: "$.right"})
    taken = []
    for left, right in pairs:
        described = _run(sfn, definition, {"left": left, "right": right})
        assert described["status"] == "SUCCEEDED", described
        taken.append(json.loads(described["output"]))
    return taken


@pytest.mark.parametrize(
    ("operator", "less", "equal", "greater"),
    [
        ("TimestampLessThanPath", "yes", "no", "no"),
        ("TimestampLessThanEqualsPath", "yes", "yes", "no"),
        ("TimestampEqualsPath", "no", "yes", "no"),
        ("TimestampGreaterThanEqualsPath", "no", "yes", "yes"),
        ("TimestampGreaterThanPath", "no", "no", "yes"),
    ],
)
def test_timestamp_path_operators_compare_the_two_instants(local_cloud, operator, less, equal, greater):
    pairs = [(LESS, RIGHT), (EQUAL, RIGHT), (GREATER, RIGHT)]
    assert _branches(local_cloud, operator, pairs) == [less, equal, greater]


@pytest.mark.parametrize(
    ("operator", "less", "equal", "greater"),
    [
        ("StringLessThanPath", "yes", "no", "no"),
        ("StringLessThanEqualsPath", "yes", "yes", "no"),
        ("StringGreaterThanEqualsPath", "no", "yes", "yes"),
        ("StringGreaterThanPath", "no", "no", "yes"),
    ],
)
def test_string_path_operators_compare_the_two_strings(local_cloud, operator, less, equal, greater):
    assert _branches(local_cloud, operator, [("a", "b"), ("b", "b"), ("c", "b")]) == [less, equal, greater]


def test_a_value_that_is_not_a_timestamp_makes_the_rule_false(local_cloud):
    # A timestamp as ASL defines it: RFC 3339 with an uppercase T and Z or an offset.
    not_timestamps = ["not a timestamp", 1764625200, None, "2026-12-01", "2026-12-01 21:40:00.124Z"]
    pairs = [(GREATER, RIGHT), *((value, RIGHT) for value in not_timestamps), *((GREATER, v) for v in not_timestamps)]
    assert _branches(local_cloud, "TimestampGreaterThanPath", pairs) == ["yes"] + ["no"] * 2 * len(not_timestamps)
    assert _branches(local_cloud, "StringLessThanPath", [("a", "b"), (1, "b"), ("a", None)]) == ["yes", "no", "no"]


# Disa's shape: a Pass state copies $$.State.EnteredTime into the input, a Choice then
# compares it with the item's deadline.
REPUBLISH_CHECK = {
    "StartAt": "Clock",
    "States": {
        "Clock": {
            "Type": "Pass",
            "Parameters": {"clock.$": "$$.State.EnteredTime", "republishBy.$": "$.republishBy"},
            "Next": "Due",
        },
        "Due": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.clock", "TimestampGreaterThanPath": "$.republishBy", "Next": "Late"}],
            "Default": "OnTime",
        },
        "Late": {"Type": "Pass", "Result": "late", "End": True},
        "OnTime": {"Type": "Pass", "Result": "on time", "End": True},
    },
}


def test_the_entered_time_copied_by_a_pass_state_is_compared_with_a_deadline(local_cloud):
    sfn = local_cloud.clients()("stepfunctions")
    outcomes = [
        _run(sfn, REPUBLISH_CHECK, {"republishBy": deadline})
        for deadline in ("2000-01-01T00:00:00.000Z", "2999-12-31T23:59:59.999Z")
    ]
    taken = [(outcome["status"], json.loads(outcome["output"])) for outcome in outcomes]
    assert taken == [("SUCCEEDED", "late"), ("SUCCEEDED", "on time")]


@pytest.mark.parametrize(
    ("execution_input", "invalid_path"),
    [({"right": RIGHT}, "$.left"), ({"left": GREATER}, "$.right")],
    ids=["absent-variable", "absent-compared-path"],
)
def test_a_path_that_selects_nothing_fails_the_execution_with_states_runtime(
    local_cloud, execution_input, invalid_path
):
    # As on AWS: only IsPresent may test for absence; a Choice has no Catch.
    sfn = local_cloud.clients()("stepfunctions")
    described = _run(sfn, _comparing({"Variable": "$.left", "TimestampGreaterThanPath": "$.right"}), execution_input)
    assert described["status"] == "FAILED"
    assert described["error"] == "States.Runtime"
    assert f"Invalid path '{invalid_path}'" in described["cause"]
    assert "condition path references an invalid value" in described["cause"]
