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
    _, _, _, store, workflow, _ = retry._dependencies()
    slow = retries.run(
        settings, SnapshotIndex(seen_by_slow_run), store, workflow, time.time, random.Random(1), lambda: 300_000
    )
    deployed.wait_for_executions()

    assert fast["started"] == 3
    assert slow.started == 0 and slow.lost_races == 3
    assert sorted(m["Body"] for m in deployed.received()) == ["retry o1", "retry o2", "retry o3"]


def _sweep_all_segments(context) -> list[dict]:
    """One retry run per segment, as the schedule does over SWEEP_SEGMENTS minutes."""
    reports = []
    settings = retry._dependencies()[0]
    for minute in range(settings.SWEEP_SEGMENTS):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("disa_lambda.logic.clock.now", lambda m=minute: time.time() // 3600 * 3600 + 60 * m + 1)
            reports.append(retry.lambda_handler(load_event("scheduled-event"), context)["sweep"])
    return reports


def test_sweep_takes_in_an_item_no_stream_record_brought(deployed, context):
    deployed.put({"id": {"S": "lost"}, "message": {"S": "never reached the trigger"}})
    deployed.put({"id": {"S": "lost-bad"}, "message": {"N": "1"}})

    first = _sweep_all_segments(context)
    assert sum(r["marked"] for r in first) == 2 and sum(r["taken_in"] for r in first) == 0, "first sight only marks"
    assert deployed.status("lost") is None and "sweptAt" in deployed.item("lost")

    for key in ("lost", "lost-bad"):  # the grace period passes
        deployed.clients["dynamodb"].update_item(
            TableName=deployed.table,
            Key={"id": {"S": key}},
            UpdateExpression="SET sweptAt = :long_ago",
            ExpressionAttributeValues={":long_ago": {"N": "1"}},
        )
    second = _sweep_all_segments(context)
    deployed.wait_for_executions()

    assert sum(r["taken_in"] for r in second) == 1 and sum(r["rejected"] for r in second) == 1
    assert deployed.status("lost") == "SUCCESSFUL"
    assert deployed.item("lost-bad")["statusReason"]["S"].startswith("message: must be a non-empty string")
    assert [m["Body"] for m in deployed.received()] == ["never reached the trigger"]


def test_a_late_stream_record_after_the_sweep_sends_nothing_more(deployed, context):
    deployed.put({"id": {"S": "late"}, "message": {"S": "once"}, "sweptAt": {"N": "1"}})
    _sweep_all_segments(context)
    deployed.wait_for_executions()
    record = stream_record({"id": {"S": "late"}, "message": {"S": "once"}})  # the INSERT image

    assert trigger.lambda_handler(stream_event(record), context) == {"batchItemFailures": []}
    deployed.wait_for_executions()
    assert [m["Body"] for m in deployed.received()] == ["once"]
    assert deployed.status("late") == "SUCCESSFUL"
