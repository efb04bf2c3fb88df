"""Disa's delivery guarantees, checked against what a table and a subscriber queue hold
(README, "Delivery guarantees"):

- every inserted item ends SUCCESSFUL, REJECTED or ABANDONED, or is FAILED and due: none
  is without a status (lost) or PENDING past its lease (stuck);
- every SUCCESSFUL item was accepted by SNS (its MessageId is recorded) and received by the
  subscriber at least once, and at most once per attempt;
- a REJECTED item was never delivered.

A SUCCESSFUL item that SNS accepted but the subscriber never received was lost after Disa's
part ended: on the local cloud, an engine restart can cut SNS's fan-out to SQS short
(docs/engine-differences.md). The census counts those apart, so they are reported, not hidden.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from disa_lambda.models.status import NO_STATUS, Field, Status

# Final statuses first, then those that still have an attempt ahead.
REPORTED_ORDER = (Status.SUCCESSFUL, Status.REJECTED, Status.ABANDONED, Status.FAILED, Status.PENDING)


@dataclass
class Census:
    inserted: int
    statuses: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    over_delivered: list[str] = field(default_factory=list)
    undelivered: list[str] = field(default_factory=list)
    lost_after_sns: list[str] = field(default_factory=list)
    rejected_but_delivered: list[str] = field(default_factory=list)
    deliveries: int = 0

    @property
    def unsettled(self) -> int:
        """Items not yet in a final status (PENDING, FAILED or none)."""
        return self.inserted - sum(self.statuses[s] for s in Status if s.is_final)

    def holds(self) -> bool:
        return not (self.lost or self.stuck or self.over_delivered or self.undelivered or self.rejected_but_delivered)

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("inserted", str(self.inserted)),
            *[(s, str(self.statuses[s])) for s in REPORTED_ORDER],
            ("deliveries received", str(self.deliveries)),
            ("lost (no status, or SUCCESSFUL without an SNS MessageId)", str(len(self.lost) + len(self.undelivered))),
            ("accepted by SNS, never received by the subscriber", str(len(self.lost_after_sns))),
            ("stuck (PENDING past its lease)", str(len(self.stuck))),
            ("duplicates per attempt (deliveries > attempts)", str(len(self.over_delivered))),
            ("REJECTED but delivered", str(len(self.rejected_but_delivered))),
        ]


def take_census(items: dict[str, dict[str, Any]], inserted: list[str], deliveries: Counter[str], now: float) -> Census:
    """``items``: each inserted key's item as stored now (missing if deleted or unread);
    ``deliveries``: how many times the subscriber received each key's message."""
    census = Census(inserted=len(inserted), deliveries=sum(deliveries.values()))
    for key in inserted:
        item = items.get(key, {})
        status = Status.of(item)
        census.statuses[status or NO_STATUS] += 1
        attempts = int(item.get(Field.ATTEMPT, {}).get("N", "0"))
        received = deliveries.get(key, 0)
        if status is None:
            census.lost.append(key)
        elif status is Status.PENDING and float(item.get(Field.DUE_AT, {}).get("N", "0")) < now:
            census.stuck.append(key)
        if status is Status.SUCCESSFUL and received == 0:
            (census.lost_after_sns if item.get(Field.MESSAGE_ID) else census.undelivered).append(key)
        if received > max(attempts, 1) and status is not Status.REJECTED:
            census.over_delivered.append(key)
        if status is Status.REJECTED and received:
            census.rejected_but_delivered.append(key)
    return census
