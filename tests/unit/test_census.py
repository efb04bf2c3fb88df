"""The census the chaos run's verdict rests on: each broken guarantee is counted where it
belongs, and a healthy table counts nothing."""

from __future__ import annotations

from collections import Counter

import pytest
from disa_lambda.models.group import GroupPosition
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


# FIFO topics: each group in messageSequence order, each message once.
def fifo_census(received_order: list[str], statuses: dict[str, str] | None = None, attempts: int = 1):
    """Keys a1-a3 in group "a", b1-b2 in group "b", SUCCESSFUL unless ``statuses`` says
    otherwise; ``received_order``: what the FIFO queue returned, in order."""
    positions = {f"{g}{n}": GroupPosition(g, n) for g, count in (("a", 3), ("b", 2)) for n in range(1, count + 1)}
    statuses = statuses or {}
    items = {key: item(statuses.get(key, Status.SUCCESSFUL), attempts, message_id="m") for key in positions}
    return take_census(
        items, list(items), Counter(received_order), NOW, positions=positions, received_order=received_order
    )


def test_fifo_groups_received_in_sequence_once_each_break_no_guarantee_and_are_reported():
    # Groups interleave freely; a REJECTED item (b2) passes its turn and is never received.
    census = fifo_census(["a1", "b1", "a2", "a3"], statuses={"b2": Status.REJECTED})

    assert census.holds() and census.out_of_order == [] and census.subscriber_duplicates == []
    rows = dict(census.rows())
    assert rows["out of order within a group (received after a higher messageSequence)"] == "0"
    assert rows["duplicates at the subscriber (copies beyond the first)"] == "0"
    assert rows[Status.WAITING] == "0"


def test_a_message_received_after_a_higher_sequence_of_its_group_is_out_of_order():
    census = fifo_census(["a1", "a3", "b1", "a2", "b2"])

    assert census.out_of_order == ["a2"]
    assert not census.holds()
    assert dict(census.rows())["out of order within a group (received after a higher messageSequence)"] == "1"


def test_on_fifo_a_second_copy_breaks_the_guarantee_even_when_each_attempt_sent_one():
    # Two attempts, two copies: the standard census allows it (at most one per attempt).
    census = fifo_census(["a1", "a2", "a2", "a3", "b1", "b2"], attempts=2)

    assert census.over_delivered == []
    assert census.subscriber_duplicates == ["a2"] and census.out_of_order == []
    assert not census.holds()


def test_a_late_copy_of_an_earlier_message_is_both_a_duplicate_and_out_of_order():
    census = fifo_census(["a1", "a2", "a1", "a3", "b1", "b2"], attempts=2)
    assert census.subscriber_duplicates == ["a1"] and census.out_of_order == ["a1"]


def test_waiting_items_are_not_settled_and_a_standard_census_has_no_fifo_lines():
    census = fifo_census(["a1", "b1"], statuses={key: Status.WAITING for key in ("a2", "a3", "b2")})
    assert census.unsettled == 3 and census.statuses[Status.WAITING] == 3 and census.holds()

    standard = take_census({"k": item(Status.SUCCESSFUL, message_id="m")}, ["k"], Counter({"k": 1}), NOW)
    labels = [label for label, _ in standard.rows()]
    assert not any("within a group" in label or "at the subscriber" in label for label in labels)
    assert Status.WAITING not in labels


def fifo_census_with_times(received: list[tuple[str, float]], forgotten_at: list[float], other_id: float = -1):
    """``received``: each copy's key and the time it was sent to the queue, in receive order;
    the copy sent at ``other_id`` has a deduplication id of its own, the others their key."""
    positions = {f"a{n}": GroupPosition("a", n) for n in (1, 2, 3)}
    items = {key: item(Status.SUCCESSFUL, 2, message_id="m") for key in positions}
    order = [key for key, _ in received]
    sent_at: dict[str, list[float]] = {}
    for key, at in received:
        sent_at.setdefault(key, []).append((at, f"other-{key}" if at == other_id else key))
    return take_census(
        items,
        list(items),
        Counter(order),
        NOW,
        positions=positions,
        received_order=order,
        copies_sent_at=sent_at,
        dedup_forgotten_at=forgotten_at,
    )


def test_a_copy_aws_would_have_dropped_is_counted_apart_and_not_judged_for_order():
    # a2 again 100 s after its first copy, the engine's memory of its id lost in between
    # (the SNS outage re-created the topic): SNS on AWS drops it, as it does within 5 minutes.
    census = fifo_census_with_times([("a1", 0), ("a2", 10), ("a3", 20), ("a2", 110)], forgotten_at=[50])

    assert census.dropped_on_aws == ["a2"] and census.subscriber_duplicates == []
    assert census.out_of_order == [] and census.holds()
    assert (
        dict(census.rows())["copies AWS would have dropped (in SNS's 5 minutes, the engine's memory of the id lost)"]
        == "1"
    )


def test_a_copy_past_the_window_with_another_id_or_the_engines_memory_intact_breaks_the_guarantee():
    past_the_window = fifo_census_with_times([("a1", 0), ("a2", 10), ("a2", 311), ("a3", 320)], forgotten_at=[50])
    memory_intact = fifo_census_with_times([("a1", 0), ("a2", 10), ("a2", 110), ("a3", 120)], forgotten_at=[200])
    another_id = fifo_census_with_times([("a1", 0), ("a2", 10), ("a2", 110), ("a3", 120)], [50], other_id=110)
    without_times = fifo_census(["a1", "a2", "a2", "a3", "b1", "b2"], attempts=2)

    for census in (past_the_window, memory_intact, another_id, without_times):
        assert census.subscriber_duplicates == ["a2"] and census.dropped_on_aws == []
        assert not census.holds()
