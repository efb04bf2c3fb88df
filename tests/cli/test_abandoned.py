"""`disa abandoned list|requeue|dismiss` against moto, with the real retry job: an item the job
abandoned at the attempt cap waits in the attention index, the job's reading counts it (what
the abandoned alarm stays in ALARM on), and each way a person lets it go empties that reading."""

from __future__ import annotations

import json
import time

import pytest
from disa_lambda.dal.groups import GroupLedger
from disa_lambda.handlers import retry, trigger
from disa_lambda.logic import attempts, clock, payloads
from disa_lambda.models.group import GroupPosition
from disa_lambda.models.metrics import Gauge
from disa_lambda.models.status import ATTENTION_INDEX_NAME, DUE_INDEX_NAME, Field, Status

from tests.support.cli import disa
from tests.support.events import load_event, stream_event, stream_record
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


def head_abandoned_in_its_group(stack, context) -> None:
    """Group A: a1 (sequence 1, its turn) on its last attempt past its lease, which the retry
    job abandons, and a2 (sequence 2) WAITING behind it."""
    ledger = GroupLedger(stack.groups_table, stack.clients["dynamodb"])
    accepted = clock.iso(time.time() - 900)
    for key, sequence, status, attempt, due_in in (
        ("a1", 1, Status.PENDING, stack.max_attempts, -10),
        ("a2", 2, Status.WAITING, 0, 600),
    ):
        stack.put_in_flight(key, status, attempt, due_in=due_in, shard="2", accepted_at=accepted)
        stack.clients["dynamodb"].update_item(
            TableName=stack.table,
            Key=stack.key(key),
            UpdateExpression="SET message = :body, messageGroupId = :group, messageSequence = :sequence",
            ExpressionAttributeValues={
                ":body": {"S": f"body of {key}"},
                ":group": {"S": "A"},
                ":sequence": {"N": str(sequence)},
            },
        )
        assert ledger.take_slot(GroupPosition("A", sequence), stack.key(key))
    assert retry.lambda_handler(load_event("scheduled-event"), context)["abandoned"] == 1


def released_by_the_stream(stack, context) -> None:
    """What the stream mapping does with a1's final write: the trigger wakes its group."""
    trigger.lambda_handler(stream_event(stream_record(stack.item("a1"), event_name="MODIFY")), context)
    stack.wait_for_executions()


@pytest.mark.parametrize("moto_stack", ["fifo-hold"], indirect=True)
def test_requeue_of_a_head_that_holds_its_group_publishes_it_in_its_place_then_the_group_goes_on(
    moto_stack, context, capsys
):
    # Given a1 ABANDONED holding group A (FifoAbandonedItems=hold), a2 waiting behind it
    head_abandoned_in_its_group(moto_stack, context)
    released_by_the_stream(moto_stack, context)
    assert moto_stack.status("a2") is Status.WAITING and moto_stack.received_messages() == []

    # When a person requeues it
    code, out, err = disa(capsys, "abandoned", "requeue", "a1", "--stack", NAME_PREFIX)
    assert (code, err) == (0, "") and "requeued" in out
    assert moto_stack.status("a1") is Status.FAILED

    # Then the retry job publishes it, and its final write lets a2 go on after it
    retry.lambda_handler(load_event("scheduled-event"), context)
    moto_stack.wait_for_executions()
    assert moto_stack.status("a1") is Status.SUCCESSFUL
    released_by_the_stream(moto_stack, context)
    assert [m["Body"] for m in moto_stack.received_messages()] == ["body of a1", "body of a2"]


