"""The real ASL (state-machine/publisher.asl.json) on moto's Step Functions engine, against
moto's SNS, SQS, DynamoDB and CloudWatch. Given an item inserted and claimed as the trigger
claims it, and the execution input the trigger builds, when an execution runs, then the
item's status and the subscriber's queue show the outcome."""

from __future__ import annotations

import json

import pytest
from disa_lambda import contracts
from disa_lambda.dal.workflow import Workflow
from disa_lambda.models.status import ATTENTION_INDEX_NAME, DUE_INDEX_NAME, Field, Status
from jsonschema import Draft7Validator
from moto.sns.exceptions import SNSException
from moto.sns.models import SNSBackend

from tests.support.moto_stack import MotoStack

pytestmark = pytest.mark.workflow
PUBLISHED_MESSAGE = Draft7Validator(contracts.load("published-message"))


class Throttled(SNSException):
    code = "Throttled"
    message = "Rate exceeded"


def body(key: str, **attributes) -> dict:
    return {"message": {"S": f"body of {key}"}, **attributes}


def run(stack: MotoStack, name: str, document: dict) -> dict:
    sfn = stack.clients["stepfunctions"]
    arn = sfn.start_execution(stateMachineArn=stack.state_machine_arn, name=name, input=json.dumps(document))[
        "executionArn"
    ]
    stack.wait_for_executions()
    return sfn.describe_execution(executionArn=arn)


def as_published(received: dict) -> dict:
    """A raw-delivery SQS message in the terms of the published-message contract."""
    published = {
        "Message": received["Body"],
        "MessageAttributes": {
            name: {"DataType": a["DataType"], "StringValue": a["StringValue"]}
            for name, a in received.get("MessageAttributes", {}).items()
        },
    }
    for name in ("MessageGroupId", "MessageDeduplicationId"):
        if name in received.get("Attributes", {}):
            published[name] = received["Attributes"][name]
    return published


def test_publishes_body_and_attributes_exactly_and_records_success(moto_stack):
    attributes = {"kind": {"S": "shipping"}, "priority": {"N": "2"}, "tags": {"SS": ["b", "a"]}}
    item = {"message": {"S": 'héllo ✓ "quoted"'}, "attributes": {"M": attributes}}
    _, document = moto_stack.insert_and_claim("k1", item)
    execution = run(moto_stack, "x1", document)

    assert execution["status"] == "SUCCEEDED"
    stored = moto_stack.item("k1")
    assert Status.of(stored) is Status.SUCCESSFUL
    assert Field.DUE_AT not in stored and Field.DUE_SHARD not in stored, "a delivered item must leave the due index"
    [message] = moto_stack.received_messages()
    published = as_published(message)
    PUBLISHED_MESSAGE.validate(published)
    assert published == {
        "Message": 'héllo ✓ "quoted"',
        "MessageAttributes": {
            "kind": {"DataType": "String", "StringValue": "shipping"},
            "priority": {"DataType": "Number", "StringValue": "2"},
            "tags": {"DataType": "String.Array", "StringValue": '["a", "b"]'},
            **document["publish"]["MessageAttributes"],
        },
    }
    assert set(document["publish"]["MessageAttributes"]) == {*attributes, "disa.insertId", "disa.acceptedAt"}
    envelope = json.loads(moto_stack.received_messages(moto_stack.envelope_queue_url)[0]["Body"])
    assert stored[Field.MESSAGE_ID]["S"] == envelope["MessageId"]


@pytest.mark.parametrize(
    ("moto_stack", "subject"),
    [("standard", None), ("standard", "Shipping update"), ("fifo", None), ("fifo", "Shipping update")],
    indirect=["moto_stack"],
)
def test_each_message_shape_reaches_subscribers_with_its_optional_fields(moto_stack, subject):
    """One publish task per shape (subject or not, FIFO or not): each runs here."""
    item = body("shape")
    if subject:
        item["subject"] = {"S": subject}
    if moto_stack.fifo:
        item["messageGroupId"], item["messageSequence"] = {"S": "g1"}, {"N": "1"}
    _, document = moto_stack.insert_and_claim("shape", item)
    assert run(moto_stack, "shape", document)["status"] == "SUCCEEDED"

    [message] = moto_stack.received_messages()
    published = as_published(message)
    PUBLISHED_MESSAGE.validate(published)
    assert published["Message"] == "body of shape"
    if moto_stack.fifo:
        assert published["MessageGroupId"] == "g1"
        assert published["MessageDeduplicationId"] == document["publish"]["MessageDeduplicationId"]
    else:
        assert "MessageGroupId" not in published
    [envelope] = moto_stack.received_messages(moto_stack.envelope_queue_url)
    assert json.loads(envelope["Body"]).get("Subject") == subject
    assert moto_stack.status("shape") is Status.SUCCESSFUL


