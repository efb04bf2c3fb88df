"""What operators rely on from the functions (README, "Alarms"): the retry job's heartbeat and
readings of the backlog, the trigger's counts, ABANDONED items waiting in the attention index,
and finished items carrying their expiry when FinishedItemRetentionDays is set."""

from __future__ import annotations

import io
import json
import time
from contextlib import redirect_stdout

import pytest
from disa_lambda.handlers import retry, trigger
from disa_lambda.logic import clock
from disa_lambda.models.metrics import Count, Gauge
from disa_lambda.models.status import ATTENTION_INDEX_NAME, DUE_INDEX_NAME, Field, Status

from tests.support.events import load_event, stream_event, stream_record

pytestmark = pytest.mark.handlers

DAY = 86_400


def in_flight(stack, key: str, status: Status, attempt: int, accepted: float, due_in: int = 600, shard: str = "3"):
    stack.put_in_flight(key, status, attempt, due_in, shard, clock.iso(accepted))


def waiting_for_a_person(stack, key: str, shard: str = "5"):
    stack.put(
        {
            "id": {"S": key},
            "message": {"S": f"abandoned {key}"},
            "status": {"S": Status.ABANDONED},
            "attempt": {"N": "3"},
            "claimToken": {"S": "d" * 32},
            "dueShard": {"S": shard},
            "abandonedAt": {"S": clock.iso(time.time() - 60)},
            "acceptedAt": {"S": clock.iso(time.time() - 3600)},
        }
    )


def latest(stack, name: str, statistic: str = "Maximum") -> float:
    points = stack.clients["cloudwatch"].get_metric_statistics(
        Namespace="Disa",
        MetricName=name,
        Dimensions=[{"Name": "StackName", "Value": "disa-test"}],
        StartTime=time.time() - 600,
        EndTime=time.time() + 60,
        Period=60,
        Statistics=[statistic],
    )["Datapoints"]
    assert points, f"no datum of {name}"
    return sorted(points, key=lambda p: p["Timestamp"])[-1][statistic]


def test_each_run_reports_its_heartbeat_and_readings_of_the_backlog(moto_stack, context):
    now = time.time()
    in_flight(moto_stack, "young-failed", Status.FAILED, attempt=1, accepted=now - 120)
    in_flight(moto_stack, "old-failed", Status.FAILED, attempt=2, accepted=now - 7200, shard="6")
    in_flight(moto_stack, "pending", Status.PENDING, attempt=1, accepted=now - 30)
    waiting_for_a_person(moto_stack, "a1")
    waiting_for_a_person(moto_stack, "a2", shard="0")

    report = retry.lambda_handler(load_event("scheduled-event"), context)

    readings = report["readings"]
    assert readings[Gauge.FAILED_ITEMS] == 2 and readings[Gauge.PENDING_ITEMS] == 1
    assert readings[Gauge.WAITING_ITEMS] == 0 and readings[Gauge.ABANDONED_WAITING] == 2
    assert 7200 <= readings[Gauge.OLDEST_FAILED_AGE] < 7260
    assert 30 <= readings[Gauge.OLDEST_PENDING_AGE] < 90
    assert moto_stack.metric_sum(Count.RETRY_JOB_RUNS) == 1
    assert latest(moto_stack, Gauge.ABANDONED_WAITING) == 2
    assert latest(moto_stack, Gauge.OLDEST_FAILED_AGE) == readings[Gauge.OLDEST_FAILED_AGE]


@pytest.mark.parametrize("moto_stack", ["fifo"], indirect=True)
def test_a_group_stalled_on_a_missing_sequence_shows_as_the_age_of_its_oldest_waiting_item(moto_stack, context):
    # Given an item waiting 20 minutes for a sequence no one inserted (checked again ever less
    # often, so due late), among more young WAITING items than the reading samples
    now = time.time()
    in_flight(moto_stack, "stalled", Status.WAITING, attempt=0, accepted=now - 1200, due_in=900)
    for i in range(25):
        in_flight(moto_stack, f"young-{i}", Status.WAITING, attempt=0, accepted=now - 5, due_in=55, shard=str(i % 8))

    # When the retry job reads the backlog
    report = retry.lambda_handler(load_event("scheduled-event"), context)

    # Then the oldest WAITING age is the stalled item's, what the groups-stalled alarm reads
    readings = report["readings"]
    assert readings[Gauge.WAITING_ITEMS] == 26
    assert 1200 <= readings[Gauge.OLDEST_WAITING_AGE] < 1260
    assert latest(moto_stack, Gauge.OLDEST_WAITING_AGE) == readings[Gauge.OLDEST_WAITING_AGE]
    assert moto_stack.alarms_by_logical_id["StalledGroupsAlarm"] == "disa-test-groups-stalled"


def test_an_empty_backlog_reads_zero_so_the_abandoned_alarm_returns_to_ok_on_evidence(moto_stack, context):
    report = retry.lambda_handler(load_event("scheduled-event"), context)
    assert set(report["readings"].values()) == {0}
    assert "StalledGroupsAlarm" not in moto_stack.alarms_by_logical_id, "a standard topic has no message groups"
    assert latest(moto_stack, Gauge.ABANDONED_WAITING) == 0


