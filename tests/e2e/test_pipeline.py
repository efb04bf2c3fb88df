"""Disa's real stacks on the local cloud, end to end. Tests run in file order: the outage
test needs the publish-failures alarm not yet raised, which the attempt-cap test raises."""

from __future__ import annotations

import json
import re
import time

import pytest
from disa_lambda.models.status import Field, Status

from disa.common.aws_helpers import received_messages, subscribe_queue, wait_until, write_items
from disa.deploy import packaging, stacks
from disa.drills.faults import TopicRemovalOutage
from disa.operate import abandoned
from disa.operate.retry_job import run_retry
from tests.e2e.conftest import ARTIFACT_BUCKET, CHANGED_DESCRIPTION, PARAMETERS, STACK, quiet
from tests.support.item_limit import full_item
from tests.support.streams import stream_sequence_number

pytestmark = pytest.mark.e2e


@pytest.fixture
def outage(local_stack, tmp_path) -> TopicRemovalOutage:
    """An SNS outage switch for the stack's topic; the topic is restored after the test."""
    switch = TopicRemovalOutage(local_stack.clients("sns"), local_stack.info.topic_arn, tmp_path)
    yield switch
    switch.off()


def test_deploy_creates_every_nested_stack_and_wires_their_outputs(local_stack):
    cfn = local_stack.clients("cloudformation")
    nested = [
        r
        for r in cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
        if r["ResourceType"] == "AWS::CloudFormation::Stack"
    ]
    assert sorted(r["LogicalResourceId"] for r in nested) == [
        "Alarms",
        "Dashboard",
        "Encryption",
        "Functions",
        "Payloads",
        "Roles",
        "Storage",
        "Topics",
        "Workflow",
    ]
    assert all(r["ResourceStatus"] == "CREATE_COMPLETE" for r in nested)
    # The dashboard is deployed with its body, and charts every alarm the stack lists.
    body = json.loads(
        local_stack.clients("cloudwatch").get_dashboard(DashboardName=local_stack.info.dashboard)["DashboardBody"]
    )
    [alarm_widget] = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert sorted(a.rsplit(":", 1)[-1] for a in alarm_widget["properties"]["alarms"]) == sorted(
        local_stack.info.alarm_names
    )
    assert len(local_stack.info.alarm_names) == 9
    assert local_stack.info.table == f"{STACK}-items"


def test_valid_item_is_delivered_and_recorded_successful(local_stack):
    local_stack.put("v1", message={"S": "hello from the local cloud ✓"}, subject={"S": "Greeting"})
    item = local_stack.wait_status("v1", Status.SUCCESSFUL)

    assert Status.of(item) is Status.SUCCESSFUL
    assert item[Field.ATTEMPT]["N"] == "1" and Field.DUE_AT not in item
    [message] = local_stack.received_messages()
    assert message["Body"] == "hello from the local cloud ✓"
    # Raw delivery gives the SQS copy its own MessageId; the item records SNS's.
    assert re.fullmatch(r"[0-9a-f-]{36}", item[Field.MESSAGE_ID]["S"])


def test_invalid_item_is_rejected_with_a_reason_and_neighbours_are_delivered(local_stack):
    batch = [
        {"id": {"S": "n1"}, "message": {"S": "neighbour one"}},
        {"id": {"S": "bad"}, "message": {"S": "x"}, "subject": {"S": "line\nbreak"}},
        {"id": {"S": "n2"}, "message": {"S": "neighbour two"}},
    ]
    write_items(local_stack.clients("dynamodb"), local_stack.info.table, batch)  # one write, one stream batch

    bad = local_stack.wait_status("bad", Status.REJECTED)
    assert bad[Field.STATUS_REASON]["S"].startswith("subject: must be a string attribute (type S) of 1 to 99 printable")
    assert Status.of(local_stack.wait_status("n1", Status.SUCCESSFUL)) is Status.SUCCESSFUL
    assert Status.of(local_stack.wait_status("n2", Status.SUCCESSFUL)) is Status.SUCCESSFUL
    assert sorted(m["Body"] for m in local_stack.received_messages()) == ["neighbour one", "neighbour two"]


