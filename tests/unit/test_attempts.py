"""Planning an attempt: publish parameters, sizes, FIFO rules, claims, names, backoff."""

from __future__ import annotations

import random
import re

import pytest
from disa_lambda import contracts
from disa_lambda.logic import attempts
from disa_lambda.models import message
from disa_lambda.models.exceptions import ItemUnpublishable
from disa_lambda.models.status import DUE_INDEX_SHARDS
from jsonschema import Draft7Validator

from tests.support.settings import PUBLISHING

pytestmark = pytest.mark.unit
KEY = {"id": {"S": "order-1"}}
# acceptedAt of an insert and of a later re-insert of the same key
T0, T1 = "2026-11-23T10:00:00.000Z", "2026-11-23T10:05:00.250Z"


def test_attributes_map_to_sns_types_exactly():
    params = attempts.publish_parameters(
        KEY,
        {
            "message": {"S": "m"},
            "subject": {"S": "s"},
            "attributes": {
                "M": {"s": {"S": "x"}, "n": {"N": "2.5"}, "ss": {"SS": ["b", "a"]}, "ns": {"NS": ["10", "9"]}}
            },
        },
        topic_is_fifo=False,
        accepted_at=T0,
    )
    assert params == {
        "Message": "m",
        "Subject": "s",
        "MessageAttributes": {
            "s": {"DataType": "String", "StringValue": "x"},
            "n": {"DataType": "Number", "StringValue": "2.5"},
            "ss": {"DataType": "String.Array", "StringValue": '["a", "b"]'},
            "ns": {"DataType": "String.Array", "StringValue": "[9,10]"},
            "disa.insertId": params["MessageAttributes"]["disa.insertId"],
            "disa.acceptedAt": {"DataType": "Number", "StringValue": "1795428000000"},
        },
    }


def test_every_copy_of_one_insert_carries_one_insert_id_and_a_reinsert_another():
    item = {"message": {"S": "m"}}
    first = attempts.publish_parameters(KEY, item, topic_is_fifo=False, accepted_at=T0)["MessageAttributes"]
    retried = attempts.publish_parameters(KEY, item, topic_is_fifo=False, accepted_at=T0)["MessageAttributes"]
    reinserted = attempts.publish_parameters(KEY, item, topic_is_fifo=False, accepted_at=T1)["MessageAttributes"]
    other_key = attempts.publish_parameters({"id": {"S": "order-2"}}, item, False, T0)["MessageAttributes"]
    assert first[message.INSERT_ID] == retried[message.INSERT_ID]
    assert len({a[message.INSERT_ID]["StringValue"] for a in (first, reinserted, other_key)}) == 3
    assert reinserted[message.ACCEPTED_AT]["StringValue"] == "1795428300250"


def test_optional_parameters_are_absent_not_null():
    params = attempts.publish_parameters(KEY, {"message": {"S": "m"}}, topic_is_fifo=False, accepted_at=T0)
    assert set(params) == {"Message", "MessageAttributes"}


def test_fifo_requires_a_group_and_a_sequence_and_derives_a_stable_deduplication_id():
    item = {"message": {"S": "m"}, "messageGroupId": {"S": "g"}, "messageSequence": {"N": "1"}}
    first = attempts.publish_parameters(KEY, item, topic_is_fifo=True, accepted_at=T0)
    again = attempts.publish_parameters(KEY, item, topic_is_fifo=True, accepted_at=T0)
    reinserted = attempts.publish_parameters(KEY, item, topic_is_fifo=True, accepted_at=T1)
    assert first["MessageGroupId"] == "g"
    assert first["MessageDeduplicationId"] == again["MessageDeduplicationId"], "retries deduplicate"
    assert first["MessageDeduplicationId"] != reinserted["MessageDeduplicationId"], "a re-insert is a new message"
    with pytest.raises(ItemUnpublishable, match=r"^messageGroupId: required"):
        attempts.publish_parameters(KEY, {"message": {"S": "m"}}, topic_is_fifo=True, accepted_at=T0)
    with pytest.raises(ItemUnpublishable, match=r"^messageSequence: required because the topic is FIFO"):
        without_sequence = {name: value for name, value in item.items() if name != "messageSequence"}
        attempts.publish_parameters(KEY, without_sequence, topic_is_fifo=True, accepted_at=T0)
    with pytest.raises(ItemUnpublishable, match=r"^messageGroupId: only FIFO topics"):
        attempts.publish_parameters(KEY, item, topic_is_fifo=False, accepted_at=T0)
    with pytest.raises(ItemUnpublishable, match=r"^messageSequence: only FIFO topics"):
        attempts.publish_parameters(KEY, {"message": {"S": "m"}, "messageSequence": {"N": "1"}}, False, T0)