@pytest.mark.parametrize(
    ("moto_stack", "released_by_a_person"),
    [("fifo", False), ("fifo-hold", True)],
    indirect=["moto_stack"],
)
def test_requeue_refuses_an_item_whose_group_went_on_without_it(moto_stack, context, capsys, released_by_a_person):
    # Given a1 ABANDONED and its group past it: released by the parameter, or by a person
    head_abandoned_in_its_group(moto_stack, context)
    if released_by_a_person:
        assert disa(capsys, "group", "release", "A", "--stack", NAME_PREFIX)[0] == 0
    released_by_the_stream(moto_stack, context)
    assert moto_stack.status("a2") is Status.SUCCESSFUL
    capsys.readouterr()  # the functions' log lines

    code, out, err = disa(capsys, "abandoned", "requeue", "a1", "--stack", NAME_PREFIX)

    assert code == 1 and out == "" and err.count("\n") == 1
    assert "out of order" in err and "new item with the group's next messageSequence" in err
    assert "disa abandoned dismiss a1" in err
    assert Status.of(moto_stack.item("a1")) is Status.ABANDONED and Field.ABANDONED_AT in moto_stack.item("a1")


@pytest.mark.parametrize("moto_stack", ["fifo-hold"], indirect=True)
def test_dismiss_of_a_head_that_holds_its_group_refuses_until_the_group_is_released(moto_stack, context, capsys):
    head_abandoned_in_its_group(moto_stack, context)

    # Dismissing it would clear the alarm and leave group A waiting forever
    for args, said in ((["a1"], ""), (["--all"], "0 item(s) dismissed")):
        code, out, err = disa(capsys, "abandoned", "dismiss", *args, "--stack", NAME_PREFIX)
        assert code == 1 and out.strip() == said
        assert err.count("\n") == 1 and "run `disa group release A` first" in err
        assert Field.ABANDONED_AT in moto_stack.item("a1") and Field.DISMISSED_AT not in moto_stack.item("a1")
    assert waiting_reading(context) == 1

    assert disa(capsys, "group", "release", "A", "--stack", NAME_PREFIX)[0] == 0
    code, _, err = disa(capsys, "abandoned", "dismiss", "a1", "--stack", NAME_PREFIX)
    assert (code, err) == (0, "") and Field.DISMISSED_AT in moto_stack.item("a1")


def abandoned_naming_its_body_in_s3(stack, context) -> tuple[str, str]:
    """a1's body is an object a producer uploaded (messageObject); the retry job abandons
    a1. Returns the object's key and that of the copy an attempt stores (logic/payloads.py)."""
    abandoned_by_the_retry_job(stack, context, "a1")
    source = {"bucket": {"S": stack.payload_bucket}, "key": {"S": "incoming/a1.json"}}
    stack.clients["dynamodb"].update_item(
        TableName=stack.table,
        Key=stack.key("a1"),
        UpdateExpression="SET messageObject = :object REMOVE message",
        ExpressionAttributeValues={":object": {"M": source}},
    )
    item = stack.item("a1")
    named = payloads.named_object(stack.key("a1"), {k: v for k, v in item.items() if k != "id"}, stack.fifo)
    return "incoming/a1.json", named.key


@pytest.mark.parametrize("left", ["nothing", "the producer's object", "Disa's copy"])
def test_requeue_of_an_item_whose_s3_body_is_gone_refuses_and_says_why(moto_stack, context, capsys, left):
    source, copy = abandoned_naming_its_body_in_s3(moto_stack, context)
    if left != "nothing":
        kept = source if left == "the producer's object" else copy
        moto_stack.clients["s3"].put_object(Bucket=moto_stack.payload_bucket, Key=kept, Body=b"big body")

    code, out, err = disa(capsys, "abandoned", "requeue", "a1", "--stack", NAME_PREFIX)

    if left == "nothing":
        assert code == 1 and out == "" and err.count("\n") == 1
        assert "expire 30 days after their last write, PayloadRetentionDays" in err and copy in err
        assert f"upload the body to s3://{moto_stack.payload_bucket}/{source} again" in err
        assert Status.of(moto_stack.item("a1")) is Status.ABANDONED
    else:
        assert (code, err) == (0, "") and Status.of(moto_stack.item("a1")) is Status.FAILED


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
