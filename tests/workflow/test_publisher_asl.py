"""The real ASL (state-machine/publisher.asl.json) on moto's Step Functions engine, against
moto's SNS, SQS, DynamoDB and CloudWatch. Given an item claimed as the trigger claims it,
when an execution runs, then the item's status and the subscriber's queue show the outcome."""

from __future__ import annotations

import json

import pytest
from moto.sns.exceptions import SNSException
from moto.sns.models import SNSBackend

from tests.support.core import Core

pytestmark = pytest.mark.workflow

TOKEN_A = "a" * 32
TOKEN_B = "b" * 32


class Throttled(SNSException):
    code = "Throttled"
    message = "Rate exceeded"


def claimed(core: Core, key: str, token: str = TOKEN_A, **extra) -> None:
    core.put(
        {
            "id": {"S": key},
            "message": {"S": f"body of {key}"},
            "status": {"S": "PENDING"},
            "attempt": {"N": "1"},
            "claimToken": {"S": token},
            "dueShard": {"S": "0"},
            "dueAt": {"N": "1"},
            **extra,
        }
    )


def run(core: Core, name: str, document: str) -> dict:
    sfn = core.clients["stepfunctions"]
    arn = sfn.start_execution(stateMachineArn=core.state_machine_arn, name=name, input=document)["executionArn"]
    core.wait_for_executions()
    return sfn.describe_execution(executionArn=arn)


def test_publishes_body_and_attributes_exactly_and_records_success(core):
    claimed(core, "k1")
    attributes = {
        "kind": {"DataType": "String", "StringValue": "shipping"},
        "priority": {"DataType": "Number", "StringValue": "2"},
        "tags": {"DataType": "String.Array", "StringValue": '["a","b"]'},
    }
    execution = run(
        core, "x1", core.execution_input("k1", TOKEN_A, Message='héllo ✓ "quoted"', MessageAttributes=attributes)
    )

    assert execution["status"] == "SUCCEEDED"
    item = core.item("k1")
    assert item["status"]["S"] == "SUCCESSFUL"
    assert "dueAt" not in item and "dueShard" not in item, "a delivered item must leave the due index"
    [message] = core.received()
    assert message["Body"] == 'héllo ✓ "quoted"'
    assert {k: (v["DataType"], v["StringValue"]) for k, v in message["MessageAttributes"].items()} == {
        k: (v["DataType"], v["StringValue"]) for k, v in attributes.items()
    }
    assert item["messageId"]["S"] == json.loads(core.received(core.envelope_queue_url)[0]["Body"])["MessageId"]


def test_subject_reaches_subscribers(core):
    claimed(core, "k2")
    run(core, "x2", core.execution_input("k2", TOKEN_A, Subject="Shipping update"))
    [envelope] = core.received(core.envelope_queue_url)
    assert json.loads(envelope["Body"])["Subject"] == "Shipping update"
    assert core.status("k2") == "SUCCESSFUL"


def test_fifo_topic_gets_group_and_deduplication_ids(fifo_core):
    core = fifo_core
    claimed(core, "f1")
    document = core.execution_input("f1", TOKEN_A, MessageGroupId="g1", MessageDeduplicationId="d1")
    run(core, "x3", document)
    # The same deduplication id again (a retry after an unrecorded success) is dropped by SNS.
    claimed(core, "f1", token=TOKEN_B)
    run(core, "x4", core.execution_input("f1", TOKEN_B, MessageGroupId="g1", MessageDeduplicationId="d1", Subject="s"))
    messages = core.received()
    assert [m["Body"] for m in messages] == ["body of f1"]
    assert core.status("f1") == "SUCCESSFUL"


def test_transient_sns_error_is_retried_then_delivered(core, monkeypatch):
    real_publish, failures = SNSBackend.publish, []

    def flaky_publish(self, *args, **kwargs):
        if len(failures) < 2:
            failures.append("throttled")
            raise Throttled()
        return real_publish(self, *args, **kwargs)

    monkeypatch.setattr(SNSBackend, "publish", flaky_publish)
    claimed(core, "k3")
    execution = run(core, "x5", core.execution_input("k3", TOKEN_A))

    assert execution["status"] == "SUCCEEDED"
    assert failures == ["throttled", "throttled"]
    history = core.clients["stepfunctions"].get_execution_history(executionArn=execution["executionArn"])["events"]
    assert sum(e["type"] == "TaskFailed" for e in history) == 2
    assert core.status("k3") == "SUCCESSFUL"
    assert len(core.received()) == 1
    assert core.metric_sum("PublishFailed") == 0


def test_permanent_sns_error_records_failed_with_cause_and_due_time(core):
    claimed(core, "k4")
    core.clients["sns"].delete_topic(TopicArn=core.topic_arn)
    execution = run(core, "x6", core.execution_input("k4", TOKEN_A))

    assert execution["status"] == "FAILED"
    assert execution["error"] == "Disa.PublishFailed"
    item = core.item("k4")
    assert item["status"]["S"] == "FAILED"
    assert item["lastError"]["S"] == "SNS.NotFoundException"
    assert "does not exist" in item["lastCause"]["S"]
    assert item["statusReason"]["S"] == "attempt 1 failed: SNS.NotFoundException"
    assert item["dueAt"]["N"] == "1700000000" and item["dueShard"]["S"] == "0", "FAILED stays in the due index"
    assert core.metric_sum("PublishFailed") == 1


def test_failure_on_last_attempt_abandons_and_leaves_the_due_index(core):
    claimed(core, "k5")
    core.clients["sns"].delete_topic(TopicArn=core.topic_arn)
    run(core, "x7", core.execution_input("k5", TOKEN_A, attempt=3, abandon=True))

    item = core.item("k5")
    assert item["status"]["S"] == "ABANDONED"
    assert "dueAt" not in item and "dueShard" not in item
    assert item["statusReason"]["S"] == "gave up after 3 attempts; last error: SNS.NotFoundException"
    assert core.metric_sum("ItemsAbandoned") == 1 and core.metric_sum("PublishFailed") == 1


def test_duplicate_start_of_one_claim_publishes_once(core):
    from disa_lambda.dal.workflow import Workflow

    claimed(core, "k6")
    workflow = Workflow(core.state_machine_arn, core.clients["stepfunctions"])
    document = json.loads(core.execution_input("k6", TOKEN_A))
    first = workflow.start("same-name", document)
    core.wait_for_executions()
    second = workflow.start("same-name", document)  # closed: ExecutionAlreadyExists, counted as started
    core.wait_for_executions()

    assert first == second
    assert len(core.received()) == 1


def test_late_execution_cannot_overwrite_successful(core):
    claimed(core, "k7")
    run(core, "x8", core.execution_input("k7", TOKEN_A))
    assert core.status("k7") == "SUCCESSFUL"
    before = core.item("k7")

    core.clients["sns"].delete_topic(TopicArn=core.topic_arn)  # the late one fails to publish
    late = run(core, "x9", core.execution_input("k7", TOKEN_A))

    assert late["status"] == "SUCCEEDED", "a superseded execution ends quietly"
    assert core.item("k7") == before


def test_execution_of_an_older_claim_cannot_touch_a_newer_one(core):
    claimed(core, "k8", token=TOKEN_B)  # the retry job re-claimed it
    run(core, "x10", core.execution_input("k8", TOKEN_A))
    item = core.item("k8")
    assert item["status"]["S"] == "PENDING" and item["claimToken"]["S"] == TOKEN_B


def test_execution_for_a_deleted_item_does_not_recreate_it(core):
    run(core, "x11", core.execution_input("gone", TOKEN_A))
    assert core.item("gone") == {}
