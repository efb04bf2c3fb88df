"""The ASL repeats itself where ASL leaves no choice: sns:publish rejects null parameters and
JSONPath cannot add a key only when it is present (JSONata could, but moto's engine cannot
run it), so each message shape has its own publish task; and ASL has no shared Retry or
Catch, so each status write carries its own. These tests keep the copies alike."""

from __future__ import annotations

import json
from typing import Any

import pytest
from disa_lambda import contracts

from tests.support.templates import asl_text

pytestmark = pytest.mark.templates
PUBLISH = "arn:aws:states:::sns:publish"
UPDATE_ITEM = "arn:aws:states:::dynamodb:updateItem"
PUT_METRIC_DATA = "arn:aws:states:::aws-sdk:cloudwatch:putMetricData"


def _states() -> dict[str, dict[str, Any]]:
    return json.loads(asl_text())["States"]


def _tasks(resource: str) -> dict[str, dict[str, Any]]:
    return {name: state for name, state in _states().items() if state.get("Resource") == resource}


def _without(state: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k not in keys}


def _optional_fields(task: dict[str, Any]) -> set[str]:
    """The optional published-message fields a publish task passes on."""
    required = set(contracts.load("published-message")["required"])
    bound = {key.removesuffix(".$") for key in task["Parameters"] if key != "TopicArn"}
    return bound - required


def _fifo(task: dict[str, Any]) -> bool:
    return "MessageGroupId.$" in task["Parameters"]


def test_publish_tasks_of_one_topic_type_differ_only_in_parameters_and_comment():
    tasks = _tasks(PUBLISH)
    assert len(tasks) == 4, "one task per message shape: subject or not, FIFO or not"
    for fifo in (False, True):
        shapes = [_without(task, "Parameters", "Comment") for task in tasks.values() if _fifo(task) == fifo]
        assert len(shapes) == 2
        assert all(shape == shapes[0] for shape in shapes), "Retry, Catch, timeouts and result handling alike"


def test_fifo_publish_tasks_retry_only_what_sns_surely_refused():
    """A FIFO attempt ends at the first timeout or SNS error (which SNS may have accepted), so
    its only retried errors are throttles, and the failure is classified as a whole."""
    for task in _tasks(PUBLISH).values():
        if _fifo(task):
            assert [rule["ErrorEquals"] for rule in task["Retry"]] == [
                ["SNS.ThrottledException", "SNS.KMSThrottlingException"]
            ]
            assert task["Catch"][0]["Next"] == "ClassifyFifoFailure"


def test_every_publish_task_passes_the_published_message_fields_from_the_input_unchanged():
    contract = contracts.load("published-message")
    for name, task in _tasks(PUBLISH).items():
        parameters = dict(task["Parameters"])
        assert parameters.pop("TopicArn") == "${TopicArn}", name
        assert set(contract["required"]) <= {key.removesuffix(".$") for key in parameters}, name
        for key, value in parameters.items():
            field = key.removesuffix(".$")
            assert field in contract["properties"], f"{name} passes {field}, which the contract does not know"
            assert (key, value) == (f"{field}.$", f"$.publish.{field}"), name
    # Every combination of the optional fields, the FIFO ones always together.
    fifo = set(contract["dependencies"])
    assert set(contract["properties"]) - set(contract["required"]) == {"Subject", *fifo}
    shapes = sorted(sorted(_optional_fields(task)) for task in _tasks(PUBLISH).values())
    assert shapes == sorted(sorted(subject | group) for subject in (set(), {"Subject"}) for group in (set(), fifo))


def test_the_shape_choice_sends_each_input_to_the_task_with_exactly_its_fields():
    states = _states()
    dependencies = contracts.load("published-message")["dependencies"]
    choice = states["ChooseMessageShape"]
    routes = [(rule, rule["Next"]) for rule in choice["Choices"]] + [({}, choice["Default"])]
    for rule, target in routes:
        conditions = rule.get("And", [rule] if "Variable" in rule else [])
        present = {c["Variable"].removeprefix("$.publish.") for c in conditions if c.get("IsPresent") is True}
        expected = present | {dep for field in present for dep in dependencies.get(field, [])}
        assert _optional_fields(states[target]) == expected, f"{target} for {sorted(present)}"
    assert {target for _, target in routes} == set(_tasks(PUBLISH))


def test_tasks_of_one_kind_share_one_retry_and_one_catch():
    kinds = {state["Resource"] for state in _states().values() if state["Type"] == "Task"}
    repeated = {kind for kind in kinds if len(_tasks(kind)) >= 2}
    assert {PUBLISH, UPDATE_ITEM, PUT_METRIC_DATA} <= repeated
    for kind in repeated - {PUBLISH}:  # the publish tasks: by topic type, above
        tasks = _tasks(kind)
        # A FIFO execution takes its right with short calls: its whole span is bounded
        # (tests/templates/test_contracts.py), so the retry job can take the item over soon.
        handling = [
            (task["Retry"], task["TimeoutSeconds"]) for name, task in tasks.items() if name != "TakeFifoPublishRight"
        ]
        assert all(h == handling[0] for h in handling), sorted(tasks)
        # Clearing a FIFO attempt's doubt may fail harmlessly (the next attempt only gets a
        # stricter deadline), so it goes on to the failure outcome instead of stopping.
        catches = [task["Catch"] for name, task in tasks.items() if name != "ClearAmbiguity"]
        if kind == PUT_METRIC_DATA:
            # A count that fails goes on where it would have led (its end state), unchanged.
            assert all(c[0]["Next"] == task["Next"] for c, task in zip(catches, tasks.values(), strict=True))
            catches = [[{**c[0], "Next": None}] for c in catches]
        assert all(c == catches[0] for c in catches), sorted(tasks)


def test_a_fifo_failure_in_doubt_is_due_again_at_once_and_one_refused_outright_clears_the_doubt():
    states = _states()
    classify = states["ClassifyFifoFailure"]
    refused = {rule["StringEquals"] for rule in classify["Choices"][0]["Or"]}
    assert {"SNS.NotFoundException", "SNS.AuthorizationErrorException"} <= refused
    assert not refused & {"States.Timeout", "SNS.InternalErrorException", "States.TaskFailed"}, (
        "these may have reached SNS"
    )
    assert classify["Choices"][0]["Next"] == "ClearAmbiguity"
    in_doubt = states[classify["Default"]]
    assert (in_doubt["InputPath"], in_doubt["ResultPath"]) == ("$.retryInDoubtAt", "$.onFailure.retryAt")
    assert states["ClearAmbiguity"]["Next"] == in_doubt["Next"] == "ChooseFailureOutcome"
