"""The retry handler fed the scheduled event EventBridge sends; executions run on moto."""

from __future__ import annotations

import dataclasses
import itertools
import random
import time

import pytest
from disa_lambda.dal.due_index import DueIndex
from disa_lambda.dal.items import ItemStore
from disa_lambda.dal.job_state import JobState
from disa_lambda.dal.unstatused import UnstatusedItems
from disa_lambda.handlers import retry, trigger
from disa_lambda.logic import retries, sweep
from disa_lambda.models.status import DUE_INDEX_SHARDS, Field, Status

from tests.support.events import load_event, stream_event, stream_record
from tests.support.item_limit import full_item

pytestmark = pytest.mark.handlers


def failed_item(stack, key: str, attempt: int = 1, due_in: int = -10, status: Status = Status.FAILED) -> None:
    stack.put_in_flight(key, status, attempt, due_in)


def test_due_failure_is_redriven_and_delivered(moto_stack, context):
    failed_item(moto_stack, "f1")
    report = retry.lambda_handler(load_event("scheduled-event"), context)
    moto_stack.wait_for_executions()

    assert report["started"] == 1 and report["due"] == 1
    item = moto_stack.item("f1")
    assert Status.of(item) is Status.SUCCESSFUL and item[Field.ATTEMPT]["N"] == "2"
    assert [m["Body"] for m in moto_stack.received_messages()] == ["retry f1"]


def test_failure_not_yet_due_is_left_alone(moto_stack, context):
    failed_item(moto_stack, "later", due_in=600)
    report = retry.lambda_handler(load_event("scheduled-event"), context)
    assert report["due"] == 0
    assert moto_stack.status("later") is Status.FAILED


def test_pending_past_its_lease_on_the_last_attempt_is_abandoned(moto_stack, context):
    failed_item(moto_stack, "stuck", attempt=3, status=Status.PENDING)
    report = retry.lambda_handler(load_event("scheduled-event"), context)

    assert report["abandoned"] == 1
    item = moto_stack.item("stuck")
    assert Status.of(item) is Status.ABANDONED
    assert "no outcome within its lease" in item[Field.STATUS_REASON]["S"]
    assert Field.DUE_AT not in item
    assert moto_stack.metric_sum("ItemsAbandoned") == 1


def test_each_run_reports_an_explicit_zero_failure_datum(moto_stack, context):
    for _ in range(2):
        retry.lambda_handler(load_event("scheduled-event"), context)

    for metric in ("PublishFailed", "ItemsAbandoned"):
        points = moto_stack.metric_datapoints(metric)
        samples, total = sum(p["SampleCount"] for p in points), sum(p["Sum"] for p in points)
        assert (samples, total) == (2, 0), f"{metric}: one datum of 0 per run"


def test_failed_retries_climb_to_abandoned_after_the_attempt_cap(moto_stack, context):
    moto_stack.put({"id": {"S": "doomed"}, "message": {"S": "never"}})
    moto_stack.clients["sns"].delete_topic(TopicArn=moto_stack.topic_arn)
    trigger.lambda_handler(stream_event(stream_record(moto_stack.item("doomed"))), context)
    moto_stack.wait_for_executions()
    for _ in range(5):
        status = moto_stack.status("doomed")
        assert status in (Status.FAILED, Status.ABANDONED)
        if status is Status.FAILED:
            moto_stack.make_due("doomed")
        retry.lambda_handler(load_event("scheduled-event"), context)
        moto_stack.wait_for_executions()

    item = moto_stack.item("doomed")
    assert Status.of(item) is Status.ABANDONED
    assert item[Field.ATTEMPT]["N"] == "3", "MAX_ATTEMPTS is 3 in these tests"
    assert item[Field.STATUS_REASON]["S"] == "gave up after 3 attempts; last error: SNS.NotFoundException"


class SnapshotIndex:
    """Answers the due query with what it saw before another run went ahead: the
    interleaving of two overlapping retry runs."""

    def __init__(self, snapshot):
        self._snapshot = snapshot

    def due_pages(self, shard, now_epoch, page_size):
        return iter([[i for i in self._snapshot if i["dueShard"]["S"] == shard]])


