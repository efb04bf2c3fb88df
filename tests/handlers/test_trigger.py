"""The trigger handler fed AWS-shaped DynamoDB stream events; executions run on moto."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from disa_lambda.handlers import trigger

from tests.support.events import load_event, stream_event, stream_record

pytestmark = pytest.mark.handlers


def item(key: str, **attributes) -> dict:
    return {"id": {"S": key}, **attributes}


def insert(core, image: dict) -> dict:
    core.put(image)
    return stream_record(image)


def test_sample_event_is_delivered_with_subject_and_attributes(deployed, context):
    event = load_event("dynamodb-stream-insert")
    deployed.put(event["Records"][0]["dynamodb"]["NewImage"])

    response = trigger.lambda_handler(event, context)
    deployed.wait_for_executions()

    assert response == {"batchItemFailures": []}
    assert deployed.status("order-1") == "SUCCESSFUL"
    [message] = deployed.received()
    assert message["Body"] == "Order 1 shipped"
    assert message["MessageAttributes"]["kind"]["StringValue"] == "shipping"
    assert message["MessageAttributes"]["priority"] == {"StringValue": "2", "DataType": "Number"}


def test_invalid_item_is_rejected_with_a_reason_and_neighbours_are_delivered(deployed, context):
    records = [
        insert(deployed, item("good-1", message={"S": "one"})),
        insert(deployed, item("bad", message={"N": "42"})),
        insert(deployed, item("good-2", message={"S": "two"})),
    ]
    response = trigger.lambda_handler(stream_event(*records), context)
    deployed.wait_for_executions()

    assert response == {"batchItemFailures": []}
    bad = deployed.item("bad")
    assert bad["status"]["S"] == "REJECTED"
    assert bad["statusReason"]["S"].startswith("message: must be a non-empty string attribute (type S)")
    assert "dueAt" not in bad
    assert [deployed.status("good-1"), deployed.status("good-2")] == ["SUCCESSFUL", "SUCCESSFUL"]
    assert sorted(m["Body"] for m in deployed.received()) == ["one", "two"]


def test_redelivered_batch_publishes_each_item_once(deployed, context):
    event = stream_event(
        insert(deployed, item("r1", message={"S": "once"})),
        insert(deployed, item("r2", message={"S": "bad"}, status={"S": "SUCCESSFUL"})),
    )
    trigger.lambda_handler(event, context)
    deployed.wait_for_executions()
    trigger.lambda_handler(event, context)  # the stream delivers the same records again
    deployed.wait_for_executions()

    assert [m["Body"] for m in deployed.received()] == ["once"]
    assert deployed.status("r1") == "SUCCESSFUL"
    assert deployed.item("r2")["statusReason"]["S"].startswith("status: is written by Disa")


def test_modify_and_remove_records_send_nothing(deployed, context):
    image = item("m1", message={"S": "changed"})
    deployed.put(image)
    event = stream_event(stream_record(image, event_name="MODIFY"), stream_record(image, event_name="REMOVE"))

    assert trigger.lambda_handler(event, context) == {"batchItemFailures": []}
    assert deployed.received() == []
    assert deployed.status("m1") is None


def test_item_deleted_before_processing_is_not_resurrected(deployed, context):
    record = stream_record(item("d1", message={"S": "gone"}))  # never written, as if deleted
    assert trigger.lambda_handler(stream_event(record), context) == {"batchItemFailures": []}
    assert deployed.item("d1") == {}
    assert deployed.received() == []


def test_fifo_item_without_group_is_rejected_naming_the_field(fifo_core, monkeypatch, context):
    for name, value in fifo_core.environment().items():
        monkeypatch.setenv(name, value)
    trigger._dependencies.cache_clear()
    records = [
        insert(fifo_core, item("f1", message={"S": "x"})),
        insert(fifo_core, item("f2", message={"S": "y"}, messageGroupId={"S": "g"})),
    ]
    trigger.lambda_handler(stream_event(*records), context)
    fifo_core.wait_for_executions()
    trigger._dependencies.cache_clear()

    assert fifo_core.item("f1")["statusReason"]["S"].startswith("messageGroupId: required because the topic is FIFO")
    assert fifo_core.status("f2") == "SUCCESSFUL"
    assert [m["Body"] for m in fifo_core.received()] == ["y"]


def test_a_record_whose_item_cannot_be_written_is_reported_alone(deployed, context):
    good = insert(deployed, item("w1", message={"S": "fine"}))
    # A key the table does not have: DynamoDB refuses the write for this record only.
    unwritable = stream_record({"sku": {"S": "7"}, "message": {"S": "x"}}, key_name="sku")

    response = trigger.lambda_handler(stream_event(good, unwritable), context)
    deployed.wait_for_executions()

    assert response == {"batchItemFailures": [{"itemIdentifier": unwritable["dynamodb"]["SequenceNumber"]}]}
    assert [m["Body"] for m in deployed.received()] == ["fine"]


def test_a_batch_none_of_whose_items_can_be_written_fails_the_invocation(deployed, context):
    records = [insert(deployed, item("t1", message={"S": "a"})), insert(deployed, item("t2", message={"S": "b"}))]
    deployed.clients["dynamodb"].delete_table(TableName=deployed.table)  # the store is gone

    # Lambda then retries and bisects the batch, and after its retry cap sends the batch's
    # description to the on-failure queue, whose alarm fires.
    with pytest.raises(BatchProcessingError):
        trigger.lambda_handler(stream_event(*records), context)
    assert deployed.received() == []


def test_failed_start_leaves_the_item_claimed_for_the_retry_job(deployed, context, monkeypatch):
    monkeypatch.setenv("STATE_MACHINE_ARN", deployed.state_machine_arn + "-missing")
    trigger._dependencies.cache_clear()
    response = trigger.lambda_handler(stream_event(insert(deployed, item("s1", message={"S": "later"}))), context)

    assert response == {"batchItemFailures": []}, "a redelivery would find the claim and start nothing"
    claimed = deployed.item("s1")
    assert claimed["status"]["S"] == "PENDING"
    assert int(claimed["dueAt"]["N"]) > 0, "its lease makes it due for the retry job"
