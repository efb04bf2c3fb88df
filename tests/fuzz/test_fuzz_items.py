"""Fuzzing the item contract: thousands of generated items through the real validation and
attempt-planning code, and through the trigger handler with executions on moto."""

from __future__ import annotations

import json
import random
import re
from decimal import Decimal

import pytest
from disa_lambda import contracts
from disa_lambda.logic import attempts, intake, payloads
from disa_lambda.logic.validation import find_problem
from disa_lambda.models import message, pointer
from disa_lambda.models.exceptions import ItemUnpublishable
from hypothesis import HealthCheck, assume, given, settings
from jsonschema import Draft7Validator

from tests.support.fuzzing import (
    MemoryPayloads,
    RecordingStarter,
    RecordingStore,
    arbitrary_items,
    reason_names_a_field,
    valid_items,
)
from tests.support.settings import PUBLISHING

pytestmark = pytest.mark.fuzz
KEY = {"id": {"S": "fuzz"}}
# acceptedAt of an insert and of a later re-insert of the same key
T0, T1 = "2026-11-23T10:00:00.000Z", "2026-11-23T10:05:00.250Z"
EXECUTION_INPUT = Draft7Validator(contracts.load("execution-input"))
PUBLISHED_MESSAGE = Draft7Validator(contracts.load("published-message"))


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(arbitrary_items())
def test_any_item_is_either_valid_or_rejected_with_a_reason_naming_its_field(item):
    problem = find_problem(item)
    if problem is None:
        try:
            params = attempts.publish_parameters(KEY, item, topic_is_fifo=False, accepted_at=T0)
            payloads.plan(KEY, item, params, PUBLISHING)
        except ItemUnpublishable as unpublishable:  # valid by schema, not for this topic or bucket
            problem = str(unpublishable)
        else:
            assert params.get("Message") == item.get("message", {}).get("S")
            return
    assert reason_names_a_field(problem, item), problem


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(valid_items())
def test_valid_items_become_byte_exact_execution_inputs(item):
    assert find_problem(item) is None
    claim = attempts.plan_claim(KEY, 1, 1_700_000_000, PUBLISHING, random.Random(0))
    params = attempts.publish_parameters(KEY, item, topic_is_fifo=False, accepted_at=T0)
    assume("message" in item and payloads.plan(KEY, item, params, PUBLISHING) is None)  # stored bodies: below
    document = attempts.execution_input(KEY, claim, params)
    EXECUTION_INPUT.validate(document)
    round_tripped = json.loads(json.dumps(document, ensure_ascii=False))["publish"]
    assert round_tripped["Message"] == item["message"]["S"]
    assert round_tripped.get("Subject") == item.get("subject", {}).get("S")
    sent = {name: a["StringValue"] for name, a in round_tripped["MessageAttributes"].items()}
    assert set(sent) == set(item.get("attributes", {}).get("M", {})) | {message.INSERT_ID, message.ACCEPTED_AT}
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
    params = attempts.publish_parameters(KEY, item, topic_is_fifo=True, accepted_at=T0)
    retried = attempts.publish_parameters(KEY, item, topic_is_fifo=True, accepted_at=T0)
    reinserted = attempts.publish_parameters(KEY, item, topic_is_fifo=True, accepted_at=T1)
    # An item naming an S3 object gets its Message (the pointer) once the object is stored.
    PUBLISHED_MESSAGE.validate({"Message": "pointer", **params})
    assert params["MessageGroupId"] == item["messageGroupId"]["S"]
    given = item.get("deduplicationId", {}).get("S")
    if given is not None:
        assert params["MessageDeduplicationId"] == given == reinserted["MessageDeduplicationId"]
    else:  # derived: the same on every attempt of one insert, another for a re-insert of the key
        assert re.fullmatch(r"[0-9a-f]{64}", params["MessageDeduplicationId"])
        assert retried["MessageDeduplicationId"] == params["MessageDeduplicationId"]
        assert reinserted["MessageDeduplicationId"] != params["MessageDeduplicationId"]


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(arbitrary_items())
def test_intake_never_raises_and_each_item_ends_rejected_or_started_once(item):
    store, starter = RecordingStore(), RecordingStarter()
    # The object an item names exists in an allowed bucket; elsewhere, or by any other key, it does not.
    payloads = MemoryPayloads(sources={("producer-uploads", "a"): b"stored body"})
    record = {"eventName": "INSERT", "eventID": "e", "dynamodb": {"Keys": KEY, "NewImage": {**item, **KEY}}}

    def take(now: int, seed: int) -> intake.IntakeOutcome:
        return intake.handle_insert(
            record, PUBLISHING, store, starter, payloads, now, random.Random(seed), time_left_ms=lambda: 10**6
        )

    first = take(1_700_000_000, 0)
    again = take(1_700_000_001, 1)  # redelivery

    if first is intake.IntakeOutcome.REJECTED:
        assert reason_names_a_field(store.rejected[json.dumps(KEY)], item)
        assert starter.started == []
    else:
        assert first is intake.IntakeOutcome.STARTED and again is intake.IntakeOutcome.ALREADY_HANDLED
        [(_, document)] = starter.started
        EXECUTION_INPUT.validate(document)
        published = document["publish"]
        where = pointer.parse(published["Message"], published["MessageAttributes"])
        if where is None:
            assert published["Message"] == item["message"]["S"]
        else:  # stored in S3: the pointer names the stored body, and its size is the marker
            body = payloads.objects[where.key][0]
            expected = item["message"]["S"].encode() if "message" in item else b"stored body"
            assert body == expected and published["MessageAttributes"]["ExtendedPayloadSize"]["StringValue"] == str(
                len(body)
            )
