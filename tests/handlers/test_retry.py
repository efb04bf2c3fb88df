"""The retry handler fed the scheduled event EventBridge sends; executions run on moto."""

from __future__ import annotations

import random
import time

import pytest
from disa_lambda.dal.due_index import DueIndex
from disa_lambda.handlers import retry, trigger
from disa_lambda.logic import retries

from tests.support.events import load_event, stream_event, stream_record

pytestmark = pytest.mark.handlers


def failed_item(core, key: str, attempt: int = 1, due_in: int = -10, status: str = "FAILED") -> None:
    core.put(
        {
            "id": {"S": key},
            "message": {"S": f"retry {key}"},
            "status": {"S": status},
            "attempt": {"N": str(attempt)},
            "claimToken": {"S": "c" * 32},
            "dueShard": {"S": "3"},
            "dueAt": {"N": str(int(time.time()) + due_in)},
            "acceptedAt": {"S": "2026-11-23T09:00:00.000Z"},
        }
    )


def test_due_failure_is_redriven_and_delivered(deployed, context):
    failed_item(deployed, "f1")
    report = retry.lambda_handler(load_event("scheduled-event"), context)
    deployed.wait_for_executions()

    assert report["started"] == 1 and report["due"] == 1
    item = deployed.item("f1")
    assert item["status"]["S"] == "SUCCESSFUL" and item["attempt"]["N"] == "2"
    assert [m["Body"] for m in deployed.received()] == ["retry f1"]


def test_failure_not_yet_due_is_left_alone(deployed, context):
    failed_item(deployed, "later", due_in=600)
    report = retry.lambda_handler(load_event("scheduled-event"), context)
    assert report["due"] == 0
    assert deployed.status("later") == "FAILED"


def test_pending_past_its_lease_on_the_last_attempt_is_abandoned(deployed, context):
    failed_item(deployed, "stuck", attempt=3, status="PENDING")
    report = retry.lambda_handler(load_event("scheduled-event"), context)

    assert report["abandoned"] == 1
    item = deployed.item("stuck")
    assert item["status"]["S"] == "ABANDONED"
    assert "no outcome within its lease" in item["statusReason"]["S"]
    assert "dueAt" not in item
    assert deployed.metric_sum("ItemsAbandoned") == 1


def test_each_run_reports_an_explicit_zero_failure_datum(deployed, context):
    retry.lambda_handler(load_event("scheduled-event"), context)
    metrics = deployed.clients["cloudwatch"].list_metrics(Namespace="Disa")["Metrics"]
    assert {"PublishFailed", "ItemsAbandoned", "RetriesStarted", "RetryDue"} <= {m["MetricName"] for m in metrics}


def test_failed_retries_climb_to_abandoned_after_the_attempt_cap(deployed, context):
    deployed.put({"id": {"S": "doomed"}, "message": {"S": "never"}})
    deployed.clients["sns"].delete_topic(TopicArn=deployed.topic_arn)
    trigger.lambda_handler(stream_event(stream_record(deployed.item("doomed"))), context)
    deployed.wait_for_executions()
    for _ in range(5):
        assert deployed.status("doomed") in ("FAILED", "ABANDONED")
        deployed.clients["dynamodb"].update_item(  # time passes: make the failure due now
            TableName=deployed.table,
            Key={"id": {"S": "doomed"}},
            UpdateExpression="SET dueAt = :now",
            ConditionExpression="attribute_exists(dueAt)",
            ExpressionAttributeValues={":now": {"N": "1"}},
        ) if deployed.status("doomed") == "FAILED" else None
        retry.lambda_handler(load_event("scheduled-event"), context)
        deployed.wait_for_executions()

    item = deployed.item("doomed")
    assert item["status"]["S"] == "ABANDONED"
    assert item["attempt"]["N"] == "3", "MAX_ATTEMPTS is 3 in these tests"
    assert item["statusReason"]["S"] == "gave up after 3 attempts; last error: SNS.NotFoundException"


class SnapshotIndex:
    """Answers the due query with what it saw before another run went ahead: the
    interleaving of two overlapping retry runs."""

    def __init__(self, snapshot):
        self._snapshot = snapshot

    def due_items(self, shard, now_epoch, page_size):
        return iter([i for i in self._snapshot if i["dueShard"]["S"] == shard])


def test_overlapping_runs_start_each_item_once(deployed, context):
    for key in ("o1", "o2", "o3"):
        failed_item(deployed, key)
    settings = deployed.retry_settings()
    index = DueIndex(settings.TABLE_NAME)
    seen_by_slow_run = [i for s in range(8) for i in index.due_items(str(s), int(time.time()), 100)]

    fast = retry.lambda_handler(load_event("scheduled-event"), context)
    _, _, store, workflow, _ = retry._dependencies()
    slow = retries.run(
        settings, SnapshotIndex(seen_by_slow_run), store, workflow, time.time, random.Random(1), lambda: 300_000
    )
    deployed.wait_for_executions()

    assert fast["started"] == 3
    assert slow.started == 0 and slow.lost_races == 3
    assert sorted(m["Body"] for m in deployed.received()) == ["retry o1", "retry o2", "retry o3"]
