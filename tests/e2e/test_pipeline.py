"""Disa's real stacks on the local cloud, end to end. Tests run in file order: the outage
and attempt-cap tests share the deployed stack's alarms, and the last ones destroy the
stack and stop the engine."""

from __future__ import annotations

import json
import re
import time

import pytest

from disa import faults, items, packaging, stacks
from tests.e2e.conftest import PARAMETERS, STACK, quiet

pytestmark = pytest.mark.e2e


def test_deploy_creates_every_nested_stack_and_wires_their_outputs(deployed):
    cfn = deployed.clients("cloudformation")
    nested = [
        r
        for r in cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
        if r["ResourceType"] == "AWS::CloudFormation::Stack"
    ]
    assert sorted(r["LogicalResourceId"] for r in nested) == [
        "Alarms",
        "Encryption",
        "Functions",
        "Roles",
        "Storage",
        "Topics",
        "Workflow",
    ]
    assert all(r["ResourceStatus"] == "CREATE_COMPLETE" for r in nested)
    assert deployed.info.table == f"{STACK}-items"


def test_valid_item_is_delivered_and_recorded_successful(deployed):
    deployed.put("v1", message={"S": "hello from the local cloud ✓"}, subject={"S": "Greeting"})
    item = deployed.wait_status("v1", "SUCCESSFUL")

    assert item["status"]["S"] == "SUCCESSFUL"
    assert item["attempt"]["N"] == "1" and "dueAt" not in item
    [message] = deployed.drain()
    assert message["Body"] == "hello from the local cloud ✓"
    # Raw delivery gives the SQS copy its own MessageId; the item records SNS's.
    assert re.fullmatch(r"[0-9a-f-]{36}", item["messageId"]["S"])


def test_invalid_item_is_rejected_with_a_reason_and_neighbours_are_delivered(deployed):
    batch = [
        {"PutRequest": {"Item": {"id": {"S": key}, **body}}}
        for key, body in [
            ("n1", {"message": {"S": "neighbour one"}}),
            ("bad", {"message": {"S": "x"}, "subject": {"S": "line\nbreak"}}),
            ("n2", {"message": {"S": "neighbour two"}}),
        ]
    ]
    deployed.clients("dynamodb").batch_write_item(RequestItems={deployed.info.table: batch})

    bad = deployed.wait_status("bad", "REJECTED")
    assert bad["statusReason"]["S"].startswith("subject: must be a string attribute (type S) of 1 to 99 printable")
    assert deployed.wait_status("n1", "SUCCESSFUL")["status"]["S"] == "SUCCESSFUL"
    assert deployed.wait_status("n2", "SUCCESSFUL")["status"]["S"] == "SUCCESSFUL"
    assert sorted(m["Body"] for m in deployed.drain()) == ["neighbour one", "neighbour two"]


def test_modify_and_remove_send_nothing(deployed):
    deployed.put("m1", message={"S": "first version"})
    deployed.wait_status("m1", "SUCCESSFUL")
    assert [m["Body"] for m in deployed.drain()] == ["first version"]
    ddb = deployed.clients("dynamodb")
    ddb.update_item(
        TableName=deployed.info.table,
        Key={"id": {"S": "m1"}},
        UpdateExpression="SET message = :m",
        ExpressionAttributeValues={":m": {"S": "second version"}},
    )
    ddb.delete_item(TableName=deployed.info.table, Key={"id": {"S": "m1"}})

    assert deployed.drain(wait=4) == []


