"""One small test per engine behaviour Disa relies on, or works around, so that an engine
upgrade that changes one fails here by name. docs/engine-differences.md lists each
difference from AWS and how Disa stays correct on AWS; the behaviours Disa patches into
the engine have their canaries in tests/e2e/patches/."""

from __future__ import annotations

import io
import re
import time
import zipfile

import pytest
from disa_lambda.models.status import Status

from disa.common.aws_helpers import wait_until, write_items

pytestmark = pytest.mark.e2e


def test_nested_stack_outputs_reach_the_root_through_getatt(local_stack):
    # Root outputs are Fn::GetAtt <Nested>.Outputs.X; moto cannot do this, ministack can.
    assert local_stack.info.table == "disa-e2e-items"
    assert local_stack.info.topic_arn.endswith(":disa-e2e-messages")


def test_stream_mapping_filters_inserts_and_batches_records(local_stack, local_cloud):
    log = local_cloud.log_file
    before = log.read_text(errors="replace")
    batch = [{"id": {"S": f"c{n}"}, "message": {"S": f"canary {n}"}} for n in range(5)]
    write_items(local_stack.clients("dynamodb"), local_stack.info.table, batch)
    for n in range(5):
        local_stack.wait_status(f"c{n}", Status.SUCCESSFUL)
    local_stack.received_messages()
    after_inserts = log.read_text(errors="replace")
    counts = [
        int(c)
        for c in re.findall(r"disa-e2e-trigger processed (\d+) DynamoDB stream records", after_inserts[len(before) :])
    ]
    assert sum(counts) == 5 and len(counts) < 5, f"five inserts arrive in fewer than five batches: {counts}"

    local_stack.clients("dynamodb").update_item(
        TableName=local_stack.info.table,
        Key={"id": {"S": "c0"}},
        UpdateExpression="SET note = :n",
        ExpressionAttributeValues={":n": {"S": "x"}},
    )
    time.sleep(3)
    assert "disa-e2e-trigger processed" not in log.read_text(errors="replace")[len(after_inserts) :], "MODIFY filtered"


def test_new_alarms_start_in_insufficient_data(local_stack):
    cloudwatch = local_stack.clients("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName="canary-new-alarm",
        Namespace="Canary",
        MetricName="M",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    assert local_stack.alarm("canary-new-alarm") == "INSUFFICIENT_DATA"


def test_state_survives_a_clean_restart(private_cloud):
    ddb = private_cloud.clients()("dynamodb")
    ddb.create_table(
        TableName="persist",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="persist", Item={"id": {"S": "kept"}})
    assert private_cloud.down() is True
    assert private_cloud.up() is True
    ddb = private_cloud.clients()("dynamodb")
    assert ddb.get_item(TableName="persist", Key={"id": {"S": "kept"}})["Item"] == {"id": {"S": "kept"}}


def _probe_function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("probe.py", "def handler(event, context):\n    return {'ok': True}\n")
    return buffer.getvalue()


def test_local_down_leaves_no_engine_or_lambda_worker_process(private_cloud):
    lam = private_cloud.clients()("lambda")
    lam.create_function(
        FunctionName="probe",
        Runtime="python3.12",
        Role="arn:aws:iam::000000000000:role/probe",
        Handler="probe.handler",
        Code={"ZipFile": _probe_function_zip()},
    )
    assert lam.invoke(FunctionName="probe", Payload=b"{}")["Payload"].read() == b'{"ok": true}'
    group = private_cloud.processes()
    assert len(group) >= 2, "the engine and the Lambda worker it started"

    assert private_cloud.down() is True
    survivors = wait_until(lambda: [pid for pid in group if _running(pid)], lambda alive: not alive, timeout=5)
    assert survivors == []
    assert not private_cloud.healthy()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "zombie" not in status.read().lower()
    except OSError:
        return False
