"""FIFO topics: a message is never published twice, even when an attempt's outcome is unknown.

SNS drops a FIFO message whose deduplication id it accepted in the last 5 minutes, and
every attempt of one insert sends the same id. So a publish that may have reached SNS
without Disa learning so (a timeout, an SNS 5xx, an execution lost after taking its publish
right) may be repeated safely only inside that window. The execution records when that
doubt began (``ambiguousSince``: the first publish right taken whose publish was not
refused outright); a later attempt must make its last SNS call before the window closes,
and the state machine checks the deadline right after it takes its publish right
(state-machine/publisher.asl.json, ``WithinDeduplicationWindow``). An attempt that would
be too late is not made: the item is ABANDONED with a reason that says what to check,
because publishing again could deliver the message twice, and not publishing could lose it.
"""

from __future__ import annotations

from typing import Any, Mapping

from disa_lambda.logic import clock
from disa_lambda.models.status import Field

# SNS FIFO's deduplication interval (AWS documents 5 minutes), from the accepted publish.
DEDUPLICATION_WINDOW_SECONDS = 300
# The FIFO publish states' worst span from first call to last: 5 calls of TimeoutSeconds 10
# and the backoff between them (1 + 2 + 4 + 8 s at most; tests/templates/test_contracts.py
# reads both from the ASL).
FIFO_PUBLISH_SPAN_SECONDS = 65
# The latest moment after ``ambiguousSince`` that an attempt may take its publish right.
REPUBLISH_WITHIN_SECONDS = DEDUPLICATION_WINDOW_SECONDS - FIFO_PUBLISH_SPAN_SECONDS - 5
# TakeFifoPublishRight's worst span: 3 calls of TimeoutSeconds 5 and 1 + 2 s of backoff.
FIFO_RIGHT_SPAN_SECONDS = 18
# An execution that entered TakeFifoPublishRight at publishRightAt makes its last SNS call
# before this much later; only then may the retry job take the item over (claim it again,
# or end it ABANDONED or REJECTED), so that a group's next message never overtakes it.
TAKEOVER_AFTER_SECONDS = FIFO_RIGHT_SPAN_SECONDS + FIFO_PUBLISH_SPAN_SECONDS + 7
# After taking its right, a FIFO execution holds the item this long from its launch (its
# dueAt), at least TAKEOVER_AFTER_SECONDS: if it is lost, the retry job claims the item again
# soon enough to repeat the publish inside the window.
FIFO_PUBLISH_LEASE_SECONDS = 120
# A deadline nearer than this when the retry job claims the item is not worth a start.
START_MARGIN_SECONDS = 10


def republish_deadline(item: Mapping[str, Any]) -> float | None:
    """Epoch seconds by which a new attempt must take its publish right, or None when no
    earlier publish of this insert can have reached SNS."""
    since = item.get(Field.AMBIGUOUS_SINCE, {}).get("S")
    if since is None:
        return None
    return clock.epoch(since) + REPUBLISH_WITHIN_SECONDS


def may_take_over(item: Mapping[str, Any], now: float) -> bool:
    """Whether an execution that took this item's publish right can no longer publish."""
    taken = item.get(Field.PUBLISH_RIGHT_AT, {}).get("S")
    return taken is None or now >= clock.epoch(taken) + TAKEOVER_AFTER_SECONDS


def too_late(deadline: float | None, now: float) -> bool:
    return deadline is not None and now >= deadline - START_MARGIN_SECONDS


def too_late_reason(item: Mapping[str, Any]) -> str:
    since = item[Field.AMBIGUOUS_SINCE]["S"]
    return (
        f"a publish of this message may have reached SNS at {since} without Disa learning so, and SNS's "
        f"{DEDUPLICATION_WINDOW_SECONDS // 60}-minute deduplication window has passed: publishing again "
        "could deliver it twice; look for its disa.insertId at the subscribers before sending it again"
    )


def doubt_note(item: Mapping[str, Any]) -> str:
    """What an ABANDONED reason adds when a publish of the item may have reached SNS."""
    since = item.get(Field.AMBIGUOUS_SINCE, {}).get("S")
    if since is None:
        return ""
    return f"; a publish of it may have reached SNS at {since}: look for its disa.insertId at the subscribers"


def execution_window(now: float, deadline: float | None) -> dict[str, str]:
    """The execution input's FIFO fields: when the item's lease ends once the right is
    taken, when a failure that leaves the publish in doubt is due again, and the deadline
    for taking the right when an earlier publish is in doubt."""
    window = {
        "publishLeaseUntil": str(int(now) + FIFO_PUBLISH_LEASE_SECONDS),
        # A publish left in doubt is due again at once, so the next attempt comes inside the window.
        "retryInDoubtAt": str(int(now)),
    }
    if deadline is not None:
        window["republishBy"] = clock.iso(deadline)
    return window
