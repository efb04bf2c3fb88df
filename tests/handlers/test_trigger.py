"""The trigger handler fed AWS-shaped DynamoDB stream events; executions run on moto."""

from __future__ import annotations

import json
import time

import pytest
from disa_lambda.handlers import retry, trigger
from disa_lambda.logic.ports import TIME_RESERVE_MS
from disa_lambda.models.status import Field, Status
from moto.core.exceptions import AWSError
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from tests.support.events import load_event, stream_event, stream_record
from tests.support.item_limit import full_item

pytestmark = pytest.mark.handlers


def item(key: str, **attributes) -> dict:
    return {"id": {"S": key}, **attributes}


def insert(stack, image: dict) -> dict:
    stack.put(image)
    return stream_record(image)


def test_sample_event_is_delivered_with_subject_and_attributes(moto_stack, context):
    event = load_event("dynamodb-stream-insert")
    moto_stack.put(event["Records"][0]["dynamodb"]["NewImage"])

    response = trigger.lambda_handler(event, context)
    moto_stack.wait_for_executions()

    assert response == {"batchItemFailures": []}
    assert moto_stack.status("order-1") is Status.SUCCESSFUL
    [message] = moto_stack.received_messages()
    assert message["Body"] == "Order 1 shipped"
    assert message["MessageAttributes"]["kind"] == {"StringValue": "shipping", "DataType": "String"}
    assert message["MessageAttributes"]["priority"] == {"StringValue": "2", "DataType": "Number"}
    [envelope] = moto_stack.received_messages(moto_stack.envelope_queue_url)
    assert json.loads(envelope["Body"])["Subject"] == "Shipping update"


def test_invalid_item_is_rejected_with_a_reason_and_neighbours_are_delivered(moto_stack, context):
    records = [
        insert(moto_stack, item("good-1", message={"S": "one"})),
        insert(moto_stack, item("bad", message={"N": "42"})),
        insert(moto_stack, item("good-2", message={"S": "two"})),
    ]
    response = trigger.lambda_handler(stream_event(*records), context)
    moto_stack.wait_for_executions()

    assert response == {"batchItemFailures": []}
    bad = moto_stack.item("bad")
    assert Status.of(bad) is Status.REJECTED
    assert bad[Field.STATUS_REASON]["S"].startswith("message: must be a non-empty string attribute (type S)")
    assert Field.DUE_AT not in bad
    assert [moto_stack.status("good-1"), moto_stack.status("good-2")] == [Status.SUCCESSFUL, Status.SUCCESSFUL]
    assert sorted(m["Body"] for m in moto_stack.received_messages()) == ["one", "two"]


def test_redelivered_batch_publishes_each_item_once(moto_stack, context):
    event = stream_event(
        insert(moto_stack, item("r1", message={"S": "once"})),
        insert(moto_stack, item("r2", message={"S": "bad"}, status={"S": "SUCCESSFUL"})),
    )
    trigger.lambda_handler(event, context)
    moto_stack.wait_for_executions()
    trigger.lambda_handler(event, context)  # the stream delivers the same records again
    moto_stack.wait_for_executions()

    assert [m["Body"] for m in moto_stack.received_messages()] == ["once"]
    assert moto_stack.status("r1") is Status.SUCCESSFUL
    assert moto_stack.item("r2")[Field.STATUS_REASON]["S"].startswith("status: is written by Disa")


def test_modify_and_remove_records_send_nothing(moto_stack, context):
    image = item("m1", message={"S": "changed"})
    moto_stack.put(image)
    event = stream_event(stream_record(image, event_name="MODIFY"), stream_record(image, event_name="REMOVE"))

    assert trigger.lambda_handler(event, context) == {"batchItemFailures": []}
    assert moto_stack.wait_for_executions() == []
    assert moto_stack.received_messages() == []
    assert moto_stack.status("m1") is None


def test_item_deleted_before_processing_is_not_resurrected(moto_stack, context):
    record = stream_record(item("d1", message={"S": "gone"}))  # never written, as if deleted
    assert trigger.lambda_handler(stream_event(record), context) == {"batchItemFailures": []}
    assert moto_stack.wait_for_executions() == []
    assert moto_stack.item("d1") == {}
    assert moto_stack.received_messages() == []


@pytest.mark.parametrize("moto_stack", ["fifo"], indirect=True)
def test_fifo_item_without_group_is_rejected_naming_the_field(moto_stack, context):
    records = [
        insert(moto_stack, item("f1", message={"S": "x"})),
        insert(moto_stack, item("f2", message={"S": "y"}, messageGroupId={"S": "g"}, messageSequence={"N": "1"})),
    ]
    trigger.lambda_handler(stream_event(*records), context)
    moto_stack.wait_for_executions()

    reason = moto_stack.item("f1")[Field.STATUS_REASON]["S"]
    assert reason.startswith("messageGroupId: required because the topic is FIFO")
    assert moto_stack.status("f2") is Status.SUCCESSFUL
    [message] = moto_stack.received_messages()
    assert (message["Body"], message["Attributes"]["MessageGroupId"]) == ("y", "g")