def test_the_region_that_does_not_own_still_beats_and_reads_the_same_global_table(moto_stack, context):
    moto_stack.put({"id": {"S": "x"}, "message": {"S": "x"}})  # stand-in so the table is not empty
    waiting_for_a_person(moto_stack, "a1")
    moto_stack.clients["dynamodb"].put_item(
        TableName=moto_stack.ownership_table,
        Item={"scope": {"S": "publishing"}, "owner": {"S": "us-west-2"}, "epoch": {"N": "1"}},
    )
    report = retry.lambda_handler(load_event("scheduled-event"), context)

    assert report["skipped"] is True
    assert moto_stack.metric_sum(Count.RETRY_JOB_RUNS) == 1
    assert latest(moto_stack, Gauge.ABANDONED_WAITING) == 1


test_the_region_that_does_not_own_still_beats_and_reads_the_same_global_table = pytest.mark.parametrize(
    "moto_stack", ["two-regions"], indirect=True
)(test_the_region_that_does_not_own_still_beats_and_reads_the_same_global_table)


def test_an_item_abandoned_at_the_cap_waits_in_the_attention_index_and_is_counted(moto_stack, context):
    in_flight(moto_stack, "stuck", Status.PENDING, attempt=3, accepted=time.time() - 900, due_in=-10)
    first = retry.lambda_handler(load_event("scheduled-event"), context)
    assert first["abandoned"] == 1

    item = moto_stack.item("stuck")
    assert Status.of(item) is Status.ABANDONED and Field.ABANDONED_AT in item and Field.EXPIRES_AT not in item
    assert moto_stack.index_keys(DUE_INDEX_NAME, "3") == []
    assert moto_stack.index_keys(ATTENTION_INDEX_NAME, "3") == ["stuck"]
    assert first["readings"][Gauge.ABANDONED_WAITING] == 1


def test_the_trigger_reports_each_batch_as_one_embedded_metric_line(moto_stack, context):
    images = [
        {"id": {"S": "ok-1"}, "message": {"S": "one"}},
        {"id": {"S": "ok-2"}, "message": {"S": "two"}},
        {"id": {"S": "bad"}, "message": {"N": "3"}},
    ]
    for image in images:
        moto_stack.put(image)
    captured = io.StringIO()
    with redirect_stdout(captured):
        trigger.lambda_handler(stream_event(*map(stream_record, images)), context)
    moto_stack.wait_for_executions()

    [emf] = [json.loads(line) for line in captured.getvalue().splitlines() if '"_aws"' in line]
    [directive] = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Disa" and directive["Dimensions"] == [["StackName"]]
    assert emf["StackName"] == "disa-test"
    counts = {m["Name"]: emf[m["Name"]] for m in directive["Metrics"]}
    assert counts == {Count.ITEMS_ACCEPTED: [2.0], Count.ITEMS_REJECTED: [1.0], Count.STARTS_DEFERRED: [0.0]}


@pytest.mark.parametrize("moto_stack", ["retention"], indirect=True)
def test_finished_items_carry_their_expiry_and_abandoned_ones_do_not(moto_stack, context):
    images = [{"id": {"S": "ok"}, "message": {"S": "one"}}, {"id": {"S": "bad"}, "message": {"N": "3"}}]
    for image in images:
        moto_stack.put(image)
    before = int(time.time())
    trigger.lambda_handler(stream_event(*map(stream_record, images)), context)
    moto_stack.wait_for_executions()

    for key, status in (("ok", Status.SUCCESSFUL), ("bad", Status.REJECTED)):
        item = moto_stack.item(key)
        assert Status.of(item) is status
        assert before + 30 * DAY <= int(item[Field.EXPIRES_AT]["N"]) <= int(time.time()) + 30 * DAY, key

    in_flight(moto_stack, "stuck", Status.PENDING, attempt=3, accepted=time.time() - 900, due_in=-10)
    retry.lambda_handler(load_event("scheduled-event"), context)
    assert Field.EXPIRES_AT not in moto_stack.item("stuck")


def test_without_a_retention_finished_items_are_kept(moto_stack, context):
    image = {"id": {"S": "ok"}, "message": {"S": "one"}}
    moto_stack.put(image)
    trigger.lambda_handler(stream_event(stream_record(image)), context)
    moto_stack.wait_for_executions()
    item = moto_stack.item("ok")
    assert Status.of(item) is Status.SUCCESSFUL and Field.EXPIRES_AT not in item


def test_an_insert_that_copies_the_pipelines_index_keys_is_rejected_out_of_both_indexes(moto_stack, context):
    # As if copied from an abandoned item: the inserter's own dueShard, dueAt and abandonedAt.
    image = {
        "id": {"S": "copy"},
        "message": {"S": "m"},
        "dueShard": {"S": "4"},
        "dueAt": {"N": "1"},
        "abandonedAt": {"S": "2026-11-01T00:00:00.000Z"},
    }
    moto_stack.put(image)
    trigger.lambda_handler(stream_event(stream_record(image)), context)

    item = moto_stack.item("copy")
    assert Status.of(item) is Status.REJECTED and item[Field.STATUS_REASON]["S"].startswith("abandonedAt: ")
    assert moto_stack.index_keys(DUE_INDEX_NAME, "4") == moto_stack.index_keys(ATTENTION_INDEX_NAME, "4") == []
    report = retry.lambda_handler(load_event("scheduled-event"), context)
    assert report["readings"][Gauge.ABANDONED_WAITING] == 0 and report["due"] == 0
