"""`disa abandoned list|requeue|dismiss` against moto, with the real retry job: an item the job
abandoned at the attempt cap waits in the attention index, the job's reading counts it (what
the abandoned alarm stays in ALARM on), and each way a person lets it go empties that reading."""

from __future__ import annotations

import json
import time

import pytest
from disa_lambda.handlers import retry
from disa_lambda.logic import attempts, clock
from disa_lambda.models.metrics import Gauge
from disa_lambda.models.status import ATTENTION_INDEX_NAME, DUE_INDEX_NAME, Field, Status

from tests.support.cli import disa
from tests.support.events import load_event
from tests.support.moto_stack import NAME_PREFIX

pytestmark = pytest.mark.cli


def abandoned_by_the_retry_job(stack, context, *keys: str) -> dict:
    """Items PENDING past their lease on the last attempt: the retry job abandons them."""
    for key in keys:
        stack.put_in_flight(
            key,
            Status.PENDING,
            stack.max_attempts,
            shard="2",
            accepted_at=clock.iso(time.time() - 900),
            message=f"body of {key}",
        )
    report = retry.lambda_handler(load_event("scheduled-event"), context)
    assert report["abandoned"] == len(keys)
    return report


def waiting_reading(context) -> float:
    return retry.lambda_handler(load_event("scheduled-event"), context)["readings"][Gauge.ABANDONED_WAITING]


def test_list_shows_each_waiting_item_with_its_reason(moto_stack, context, capsys):
    abandoned_by_the_retry_job(moto_stack, context, "a1", "a2")
    code, out, _ = disa(capsys, "abandoned", "list", "--stack", NAME_PREFIX, "--json")
    listed = json.loads(out)
    assert code == 0 and sorted(row["key"] for row in listed) == ["a1", "a2"]
    assert all(row["attempts"] == str(moto_stack.max_attempts) for row in listed)
    assert all("no outcome within its lease" in row["reason"] for row in listed)

    code, out, _ = disa(capsys, "abandoned", "list", "--stack", NAME_PREFIX, "--limit", "1")
    assert code == 0 and len([line for line in out.splitlines() if line.startswith("a")]) == 1


def test_requeue_publishes_the_item_again_with_fresh_attempts_and_the_reading_drops_to_zero(
    moto_stack, context, capsys
):
    abandoned_by_the_retry_job(moto_stack, context, "a1")
    assert waiting_reading(context) == 1

    code, out, err = disa(capsys, "abandoned", "requeue", "a1", "--stack", NAME_PREFIX)
    assert (code, err) == (0, "") and "requeued" in out
    item = moto_stack.item("a1")
    assert Status.of(item) is Status.FAILED and item[Field.ATTEMPT]["N"] == "0"
    assert Field.ABANDONED_AT not in item and "requeued by a person" in item[Field.STATUS_REASON]["S"]
    # Due again in its own shard (from its key), with a claim token no earlier decision holds.
    shard = attempts.due_shard({"id": {"S": "a1"}})
    assert moto_stack.index_keys(DUE_INDEX_NAME, shard) == ["a1"] and item[Field.DUE_SHARD]["S"] == shard
    assert moto_stack.index_keys(ATTENTION_INDEX_NAME, "2") == []
    assert item[Field.CLAIM_TOKEN]["S"] != "c" * 32

    report = retry.lambda_handler(load_event("scheduled-event"), context)
    moto_stack.wait_for_executions()
    assert report["started"] == 1 and report["readings"][Gauge.ABANDONED_WAITING] == 0
    item = moto_stack.item("a1")
    assert Status.of(item) is Status.SUCCESSFUL and item[Field.ATTEMPT]["N"] == "1"
    assert [m["Body"] for m in moto_stack.received_messages()] == ["body of a1"]


