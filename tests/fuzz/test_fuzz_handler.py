"""Generated items through the real trigger handler, with their executions run on moto's
engine: no exception escapes, an invalid item is REJECTED naming its field and never
published (or refused by DynamoDB's own put when it sets an index key of the pipeline's
wrongly), a valid one arrives byte-exact (body and attributes) at a raw subscriber.
Messages stay below 30 KB here: moto measures state size as ASCII-escaped JSON, so a
large multi-byte message that fits on AWS exceeds its limit (docs/engine-differences.md)."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from botocore.exceptions import ClientError
from disa_lambda.handlers import trigger
from disa_lambda.models import message as message_attributes
from disa_lambda.models.status import Field, Status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.events import stream_event, stream_record
from tests.support.fuzzing import arbitrary_items, reason_names_a_field, valid_items
from tests.support.lambda_context import FakeLambdaContext

pytestmark = pytest.mark.fuzz


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.one_of(valid_items(near_limit=False), arbitrary_items(near_limit=False)))
def test_generated_items_end_rejected_or_delivered_byte_exact(moto_stack, item):
    key = uuid.uuid4().hex
    image = {**item, "id": {"S": key}}
    try:
        moto_stack.put(image)
    except ClientError as refused:
        # An index key of the pipeline's (dueShard, dueAt, abandonedAt) of the wrong type or
        # empty: DynamoDB refuses the put itself, naming it, and nothing enters the stream.
        keys = sorted({Field.DUE_SHARD, Field.DUE_AT, Field.ABANDONED_AT} & set(item))
        assert keys and refused.response["Error"]["Code"] == "ValidationException", refused
        return

    response = trigger.lambda_handler(stream_event(stream_record(image)), FakeLambdaContext())
    moto_stack.wait_for_executions()

    assert response == {"batchItemFailures": []}
    # Only the pipeline's fields: moto cannot serialize some generated attributes back.
    stored = moto_stack.clients["dynamodb"].get_item(
        TableName=moto_stack.table,
        Key={"id": {"S": key}},
        ConsistentRead=True,
        ProjectionExpression=f"#s, {Field.STATUS_REASON}",
        ExpressionAttributeNames={"#s": Field.STATUS},
    )["Item"]
    messages = moto_stack.received_messages()
    if Status.of(stored) is Status.REJECTED:
        assert reason_names_a_field(stored[Field.STATUS_REASON]["S"], item)
        assert messages == []
        return
    assert Status.of(stored) is Status.SUCCESSFUL
    [message] = messages
    assert message["Body"] == item["message"]["S"]
    sent = {n: (a["DataType"], a["StringValue"]) for n, a in message.get("MessageAttributes", {}).items()}
    expected = {}
    for name, value in item.get("attributes", {}).get("M", {}).items():
        ((kind, raw),) = value.items()
        if kind in ("S", "N"):
            expected[name] = ({"S": "String", "N": "Number"}[kind], raw)
        else:
            expected[name] = ("String.Array", sorted(raw) if kind == "SS" else sorted(map(Decimal, raw)))
    decoded = {n: (t, json.loads(v, parse_int=Decimal) if t == "String.Array" else v) for n, (t, v) in sent.items()}
    own = {name: decoded.pop(name) for name in (message_attributes.INSERT_ID, message_attributes.ACCEPTED_AT)}
    assert decoded == expected
    assert own[message_attributes.INSERT_ID][0] == "String" and own[message_attributes.ACCEPTED_AT][0] == "Number"