def test_attributes_too_large_for_step_functions_are_unpublishable_with_the_sizes():
    claim = attempts.plan_claim(KEY, 1, 1_700_000_000, PUBLISHING, random.Random(1))
    # The body is already a pointer here; what is left over is the attributes.
    item = {"message": {"S": "m"}, "attributes": {"M": {"big": {"S": '"' * (attempts.INPUT_LIMIT_BYTES // 2)}}}}
    params = attempts.publish_parameters(KEY, item, False, T0)
    with pytest.raises(ItemUnpublishable, match=rf"^attributes: .* limit {attempts.INPUT_LIMIT_BYTES}"):
        attempts.execution_input(KEY, claim, params)


def test_execution_input_follows_its_contract():
    claim = attempts.plan_claim(KEY, 2, 1_700_000_000, PUBLISHING, random.Random(1))
    params = attempts.publish_parameters(KEY, {"message": {"S": "m"}, "subject": {"S": "s"}}, False, T0)
    document = attempts.execution_input(KEY, claim, params)
    Draft7Validator(contracts.load("execution-input")).validate(document)
    assert document["attempt"] == 2 and document["claimToken"] == claim.token


def test_claims_are_unique_and_name_valid_executions():
    rng = random.Random(7)
    claims = [attempts.plan_claim(KEY, 1, 1_700_000_000, PUBLISHING, rng) for _ in range(100)]
    names = {attempts.execution_name(KEY, c) for c in claims}
    assert len(names) == 100
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,80}", n) for n in names)
    assert {c.shard for c in claims} == {claims[0].shard}, "an item's shard depends only on its key"
    assert 0 <= int(claims[0].shard) < DUE_INDEX_SHARDS


def test_last_attempt_is_marked_to_abandon_on_failure():
    rng = random.Random(3)
    assert not attempts.plan_claim(KEY, 3, 0, PUBLISHING, rng).abandon_on_failure
    assert attempts.plan_claim(KEY, 4, 0, PUBLISHING, rng).abandon_on_failure


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap():
    rng = random.Random(11)
    for attempt, (low, high) in {1: (30, 60), 2: (60, 120), 3: (120, 240), 4: (240, 480), 9: (300, 600)}.items():
        delays = {attempts.retry_delay_seconds(attempt, PUBLISHING, rng) for _ in range(200)}
        assert low <= min(delays) and max(delays) <= high
        assert len(delays) > 10, "jitter spreads items that failed together"


def test_key_digest_ignores_attribute_order():
    a = {"pk": {"S": "1"}, "sk": {"N": "2"}}
    b = {"sk": {"N": "2"}, "pk": {"S": "1"}}
    assert attempts.key_digest(a) == attempts.key_digest(b)


# Disa's own attributes, which every published message must carry
OWN = attempts.publish_parameters(KEY, {"message": {"S": "m"}}, False, accepted_at=T0)["MessageAttributes"]


@pytest.mark.parametrize(
    ("publish", "reason"),
    [
        ({"Message": "", "MessageAttributes": OWN}, "message: cannot be published as it is"),
        (
            {"Message": "m", "MessageAttributes": {**OWN, "a": {"DataType": "Binary", "StringValue": "x"}}},
            "attributes: cannot be published as it is",
        ),
        ({"Message": "m", "MessageAttributes": {}}, "attributes: cannot be published as it is"),
        (
            {"Message": "m", "MessageAttributes": OWN, "MessageGroupId": "", "MessageDeduplicationId": "d"},
            "messageGroupId: cannot be published",
        ),
    ],
)
def test_an_execution_input_outside_its_contract_is_refused_as_unpublishable(publish, reason):
    claim = attempts.plan_claim(KEY, 1, 1_700_000_000, PUBLISHING, random.Random(1))
    with pytest.raises(ItemUnpublishable, match=f"^{reason}"):
        attempts.execution_input(KEY, claim, publish)