@pytest.mark.parametrize("moto_stack", ["fifo"], indirect=True)
def test_fifo_retry_after_an_unrecorded_success_is_dropped_by_its_deduplication_id(moto_stack):
    item = body("f1", messageGroupId={"S": "g1"}, messageSequence={"N": "1"})
    first_claim, first = moto_stack.insert_and_claim("f1", item)
    run(moto_stack, "x3", first)
    moto_stack.clients["dynamodb"].update_item(  # as if the SUCCESSFUL write had been lost
        TableName=moto_stack.table,
        Key=moto_stack.key("f1"),
        UpdateExpression=f"SET #status = :pending REMOVE {Field.MESSAGE_ID}",
        ExpressionAttributeNames={"#status": Field.STATUS},
        ExpressionAttributeValues={":pending": {"S": Status.PENDING}},
    )
    _, second = moto_stack.reclaim("f1", item, previous=first_claim)  # the lease ran out
    run(moto_stack, "x4", second)

    assert second["publish"]["MessageDeduplicationId"] == first["publish"]["MessageDeduplicationId"]
    assert second["claimToken"] != first_claim.token
    assert [m["Body"] for m in moto_stack.received_messages()] == ["body of f1"]
    assert moto_stack.status("f1") is Status.SUCCESSFUL


def test_transient_sns_error_is_retried_then_delivered(moto_stack, monkeypatch):
    real_publish, failures = SNSBackend.publish, []

    def flaky_publish(self, *args, **kwargs):
        if len(failures) < 2:
            failures.append("throttled")
            raise Throttled()
        return real_publish(self, *args, **kwargs)

    monkeypatch.setattr(SNSBackend, "publish", flaky_publish)
    _, document = moto_stack.insert_and_claim("k3", body("k3"))
    execution = run(moto_stack, "x5", document)

    assert execution["status"] == "SUCCEEDED"
    assert failures == ["throttled", "throttled"]
    history = moto_stack.clients["stepfunctions"].get_execution_history(executionArn=execution["executionArn"])
    assert sum(e["type"] == "TaskFailed" for e in history["events"]) == 2
    assert moto_stack.status("k3") is Status.SUCCESSFUL
    assert len(moto_stack.received_messages()) == 1
    assert moto_stack.metric_sum("PublishFailed") == 0


def test_permanent_sns_error_records_failed_with_cause_and_due_time(moto_stack):
    claim, document = moto_stack.insert_and_claim("k4", body("k4"))
    moto_stack.clients["sns"].delete_topic(TopicArn=moto_stack.topic_arn)
    execution = run(moto_stack, "x6", document)

    assert execution["status"] == "FAILED"
    assert execution["error"] == "Disa.PublishFailed"
    item = moto_stack.item("k4")
    assert Status.of(item) is Status.FAILED
    assert item[Field.LAST_ERROR]["S"] == "SNS.NotFoundException"
    assert "does not exist" in item[Field.LAST_CAUSE]["S"]
    assert item[Field.STATUS_REASON]["S"] == "attempt 1 failed: SNS.NotFoundException"
    assert item[Field.DUE_AT]["N"] == str(claim.retry_at), "due for the retry job when its backoff ends"
    assert item[Field.DUE_SHARD]["S"] == claim.shard, "FAILED stays in the due index"
    assert moto_stack.metric_sum("PublishFailed") == 1


def test_failure_on_last_attempt_abandons_leaves_the_due_index_and_waits_in_the_attention_index(moto_stack):
    claim, document = moto_stack.insert_and_claim("k5", body("k5"), attempt=moto_stack.max_attempts)
    assert claim.abandon_on_failure
    moto_stack.clients["sns"].delete_topic(TopicArn=moto_stack.topic_arn)
    run(moto_stack, "x7", document)

    item = moto_stack.item("k5")
    assert Status.of(item) is Status.ABANDONED
    assert Field.DUE_AT not in item and item[Field.DUE_SHARD] == {"S": claim.shard}
    assert moto_stack.index_keys(DUE_INDEX_NAME, claim.shard) == []
    assert moto_stack.index_keys(ATTENTION_INDEX_NAME, claim.shard) == ["k5"]
    assert item[Field.ABANDONED_AT] == item[Field.UPDATED_AT]
    assert item[Field.STATUS_REASON]["S"] == "gave up after 3 attempts; last error: SNS.NotFoundException"
    assert moto_stack.metric_sum("ItemsAbandoned") == 1 and moto_stack.metric_sum("PublishFailed") == 1


def test_duplicate_start_of_one_claim_publishes_once(moto_stack):
    _, document = moto_stack.insert_and_claim("k6", body("k6"))
    workflow = Workflow(moto_stack.state_machine_arn, moto_stack.clients["stepfunctions"])
    first = workflow.start("same-name", document)
    moto_stack.wait_for_executions()
    second = workflow.start("same-name", document)  # closed: ExecutionAlreadyExists, counted as started
    moto_stack.wait_for_executions()

    assert first == second
    assert len(moto_stack.received_messages()) == 1