def test_attempt_cap_abandons_the_item_and_raises_its_alarm(deployed, tmp_path):
    abandoned_alarm = deployed.info.alarms[1]
    faults.sns_outage(deployed.clients, deployed.info, True, tmp_path)
    try:
        deployed.put("cap", message={"S": "never deliverable"})
        assert deployed.wait_status("cap", "FAILED")["attempt"]["N"] == "1"
        time.sleep(2.5)  # RetryMaxDelaySeconds is 2 in this stack: the failure is due
        report = items.run_retry(deployed.clients, deployed.info)
        assert report["started"] >= 1
        item = deployed.wait_status("cap", "ABANDONED")
    finally:
        faults.sns_outage(deployed.clients, deployed.info, False, tmp_path)

    assert item["status"]["S"] == "ABANDONED" and item["attempt"]["N"] == "2"
    assert item["statusReason"]["S"] == "gave up after 2 attempts; last error: SNS.PublishFailed"
    assert "dueAt" not in item
    assert deployed.wait_alarm(abandoned_alarm, "ALARM", 30) == "ALARM"
    notifications = [json.loads(m["Body"]) for m in deployed.drain(deployed.alarm_queue_url)]
    assert {"AlarmName": abandoned_alarm, "NewStateValue": "ALARM"}.items() <= {
        k: v for n in notifications if n.get("AlarmName") == abandoned_alarm for k, v in n.items()
    }.items()


def test_outage_fails_items_alarms_then_retry_delivers_and_the_schedule_clears_the_alarm(deployed, tmp_path):
    failures_alarm = deployed.info.alarms[0]
    print(faults.sns_outage(deployed.clients, deployed.info, True, tmp_path))
    keys = [f"o{n}" for n in range(3)]
    for key in keys:
        deployed.put(key, message={"S": f"during the outage {key}"})
    failed = [deployed.wait_status(key, "FAILED") for key in keys]
    assert [i["status"]["S"] for i in failed] == ["FAILED"] * 3
    # ministack names every refused publish SNS.PublishFailed (AWS: the SNS error code).
    assert failed[0]["lastError"]["S"] == "SNS.PublishFailed"
    assert "does not exist" in failed[0]["lastCause"]["S"]
    assert deployed.wait_alarm(failures_alarm, "ALARM", 30) == "ALARM"

    print(faults.sns_outage(deployed.clients, deployed.info, False, tmp_path))
    time.sleep(2.5)
    report = items.run_retry(deployed.clients, deployed.info)
    assert report["started"] == 3
    recovered = [deployed.wait_status(key, "SUCCESSFUL") for key in keys]
    assert [(i["status"]["S"], i["attempt"]["N"]) for i in recovered] == [("SUCCESSFUL", "2")] * 3
    assert sorted(m["Body"] for m in deployed.drain()) == sorted(f"during the outage {k}" for k in keys)

    # No nudge from the test: the scheduled retry job's zero datum (rate 1 minute) is what
    # brings the alarm back once a period passes without failures.
    assert deployed.wait_alarm(failures_alarm, "OK", 180) == "OK"


def test_redeploy_without_changes_succeeds_and_says_so(deployed):
    packaged = packaging.package(deployed.clients, "disa-e2e-artifacts", log=quiet)
    assert packaged == deployed.packaged, "unchanged content keeps its keys"
    assert stacks.deploy(deployed.clients, STACK, packaged, PARAMETERS, log=quiet) is False


def test_destroy_removes_the_root_and_nested_stacks(deployed):
    cfn = deployed.clients("cloudformation")
    nested_ids = [
        r["PhysicalResourceId"]
        for r in cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
        if r["ResourceType"] == "AWS::CloudFormation::Stack"
    ]
    stacks.destroy(deployed.clients, STACK, log=quiet)

    assert stacks.stack_status(deployed.clients, STACK) is None
    for nested in nested_ids:
        assert stacks.stack_status(deployed.clients, nested) in (None, "DELETE_COMPLETE")


def test_difference_stack_delete_ignores_deletion_policy_retain(deployed):
    # On AWS the table (DeletionPolicy: Retain) outlives the stack; ministack 1.5.33 deletes
    # it. Disa relies on neither locally. When this fails, ministack keeps retained tables.
    tables = deployed.clients("dynamodb").list_tables()["TableNames"]
    assert deployed.info.table not in tables


def test_local_down_leaves_no_engine_or_lambda_worker_process(local_cloud):
    group = local_cloud.processes()
    assert len(group) >= 1
    assert local_cloud.down() is True

    time.sleep(0.5)
    survivors = [pid for pid in group if _running(pid)]
    assert survivors == []
    assert not local_cloud.healthy()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "zombie" not in status.read().lower()
    except OSError:
        return False