def test_dismiss_keeps_the_item_abandoned_and_unpublished_and_the_reading_drops_to_zero(moto_stack, context, capsys):
    abandoned_by_the_retry_job(moto_stack, context, "a1", "a2")
    code, out, _ = disa(capsys, "abandoned", "dismiss", "--all", "--stack", NAME_PREFIX)
    assert code == 0 and out.strip() == "2 item(s) dismissed"
    for key in ("a1", "a2"):
        item = moto_stack.item(key)
        assert Status.of(item) is Status.ABANDONED and Field.DISMISSED_AT in item and Field.ABANDONED_AT not in item
    assert waiting_reading(context) == 0
    assert moto_stack.received_messages() == []
    code, out, _ = disa(capsys, "abandoned", "list", "--stack", NAME_PREFIX)
    assert out.strip() == "no ABANDONED item waits for a person"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["requeue"], "give the item's KEY or --all"),
        (["dismiss", "k", "--all"], "give the item's KEY or --all"),
        (["requeue", "nope"], "item nope is not an ABANDONED item waiting for a person"),
        (["list", "k"], "list takes no KEY"),
        (["list", "--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_mistakes_print_one_line_and_change_nothing(moto_stack, capsys, args, expected):
    moto_stack.put({"id": {"S": "nope"}, "message": {"S": "m"}, "status": {"S": Status.FAILED}})
    code, out, err = disa(capsys, "abandoned", *args, "--stack", NAME_PREFIX)
    assert code == 1 and out == "" and err.startswith(f"disa: {expected}") and err.count("\n") == 1
    assert Status.of(moto_stack.item("nope")) is Status.FAILED


def test_an_item_acted_on_once_cannot_be_acted_on_again(moto_stack, context, capsys):
    abandoned_by_the_retry_job(moto_stack, context, "a1")
    assert disa(capsys, "abandoned", "dismiss", "a1", "--stack", NAME_PREFIX)[0] == 0
    code, _, err = disa(capsys, "abandoned", "requeue", "a1", "--stack", NAME_PREFIX)
    assert code == 1 and "is not an ABANDONED item waiting for a person" in err
    assert Status.of(moto_stack.item("a1")) is Status.ABANDONED


@pytest.mark.parametrize("moto_stack", ["fifo"], indirect=True)
def test_requeue_on_a_fifo_topic_refuses_since_it_would_break_the_groups_order(moto_stack, context, capsys):
    code, _, err = disa(capsys, "abandoned", "requeue", "a1", "--stack", NAME_PREFIX)
    assert code == 1 and "out of its group's order" in err and "disa group release" in err


@pytest.mark.parametrize("moto_stack", ["retention"], indirect=True)
def test_a_dismissed_item_is_finished_and_expires_like_the_others(moto_stack, context, capsys):
    abandoned_by_the_retry_job(moto_stack, context, "a1")
    assert Field.EXPIRES_AT not in moto_stack.item("a1"), "an ABANDONED item waiting for a person never expires"
    before = int(time.time())
    assert disa(capsys, "abandoned", "dismiss", "a1", "--stack", NAME_PREFIX)[0] == 0
    assert before + 30 * 86_400 <= int(moto_stack.item("a1")[Field.EXPIRES_AT]["N"]) <= time.time() + 30 * 86_400


def test_backfill_brings_items_abandoned_before_the_attention_index_under_the_alarm(moto_stack, context, capsys):
    # As the earlier version left them: no dueShard, no abandonedAt; one of them dismissed.
    for key, extra in (("old-1", {}), ("old-2", {}), ("gone", {"dismissedAt": {"S": "2026-11-02T00:00:00.000Z"}})):
        moto_stack.put(
            {
                "id": {"S": key},
                "message": {"S": "m"},
                "status": {"S": Status.ABANDONED},
                "updatedAt": {"S": "2026-11-01T00:00:00.000Z"},
                **extra,
            }
        )
    moto_stack.put({"id": {"S": "fine"}, "message": {"S": "m"}, "status": {"S": Status.SUCCESSFUL}})
    assert waiting_reading(context) == 0

    code, out, _ = disa(capsys, "abandoned", "backfill", "--stack", NAME_PREFIX)
    assert code == 0 and out.strip() == "2 ABANDONED item(s) now wait in the attention index"
    assert waiting_reading(context) == 2
    item = moto_stack.item("old-1")
    assert item[Field.ABANDONED_AT] == {"S": "2026-11-01T00:00:00.000Z"}
    assert item[Field.DUE_SHARD]["S"] == attempts.due_shard({"id": {"S": "old-1"}})
    assert Field.ABANDONED_AT not in moto_stack.item("gone") and Field.ABANDONED_AT not in moto_stack.item("fine")
    code, out, _ = disa(capsys, "abandoned", "backfill", "--stack", NAME_PREFIX)
    assert out.strip() == "0 ABANDONED item(s) now wait in the attention index"
