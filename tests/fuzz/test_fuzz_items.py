"""Fuzzing the item contract: thousands of generated items through the real validation and
attempt-planning code, and through the trigger handler with executions on moto."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest
from disa_lambda import contracts
from disa_lambda.logic import attempts, intake
from disa_lambda.logic.validation import find_problem
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft7Validator

from tests.fuzz.strategies import arbitrary_items, valid_items
from tests.support.settings import PUBLISHING

pytestmark = pytest.mark.fuzz
KEY = {"id": {"S": "fuzz"}}
SETTINGS = PUBLISHING
EXECUTION_INPUT = Draft7Validator(contracts.load("execution-input"))


class RecordingStore:
    """An in-memory store with the trigger's contract: claims succeed once per key."""

    def __init__(self):
        self.rejected, self.claimed = {}, {}

    def claim_new(self, key, claim, now_iso):
        return self.claimed.setdefault(json.dumps(key), claim) is claim

    def reject(self, key, reason, now_iso, inserted_token=None):
        self.rejected[json.dumps(key)] = reason
        return True


class RecordingStarter:
    def __init__(self):
        self.started = []

    def start(self, name, document):
        self.started.append((name, document))
        return name


def _reason_names_a_field(reason: str, item: dict) -> bool:
    """The reason starts with the attribute it is about: a top-level attribute of the item
    (quoted when it is not a plain name), a missing `message`, or `attributes.<name>`."""
    names = {*item, "message"}
    names |= {f"attributes.{n}" for n in item.get("attributes", {}).get("M", {})} if "attributes" in item else set()
    shown = {n for n in names} | {json.dumps(n, ensure_ascii=False) for n in names}
    shown |= (
        {
            f"attributes.{json.dumps(n, ensure_ascii=False)}"
            for n in item.get("attributes", {}).get("M", {})
            if isinstance(item.get("attributes", {}).get("M"), dict)
        }
        if isinstance(item.get("attributes"), dict)
        else set()
    )
    return any(reason.startswith(f"{name}: ") for name in shown)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(arbitrary_items())
def test_any_item_is_either_valid_or_rejected_with_a_reason_naming_its_field(item):
    problem = find_problem(item)
    if problem is None:
        try:
            params = attempts.publish_parameters(KEY, item, topic_is_fifo=False, accepted_at="t0")
        except attempts.ItemUnpublishable as unpublishable:  # valid by schema, not for this topic
            problem = str(unpublishable)
        else:
            assert params["Message"] == item["message"]["S"]
            return
    assert _reason_names_a_field(problem, item), problem


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(valid_items())
def test_valid_items_become_byte_exact_execution_inputs(item):
    assert find_problem(item) is None
    claim = attempts.plan_claim(KEY, 1, 1_700_000_000, SETTINGS, random.Random(0))
    params = attempts.publish_parameters(KEY, item, topic_is_fifo=False, accepted_at="t0")
    document = attempts.execution_input(KEY, claim, params)
    EXECUTION_INPUT.validate(document)
    round_tripped = json.loads(json.dumps(document, ensure_ascii=False))["publish"]
    assert round_tripped["Message"] == item["message"]["S"]
    assert round_tripped.get("Subject") == item.get("subject", {}).get("S")
    sent = {name: a["StringValue"] for name, a in round_tripped["MessageAttributes"].items()}
    for name, value in item.get("attributes", {}).get("M", {}).items():
        ((kind, raw),) = value.items()
        if kind in ("S", "N"):
            assert sent[name] == raw
        elif kind == "SS":
            assert json.loads(sent[name]) == sorted(raw)
        else:
            assert json.loads(sent[name], parse_int=Decimal) == sorted(Decimal(v) for v in raw)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(valid_items(fifo=True))
def test_valid_fifo_items_carry_their_group_and_a_deduplication_id(item):
    params = attempts.publish_parameters(KEY, item, topic_is_fifo=True, accepted_at="t0")
    assert params["MessageGroupId"] == item["messageGroupId"]["S"]
    assert params["MessageDeduplicationId"] == item.get("deduplicationId", {}).get(
        "S", params["MessageDeduplicationId"]
    )
    assert 1 <= len(params["MessageDeduplicationId"]) <= 128


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(arbitrary_items())
def test_intake_never_raises_and_each_item_ends_rejected_or_started_once(item):
    store, starter = RecordingStore(), RecordingStarter()
    record = {"eventName": "INSERT", "eventID": "e", "dynamodb": {"Keys": KEY, "NewImage": {**item, **KEY}}}

    first = intake.handle_insert(record, SETTINGS, store, starter, 1_700_000_000, random.Random(0))
    again = intake.handle_insert(record, SETTINGS, store, starter, 1_700_000_001, random.Random(1))  # redelivery

    if first is intake.IntakeOutcome.REJECTED:
        assert _reason_names_a_field(store.rejected[json.dumps(KEY)], item)
        assert starter.started == []
    else:
        assert first is intake.IntakeOutcome.STARTED and again is intake.IntakeOutcome.ALREADY_HANDLED
        [(_, document)] = starter.started
        assert document["publish"]["Message"] == item["message"]["S"]