def test_a_batch_is_cut_at_an_unwritable_record_which_reaches_the_on_failure_queue_and_the_rest_is_delivered(
    local_stack,
):
    ddb, sqs, table = local_stack.clients("dynamodb"), local_stack.clients("sqs"), local_stack.info.table
    full = full_item(ddb, {"id": {"S": "full"}})  # no status fits beside its message
    neighbours = [{"id": {"S": f"w{n}"}, "message": {"S": f"written {n}"}} for n in range(4)]
    try:
        write_items(ddb, table, [*neighbours[:2], full, *neighbours[2:]])  # one write, one stream batch

        for neighbour in neighbours:
            local_stack.wait_status(neighbour["id"]["S"], Status.SUCCESSFUL)
        assert sorted(m["Body"] for m in local_stack.received_messages()) == [f"written {n}" for n in range(4)]
        queue = local_stack.info.trigger_failure_queue_url
        [record] = wait_until(lambda: received_messages(sqs, queue, wait_seconds=1), bool, timeout=60)
        failure = json.loads(record["Body"])
        assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
        # The batch was cut at the record the trigger reported: what was given up starts there.
        stream_arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        full_record = stream_sequence_number(local_stack.clients("dynamodbstreams"), stream_arn, {"id": {"S": "full"}})
        assert failure["DDBStreamBatchInfo"]["startSequenceNumber"] == full_record
        assert Status.of(local_stack.item("full")) is None
    finally:
        ddb.delete_item(TableName=table, Key={"id": {"S": "full"}})