@pytest.mark.parametrize("together", [False, True], ids=["one-after-the-other", "at-the-same-time"])
def test_two_runs_of_one_execution_publish_once(moto_stack, together):
    """Express runs an execution at least once: a second run has the same input (and, on
    AWS, the same name; moto would refuse a reused name, so the runs are named apart)."""
    _, document = moto_stack.insert_and_claim("k6b", body("k6b"))
    sfn = moto_stack.clients["stepfunctions"]
    if together:
        for name in ("run-1", "run-2"):
            sfn.start_execution(stateMachineArn=moto_stack.state_machine_arn, name=name, input=json.dumps(document))
        runs = moto_stack.wait_for_executions()
    else:
        runs = [run(moto_stack, "run-1", document), run(moto_stack, "run-2", document)]

    assert sorted(r["status"] for r in runs) == ["SUCCEEDED", "SUCCEEDED"]
    assert [m["Body"] for m in moto_stack.received_messages()] == ["body of k6b"]
    item = moto_stack.item("k6b")
    assert Status.of(item) is Status.SUCCESSFUL and Field.PUBLISH_RIGHT not in item


def test_a_run_after_one_that_died_holding_the_right_publishes_nothing_and_the_lease_recovers(moto_stack):
    claim, document = moto_stack.insert_and_claim("k6c", body("k6c"))
    moto_stack.clients["dynamodb"].update_item(  # the first run took the right, then died
        TableName=moto_stack.table, Key={"id": {"S": "k6c"}}, UpdateExpression=f"REMOVE {Field.PUBLISH_RIGHT}"
    )
    rerun = run(moto_stack, "rerun", document)

    assert rerun["status"] == "SUCCEEDED" and moto_stack.received_messages() == []
    waiting = moto_stack.item("k6c")
    assert Status.of(waiting) is Status.PENDING and waiting[Field.CLAIM_TOKEN]["S"] == claim.token, "left to its lease"

    _, next_document = moto_stack.reclaim("k6c", body("k6c"), previous=claim)  # the lease ended
    run(moto_stack, "next-attempt", next_document)
    assert [m["Body"] for m in moto_stack.received_messages()] == ["body of k6c"]
    assert moto_stack.status("k6c") is Status.SUCCESSFUL


def test_late_execution_cannot_overwrite_successful(moto_stack):
    _, document = moto_stack.insert_and_claim("k7", body("k7"))
    run(moto_stack, "x8", document)
    assert moto_stack.status("k7") is Status.SUCCESSFUL
    before = moto_stack.item("k7")

    moto_stack.clients["sns"].delete_topic(TopicArn=moto_stack.topic_arn)  # the late one fails to publish
    late = run(moto_stack, "x9", document)

    assert late["status"] == "SUCCEEDED", "a superseded execution ends quietly"
    assert moto_stack.item("k7") == before


def test_execution_of_an_older_claim_cannot_touch_a_newer_one(moto_stack):
    older, older_document = moto_stack.insert_and_claim("k8", body("k8"))
    newer, _ = moto_stack.reclaim("k8", body("k8"), previous=older)  # the retry job re-claimed it
    run(moto_stack, "x10", older_document)

    item = moto_stack.item("k8")
    assert Status.of(item) is Status.PENDING and item[Field.CLAIM_TOKEN]["S"] == newer.token


def test_execution_for_a_deleted_item_does_not_recreate_it(moto_stack):
    _, document = moto_stack.execution_input("gone", body("gone"))
    run(moto_stack, "x11", document)
    assert moto_stack.item("gone") == {}


def test_a_write_to_the_item_that_fails_after_its_retries_is_counted_and_ends_the_execution_undecided(moto_stack):
    _, document = moto_stack.insert_and_claim("k9", body("k9"))
    # DynamoDB refuses the key outright (not the table's key schema): the publish right
    # cannot be taken, so nothing is published and the item keeps its claim until the lease.
    described = run(moto_stack, "x9", {**document, "key": {"notTheKey": {"S": "k9"}}})

    assert described["status"] == "FAILED"
    assert json.loads(described.get("output") or "null") is None
    history = moto_stack.clients["stepfunctions"].get_execution_history(executionArn=described["executionArn"])
    failed = [e for e in history["events"] if e["type"] == "ExecutionFailed"]
    assert failed[0]["executionFailedEventDetails"]["error"] == "Disa.OutcomeNotRecorded"
    assert moto_stack.metric_sum("OutcomesNotRecorded") == 1 and moto_stack.metric_sum("PublishFailed") == 0
    assert moto_stack.received_messages() == []
    assert Status.of(moto_stack.item("k9")) is Status.PENDING
