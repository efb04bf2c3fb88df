"""The census the chaos run's verdict rests on: each broken guarantee is counted where it
belongs, and a healthy table counts nothing."""

from __future__ import annotations

from collections import Counter

import pytest
from disa_lambda.models.status import NO_STATUS, Status

from disa.drills.census import take_census

pytestmark = pytest.mark.unit
NOW = 1_700_000_000


def item(status: str | None = None, attempt: int = 1, due_at: int | None = None, message_id: str | None = None):
    stored = {"attempt": {"N": str(attempt)}}
    if status is not None:
        stored["status"] = {"S": status}
    if due_at is not None:
        stored["dueAt"] = {"N": str(due_at)}
    if message_id is not None:
        stored["messageId"] = {"S": message_id}
    return stored


def test_a_healthy_run_breaks_no_guarantee():
    items = {
        "ok": item(Status.SUCCESSFUL, message_id="m1"),
        "retried": item(Status.SUCCESSFUL, attempt=2, message_id="m2"),
        "bad": item(Status.REJECTED),
        "waiting": item(Status.PENDING, due_at=NOW + 60),
        "later": item(Status.FAILED, due_at=NOW + 60),
    }
    census = take_census(items, list(items), Counter({"ok": 1, "retried": 2}), NOW)
    assert census.holds()
    assert census.unsettled == 2 and census.deliveries == 3


def test_each_broken_guarantee_is_counted_where_it_belongs():
    items = {
        "no-status": item(),
        "stuck": item(Status.PENDING, due_at=NOW - 1),
        "twice": item(Status.SUCCESSFUL, message_id="m"),
        "never-published": item(Status.SUCCESSFUL),
        "fan-out-cut": item(Status.SUCCESSFUL, message_id="m"),
        "rejected-sent": item(Status.REJECTED),
    }
    deliveries = Counter({"twice": 2, "rejected-sent": 1})
    census = take_census(items, [*items, "deleted"], deliveries, NOW)

    assert census.lost == ["no-status", "deleted"]
    assert census.stuck == ["stuck"]
    assert census.over_delivered == ["twice"]
    assert census.undelivered == ["never-published"]
    assert census.lost_after_sns == ["fan-out-cut"]
    assert census.rejected_but_delivered == ["rejected-sent"]
    assert not census.holds()
    assert census.statuses[NO_STATUS] == 2


def test_a_status_disa_does_not_know_is_counted_as_written_and_not_final():
    census = take_census({"k": item("DONE")}, ["k"], Counter(), NOW)
    assert census.statuses["DONE"] == 1 and census.unsettled == 1


def test_large_messages_received_with_the_bytes_sent_break_no_guarantee():
    items = {"inline": item(Status.SUCCESSFUL, message_id="m1"), "object": item(Status.SUCCESSFUL, 2, message_id="m2")}
    sent = {"inline": "a" * 64, "object": "b" * 64}
    received = {"inline": ["a" * 64], "object": ["b" * 64, "b" * 64]}
    census = take_census(items, list(items), Counter({"inline": 1, "object": 2}), NOW, sent, received)

    assert census.holds()
    assert census.large == 2 and census.large_exact == ["inline", "object"] and census.large_not_exact == []


def test_a_large_message_not_received_byte_exact_breaks_the_guarantee():
    items = {
        "one-copy-differs": item(Status.SUCCESSFUL, 2, message_id="m"),
        "never-received": item(Status.SUCCESSFUL, message_id="m"),
        "rejected": item(Status.REJECTED),
        "fine": item(Status.SUCCESSFUL, message_id="m"),
    }
    sent = {key: "a" * 64 for key in items}
    received = {"one-copy-differs": ["a" * 64, "c" * 64], "fine": ["a" * 64]}
    census = take_census(items, list(items), Counter({"one-copy-differs": 2, "fine": 1}), NOW, sent, received)

    # "never-received" is the engine's (SNS accepted it): counted apart, not as inexact.
    assert census.lost_after_sns == ["never-received"]
    assert census.large_exact == ["fine"]
    assert census.large_not_exact == ["one-copy-differs", "rejected"]
    assert not census.holds()


def test_a_pointer_the_consumer_helper_cannot_read_breaks_the_guarantee():
    items = {"ok": item(Status.SUCCESSFUL, message_id="m")}
    census = take_census(items, list(items), Counter({"ok": 1}), NOW, unreadable=1)
    assert census.large_not_exact == [] and not census.holds()