def test_an_attribute_filtered_subscription_receives_only_its_messages(local_stack):
    sqs, sns, topic = local_stack.clients("sqs"), local_stack.clients("sns"), local_stack.info.topic_arn
    wanted_only = subscribe_queue(sqs, sns, topic, f"{STACK}-wanted-only", filter_policy={"kind": ["wanted"]})
    queue_arn = sqs.get_queue_attributes(QueueUrl=wanted_only, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    [subscription] = [
        s["SubscriptionArn"]
        for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        if s["Endpoint"] == queue_arn
    ]
    try:
        for key, kind in (("fw", "wanted"), ("fo", "other")):
            local_stack.put(key, message={"S": f"a {kind} one"}, attributes={"M": {"kind": {"S": kind}}})
            local_stack.wait_status(key, Status.SUCCESSFUL)

        everything = local_stack.received_messages()
        assert {m["Body"]: m["MessageAttributes"]["kind"]["StringValue"] for m in everything} == {
            "a wanted one": "wanted",
            "a other one": "other",
        }
        assert [m["Body"] for m in received_messages(sqs, wanted_only, wait_seconds=2)] == ["a wanted one"]
    finally:
        sns.unsubscribe(SubscriptionArn=subscription)


def test_modify_and_remove_send_nothing(local_stack):
    local_stack.put("m1", message={"S": "first version"})
    local_stack.wait_status("m1", Status.SUCCESSFUL)
    assert [m["Body"] for m in local_stack.received_messages()] == ["first version"]
    ddb = local_stack.clients("dynamodb")
    ddb.update_item(
        TableName=local_stack.info.table,
        Key={"id": {"S": "m1"}},
        UpdateExpression="SET message = :m",
        ExpressionAttributeValues={":m": {"S": "second version"}},
    )
    ddb.delete_item(TableName=local_stack.info.table, Key={"id": {"S": "m1"}})

    assert local_stack.received_messages(wait_seconds=4) == []


def retry_until(local_stack, keys: list[str], wanted: Status, timeout: float = 90) -> list[dict]:
    """Run the retry job now and again until every item has ``wanted`` (the scheduled run,
    every minute, may get there first); returns the items as they are then."""

    def retried() -> list[dict]:
        run_retry(local_stack.clients, local_stack.info)
        return [local_stack.item(key) for key in keys]

    return wait_until(retried, lambda items: all(Status.of(i) is wanted for i in items), timeout, interval=3)


def test_outage_fails_items_alarms_then_retry_delivers_and_the_schedule_clears_the_alarm(local_stack, outage):
    failures_alarm = local_stack.info.publish_failures_alarm
    assert local_stack.alarm(failures_alarm) != "ALARM", "no publish failed before this test"
    assert outage.on().startswith("SNS outage on: topic removed")
    keys = [f"o{n}" for n in range(3)]
    for key in keys:
        local_stack.put(key, message={"S": f"during the outage {key}"})
    failed = [local_stack.wait_status(key, Status.FAILED) for key in keys]
    assert [Status.of(i) for i in failed] == [Status.FAILED] * 3
    # ministack names every refused publish SNS.PublishFailed (AWS: the SNS error code).
    assert failed[0][Field.LAST_ERROR]["S"] == "SNS.PublishFailed"
    assert "does not exist" in failed[0][Field.LAST_CAUSE]["S"]
    assert local_stack.wait_alarm(failures_alarm, "ALARM", 30) == "ALARM"

    assert outage.off().startswith("SNS outage off: topic restored")
    recovered = retry_until(local_stack, keys, Status.SUCCESSFUL)
    assert [Status.of(i) for i in recovered] == [Status.SUCCESSFUL] * 3
    assert all(int(i[Field.ATTEMPT]["N"]) >= 2 for i in recovered)
    assert sorted(m["Body"] for m in local_stack.received_messages()) == sorted(f"during the outage {k}" for k in keys)

    # No nudge from the test: once a period passes without failures the alarm returns to OK
    # on its own (the scheduled retry job's zero datum, and the engine's periodic evaluation
    # with missing data not breaching, as on AWS).
    assert local_stack.wait_alarm(failures_alarm, "OK", 180) == "OK"


def test_attempt_cap_abandons_the_item_whose_alarm_stays_until_a_person_requeues_it(local_stack, outage):
    abandoned_alarm = local_stack.info.abandoned_items_alarm
    assert local_stack.alarm(abandoned_alarm) != "ALARM", "no item was abandoned before this test"
    outage.on()
    local_stack.put("cap", message={"S": "deliverable once a person requeues it"})
    assert local_stack.wait_status("cap", Status.FAILED)[Field.ATTEMPT]["N"] == "1"
    [item] = retry_until(local_stack, ["cap"], Status.ABANDONED)

    assert Status.of(item) is Status.ABANDONED and item[Field.ATTEMPT]["N"] == PARAMETERS["MaxAttempts"]
    assert item[Field.STATUS_REASON]["S"] == "gave up after 3 attempts; last error: SNS.PublishFailed"
    assert Field.DUE_AT not in item and Field.ABANDONED_AT in item
    # The retry job's next runs (scheduled, every minute) read the waiting item: ALARM.
    assert local_stack.wait_alarm(abandoned_alarm, "ALARM", 150) == "ALARM"
    notifications = [json.loads(m["Body"]) for m in local_stack.received_messages(local_stack.alarm_queue_url)]
    assert any(n.get("AlarmName") == abandoned_alarm and n.get("NewStateValue") == "ALARM" for n in notifications), (
        notifications
    )
    # A period later, with nobody acting, it is still in ALARM (a count would be back to OK).
    run_retry(local_stack.clients, local_stack.info)
    time.sleep(70)
    assert local_stack.alarm(abandoned_alarm) == "ALARM"
    assert [row["key"] for row in abandoned.rows(local_stack.clients, local_stack.info, 10)] == ["cap"]

    outage.off()
    abandoned.requeue(local_stack.clients, local_stack.info, {"id": {"S": "cap"}})
    [item] = retry_until(local_stack, ["cap"], Status.SUCCESSFUL)
    assert item[Field.ATTEMPT]["N"] == "1"
    run_retry(local_stack.clients, local_stack.info)
    assert local_stack.wait_alarm(abandoned_alarm, "OK", 150) == "OK"


def test_redeploy_without_changes_succeeds_and_says_so(local_stack):
    packaged = packaging.package(local_stack.clients, ARTIFACT_BUCKET, log=quiet)
    assert packaged == local_stack.packaged, "unchanged content keeps its keys"
    assert stacks.deploy(local_stack.clients, STACK, packaged, PARAMETERS, log=quiet) is False


def test_redeploy_with_a_changed_template_updates_the_stack_in_place(second_stack):
    assert second_stack.redeployed is True
    assert second_stack.status_after_redeploy == "UPDATE_COMPLETE"
    before, after = second_stack.trigger_before, second_stack.trigger_after
    assert after["FunctionArn"] == before["FunctionArn"], "the same function, updated"
    assert (before["Timeout"], after["Timeout"]) == (300, 330)
    assert after["Description"] == CHANGED_DESCRIPTION


def test_destroy_removes_the_stacks_and_keeps_the_table_its_items_and_its_key(local_stack, second_stack):
    assert len(second_stack.nested_stack_ids) == 9
    assert stacks.stack_status(local_stack.clients, second_stack.name) is None
    for nested in second_stack.nested_stack_ids:
        assert stacks.stack_status(local_stack.clients, nested) in (None, "DELETE_COMPLETE")
    # DeletionPolicy: Retain, as `disa destroy` promises: the data outlives the stack.
    assert second_stack.kept_items == ["after-redeploy", "before-redeploy"]
    key = local_stack.clients("kms").describe_key(KeyId=second_stack.key_arn)["KeyMetadata"]
    assert key["KeyState"] == "Enabled"