def test_overlapping_runs_start_each_item_once(moto_stack, context):
    for key in ("o1", "o2", "o3"):
        failed_item(moto_stack, key)
    settings = moto_stack.retry_settings()
    index = DueIndex(settings.TABLE_NAME)
    seen_by_slow_run = [
        i for s in range(DUE_INDEX_SHARDS) for page in index.due_pages(str(s), int(time.time()), 100) for i in page
    ]

    fast = retry.lambda_handler(load_event("scheduled-event"), context)
    deps = retry.dependencies()
    slow = retries.run(
        settings,
        SnapshotIndex(seen_by_slow_run),
        deps.store,
        deps.workflow,
        deps.payloads,
        deps.job_state,
        time.time,
        random.Random(1),
        lambda: 300_000,
    )
    moto_stack.wait_for_executions()

    assert fast["started"] == 3
    assert slow.started == 0 and slow.lost_races == 3
    assert sorted(m["Body"] for m in moto_stack.received_messages()) == ["retry o1", "retry o2", "retry o3"]


def test_overlapping_runs_split_the_shards_instead_of_racing(moto_stack, context):
    failed_item(moto_stack, "busy")  # due-index shard 3
    retry.dependencies().job_state.take_shard("3", "another-run", int(time.time()), int(time.time()) + 300)

    held_elsewhere = retry.lambda_handler(load_event("scheduled-event"), context)
    assert held_elsewhere["shards_busy"] == [3] and 3 not in held_elsewhere["shards_done"]
    assert held_elsewhere["due"] == 0 and moto_stack.status("busy") is Status.FAILED

    retry.dependencies().job_state.release_shard("3", "another-run")
    after_release = retry.lambda_handler(load_event("scheduled-event"), context)
    moto_stack.wait_for_executions()
    assert after_release["started"] == 1 and sorted(after_release["shards_done"]) == list(range(DUE_INDEX_SHARDS))
    assert moto_stack.status("busy") is Status.SUCCESSFUL


def test_runs_visit_the_shards_in_a_fair_order():
    starts = {retries.shard_order(random.Random(seed))[0] for seed in range(64)}
    orders = [retries.shard_order(random.Random(seed)) for seed in range(8)]
    assert starts == set(range(DUE_INDEX_SHARDS)), "no shard is always first, none always last"
    assert all(sorted(order) == list(range(DUE_INDEX_SHARDS)) for order in orders), "every shard once per run"


def test_many_due_items_are_claimed_concurrently_and_each_started_once(moto_stack, context):
    for n in range(40):
        failed_item(moto_stack, f"m{n}")
    report = retry.lambda_handler(load_event("scheduled-event"), context)
    moto_stack.wait_for_executions()

    assert (report["due"], report["started"], report["failed"]) == (40, 40, 0)
    assert sorted(m["Body"] for m in moto_stack.received_messages()) == sorted(f"retry m{n}" for n in range(40))


