"""Generated items through the real trigger handler, with their executions run on moto's
engine: no exception escapes, an invalid item is REJECTED naming its field and never
published, a valid one arrives byte-exact (body and attributes) at a raw subscriber.
Messages stay below 30 KB here: moto measures state size as ASCII-escaped JSON, so a
large multi-byte message that fits on AWS exceeds its limit (docs/engine-differences.md)."""

from __future__ import annotations

import uuid

import pytest
from disa_lambda.handlers import trigger
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.strategies import arbitrary_items, valid_items
from tests.fuzz.test_fuzz_items import _reason_names_a_field
from tests.handlers.conftest import FakeLambdaContext
from tests.support.events import stream_event, stream_record

pytestmark = pytest.mark.fuzz


@pytest.fixture
def deployed(core, monkeypatch):
    for name, value in core.environment().items():
        monkeypatch.setenv(name, value)
    trigger._dependencies.cache_clear()
    yield core
    trigger._dependencies.cache_clear()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.one_of(valid_items(near_limit=False), arbitrary_items(near_limit=False)))
def test_generated_items_end_rejected_or_delivered_byte_exact(deployed, item):
    key = uuid.uuid4().hex
    image = {**item, "id": {"S": key}}
    deployed.put(image)

    response = trigger.lambda_handler(stream_event(stream_record(image)), FakeLambdaContext())
    deployed.wait_for_executions()

    assert response == {"batchItemFailures": []}
    # Only the pipeline's fields: moto cannot serialize some generated attributes back.
    stored = deployed.clients["dynamodb"].get_item(
        TableName=deployed.table,
        Key={"id": {"S": key}},
        ConsistentRead=True,
        ProjectionExpression="#s, statusReason",
        ExpressionAttributeNames={"#s": "status"},
    )["Item"]
    messages = deployed.received()
    if stored["status"]["S"] == "REJECTED":
        assert _reason_names_a_field(stored["statusReason"]["S"], item)
        assert messages == []
        return
    assert stored["status"]["S"] == "SUCCESSFUL"
    [message] = messages
    assert message["Body"] == item["message"]["S"]
    sent = {n: (a["DataType"], a["StringValue"]) for n, a in message.get("MessageAttributes", {}).items()}
    for name, value in item.get("attributes", {}).get("M", {}).items():
        ((kind, raw),) = value.items()
        if kind in ("S", "N"):
            assert sent[name] == ({"S": "String", "N": "Number"}[kind], raw)
        else:
            assert sent[name][0] == "String.Array"