def test_a_record_whose_item_cannot_be_written_is_reported_alone(moto_stack, context):
    good = insert(moto_stack, item("w1", message={"S": "fine"}))
    # A key the table does not have: DynamoDB refuses the write for this record only.
    unwritable = stream_record({"sku": {"S": "7"}, "message": {"S": "x"}}, key_name="sku")

    response = trigger.lambda_handler(stream_event(good, unwritable), context)
    moto_stack.wait_for_executions()

    assert response == {"batchItemFailures": [{"itemIdentifier": unwritable["dynamodb"]["SequenceNumber"]}]}
    assert [m["Body"] for m in moto_stack.received_messages()] == ["fine"]


def test_an_item_at_the_size_limit_is_reported_alone_and_neighbours_are_delivered(moto_stack, context):
    before = insert(moto_stack, item("n1", message={"S": "before"}))
    full = insert(moto_stack, full_item(moto_stack.clients["dynamodb"], {"id": {"S": "full"}}))
    after = insert(moto_stack, item("n2", message={"S": "after"}))

    response = trigger.lambda_handler(stream_event(before, full, after), context)
    moto_stack.wait_for_executions()

    assert response == {"batchItemFailures": [{"itemIdentifier": full["dynamodb"]["SequenceNumber"]}]}
    assert sorted(m["Body"] for m in moto_stack.received_messages()) == ["after", "before"]
    assert moto_stack.status("full") is None


def test_a_batch_none_of_whose_items_can_be_written_reports_every_record(moto_stack, context):
    records = [insert(moto_stack, item("t1", message={"S": "a"})), insert(moto_stack, item("t2", message={"S": "b"}))]
    moto_stack.clients["dynamodb"].delete_table(TableName=moto_stack.table)  # the store is gone

    # Lambda then retries the batch from its first record, and after its retry cap sends
    # the batch's description to the on-failure queue, whose alarm fires.
    response = trigger.lambda_handler(stream_event(*records), context)
    assert response == {"batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in records]}
    assert moto_stack.received_messages() == []


class Throttled(AWSError):
    TYPE = "ThrottlingException"
    STATUS = 400


def throttle_starts(monkeypatch, times: int) -> list[str]:
    """StartExecution refused as throttled ``times`` times, then accepted."""
    real_start, refused = StepFunctionsParserBackend.start_execution, []

    def throttled_start(self, *args, **kwargs):
        if len(refused) < times:
            refused.append("throttled")
            raise Throttled("Rate exceeded")
        return real_start(self, *args, **kwargs)

    monkeypatch.setattr(StepFunctionsParserBackend, "start_execution", throttled_start)
    return refused


def test_a_throttled_start_is_retried_inside_the_invocation(moto_stack, context, monkeypatch):
    refused = throttle_starts(monkeypatch, times=2)
    response = trigger.lambda_handler(stream_event(insert(moto_stack, item("s0", message={"S": "soon"}))), context)
    moto_stack.wait_for_executions()

    assert response == {"batchItemFailures": []}
    assert refused == ["throttled", "throttled"]
    delivered = moto_stack.item("s0")
    assert Status.of(delivered) is Status.SUCCESSFUL and delivered[Field.ATTEMPT]["N"] == "1"


def test_a_start_that_never_happened_is_not_an_attempt(moto_stack, context, monkeypatch):
    refused = throttle_starts(monkeypatch, times=4)  # every try of one invocation
    before = time.time()
    response = trigger.lambda_handler(stream_event(insert(moto_stack, item("s1", message={"S": "later"}))), context)

    assert response == {"batchItemFailures": []}, "a redelivery would find the claim and start nothing"
    assert len(refused) == 4 and moto_stack.wait_for_executions() == []
    deferred = moto_stack.item("s1")
    assert Status.of(deferred) is Status.PENDING and deferred[Field.ATTEMPT]["N"] == "0"
    assert int(before) <= int(deferred[Field.DUE_AT]["N"]) <= time.time(), "due for the retry job at once"
    assert deferred[Field.STATUS_REASON]["S"].startswith("attempt 1 not started yet")

    report = retry.lambda_handler(load_event("scheduled-event"), context)  # throttling is over
    moto_stack.wait_for_executions()

    assert report["started"] == 1
    delivered = moto_stack.item("s1")
    assert Status.of(delivered) is Status.SUCCESSFUL and delivered[Field.ATTEMPT]["N"] == "1", "attempt 1 again"
    assert [m["Body"] for m in moto_stack.received_messages()] == ["later"]


def test_records_not_begun_before_the_reserve_are_reported_for_the_next_batch(moto_stack, context):
    records = [insert(moto_stack, item(f"late{n}", message={"S": "x"})) for n in range(3)]
    context.remaining_ms = TIME_RESERVE_MS - 1

    response = trigger.lambda_handler(stream_event(*records), context)

    assert response == {"batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in records]}
    assert all(moto_stack.status(f"late{n}") is None for n in range(3)), "nothing begun, nothing claimed"