def _sweep_all_segments(context) -> list[dict]:
    """One retry run per segment, as the schedule does over SWEEP_SEGMENTS minutes."""
    reports = []
    settings = retry.dependencies().settings
    for minute in range(settings.SWEEP_SEGMENTS):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("disa_lambda.logic.clock.now", lambda m=minute: time.time() // 3600 * 3600 + 60 * m + 1)
            reports.append(retry.lambda_handler(load_event("scheduled-event"), context)["sweep"])
    return reports


def test_sweep_takes_in_an_item_no_stream_record_brought(moto_stack, context):
    moto_stack.put({"id": {"S": "lost"}, "message": {"S": "never reached the trigger"}})
    moto_stack.put({"id": {"S": "lost-bad"}, "message": {"N": "1"}})

    first = _sweep_all_segments(context)
    assert sum(r["marked"] for r in first) == 2 and sum(r["taken_in"] for r in first) == 0, "first sight only marks"
    assert moto_stack.status("lost") is None and Field.SWEPT_AT in moto_stack.item("lost")

    for key in ("lost", "lost-bad"):  # the grace period passes
        moto_stack.clients["dynamodb"].update_item(
            TableName=moto_stack.table,
            Key={"id": {"S": key}},
            UpdateExpression="SET sweptAt = :long_ago",
            ExpressionAttributeValues={":long_ago": {"N": "1"}},
        )
    second = _sweep_all_segments(context)
    moto_stack.wait_for_executions()

    assert sum(r["taken_in"] for r in second) == 1 and sum(r["rejected"] for r in second) == 1
    assert moto_stack.status("lost") is Status.SUCCESSFUL
    assert moto_stack.item("lost-bad")[Field.STATUS_REASON]["S"].startswith("message: must be a non-empty string")
    assert [m["Body"] for m in moto_stack.received_messages()] == ["never reached the trigger"]


def test_sweep_passes_over_an_item_no_status_fits_on_and_takes_in_the_rest(moto_stack, context):
    moto_stack.put(full_item(moto_stack.clients["dynamodb"], {"id": {"S": "full"}}))
    moto_stack.put({"id": {"S": "lost"}, "message": {"S": "still delivered"}, "sweptAt": {"N": "1"}})

    reports = _sweep_all_segments(context)
    moto_stack.wait_for_executions()

    assert sum(r["unwritable"] for r in reports) == 1
    [reason] = [reason for r in reports for reason in r["unwritable_reasons"]]
    assert "400 KB item limit" in reason and "full" in reason
    assert moto_stack.status("lost") is Status.SUCCESSFUL
    assert [m["Body"] for m in moto_stack.received_messages()] == ["still delivered"]


def test_a_late_stream_record_after_the_sweep_sends_nothing_more(moto_stack, context):
    moto_stack.put({"id": {"S": "late"}, "message": {"S": "once"}, "sweptAt": {"N": "1"}})
    _sweep_all_segments(context)
    moto_stack.wait_for_executions()
    record = stream_record({"id": {"S": "late"}, "message": {"S": "once"}})  # the INSERT image

    assert trigger.lambda_handler(stream_event(record), context) == {"batchItemFailures": []}
    moto_stack.wait_for_executions()
    assert [m["Body"] for m in moto_stack.received_messages()] == ["once"]
    assert moto_stack.status("late") is Status.SUCCESSFUL


class TwoItemPages:
    """Scan pages of two items, so a small table has many pages (AWS pages at 1 MB)."""

    def __init__(self, client):
        self._client = client

    def scan(self, **request):
        return self._client.scan(**request, Limit=2)


def test_the_sweep_resumes_each_segment_where_its_last_visit_stopped(moto_stack):
    keys = [f"u{n:02d}" for n in range(9)]
    for key in keys:
        moto_stack.put({"id": {"S": key}, "message": {"S": key}})
    settings = dataclasses.replace(moto_stack.retry_settings(), SWEEP_SEGMENTS=1, SWEEP_SECONDS_PER_RUN=3)
    ddb = moto_stack.clients["dynamodb"]
    scanner = UnstatusedItems(settings.TABLE_NAME, TwoItemPages(ddb))
    store, cursors = ItemStore(settings.TABLE_NAME, ddb), JobState(settings.JOB_STATE_TABLE_NAME, ddb)
    ticks = itertools.count(start=1_800_000_000)  # every look at the clock is one second later

    def visit() -> sweep.SweepReport:
        return sweep.run(
            settings, scanner, store, None, None, cursors, lambda: next(ticks), random.Random(1), lambda: 300_000
        )

    visits = [visit()]
    while not visits[-1].segment_finished and len(visits) < 20:
        visits.append(visit())

    assert len(visits) > 2 and visits[0].truncated and not visits[0].resumed
    assert all(v.resumed for v in visits[1:]), "every later visit starts at the saved cursor"
    assert sorted(k for k in keys if Field.SWEPT_AT in moto_stack.item(k)) == keys, "each item marked"
    assert sum(v.marked for v in visits) == len(keys), "and marked once: no visit restarted at the top"
    assert all(v.pages >= 1 for v in visits), "each visit finishes at least the page it began"
    assert cursors.sweep_cursor(0, 1) is None, "a finished segment starts at its top next pass"
