"""Disa's delivery guarantees, checked against what a table and a subscriber queue hold
(README, "Delivery guarantees"):

- every inserted item ends SUCCESSFUL, REJECTED or ABANDONED, or is FAILED and due: none
  is without a status (lost) or PENDING past its lease (stuck);
- every SUCCESSFUL item was accepted by SNS (its MessageId is recorded) and received by the
  subscriber at least once, and at most once per attempt;
- a REJECTED item was never delivered;
- a large message (its body stored in S3, published as a pointer) reaches the subscriber
  byte-exact: every copy received, read as a consumer built on Disa's helper reads it,
  has the SHA-256 of the body sent, and every pointer can be read;
- FIFO topics: each message group reaches the subscriber in its messageSequence order (no
  message received after one of its group with a higher sequence), and each message once
  (SNS and the FIFO queue drop a copy whose deduplication id they saw, so not even the one
  copy per attempt the "duplicates per attempt" line allows).

A SUCCESSFUL item that SNS accepted but the subscriber never received was lost after Disa's
part ended: on the local cloud, an engine restart can cut SNS's fan-out to SQS short
(docs/engine-differences.md). The census counts those apart, so they are reported, not hidden;
a large message among them is not required byte-exact, as it was never received.

Likewise on FIFO topics, a second copy with the first's deduplication id, sent within the
5-minute deduplication window of the first, across a moment at which the local engine lost
its deduplication memory (the drill's SNS outage deletes and re-creates the topic, and the
FIFO queue forgets an id once its message is deleted), is one AWS drops: SNS keeps a deduplication id 5 minutes whatever
happens to the queue. Disa republishes a message in doubt only inside that window, so such a
copy is counted apart; a copy sent later than the window, or with no such moment between,
breaks the guarantee.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from disa_lambda.models.group import GroupPosition
from disa_lambda.models.status import NO_STATUS, Field, Status

# Final statuses first, then those that still have an attempt ahead.
REPORTED_ORDER = (Status.SUCCESSFUL, Status.REJECTED, Status.ABANDONED, Status.FAILED, Status.PENDING)
# SNS's (and SQS FIFO queues') deduplication interval.
DEDUPLICATION_WINDOW_SECONDS = 300
# FIFO topics add the items whose turn in their message group has not come.
FIFO_REPORTED_ORDER = (*REPORTED_ORDER, Status.WAITING)


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
    large: int = 0  # large items inserted: their body is stored in S3 and published as a pointer
    large_exact: list[str] = field(default_factory=list)
    # Large items not received byte-exact: a copy with other bytes, or none at all (unless
    # the engine lost it after SNS accepted it: lost_after_sns).
    large_not_exact: list[str] = field(default_factory=list)
    unreadable: int = 0  # pointers received whose body could not be read
    fifo: bool = False  # a FIFO topic: order and single delivery are checked too
    # FIFO: each message received after one of its group with a higher messageSequence, by key.
    out_of_order: list[str] = field(default_factory=list)
    # FIFO: each copy received beyond a key's first, by key.
    subscriber_duplicates: list[str] = field(default_factory=list)
    # FIFO: copies beyond the first that AWS would have dropped (module docstring), by key.
    dropped_on_aws: list[str] = field(default_factory=list)

    @property
    def unsettled(self) -> int:
        """Items not yet in a final status (PENDING, FAILED or none)."""
        return self.inserted - sum(self.statuses[s] for s in Status if s.is_final)

    def holds(self) -> bool:
        return not (
            self.lost
            or self.stuck
            or self.over_delivered
            or self.undelivered
            or self.rejected_but_delivered
            or self.large_not_exact
            or self.unreadable
            or self.out_of_order
            or self.subscriber_duplicates
        )

    def rows(self) -> list[tuple[str, str]]:
        fifo = [
            ("out of order within a group (received after a higher messageSequence)", str(len(self.out_of_order))),
            ("duplicates at the subscriber (copies beyond the first)", str(len(self.subscriber_duplicates))),
            (
                "copies AWS would have dropped (in SNS's 5 minutes, the engine's memory of the id lost)",
                str(len(self.dropped_on_aws)),
            ),
        ]
        return [
            ("inserted", str(self.inserted)),
            *[(s, str(self.statuses[s])) for s in (FIFO_REPORTED_ORDER if self.fifo else REPORTED_ORDER)],
            ("deliveries received", str(self.deliveries)),
            ("lost (no status, or SUCCESSFUL without an SNS MessageId)", str(len(self.lost) + len(self.undelivered))),
            ("accepted by SNS, never received by the subscriber", str(len(self.lost_after_sns))),
            ("stuck (PENDING past its lease)", str(len(self.stuck))),
            ("duplicates per attempt (deliveries > attempts)", str(len(self.over_delivered))),
            ("REJECTED but delivered", str(len(self.rejected_but_delivered))),
            ("large messages inserted (body over 256 KB, or a messageObject)", str(self.large)),
            ("large messages delivered byte-exact (SHA-256, read by the consumer helper)", str(len(self.large_exact))),
            ("pointers the consumer helper could not read", str(self.unreadable)),
            *(fifo if self.fifo else []),
        ]


def take_census(
    items: dict[str, dict[str, Any]],
    inserted: list[str],
    deliveries: Counter[str],
    now: float,
    sent_digests: Mapping[str, str] | None = None,
    received_digests: Mapping[str, Sequence[str]] | None = None,
    unreadable: int = 0,
    positions: Mapping[str, GroupPosition] | None = None,
    received_order: Sequence[str] = (),
    copies_sent_at: Mapping[str, Sequence[tuple[float, str]]] | None = None,
    dedup_forgotten_at: Sequence[float] = (),
) -> Census:
    """``items``: each inserted key's item as stored now (missing if deleted or unread);
    ``deliveries``: how many times the subscriber received each key's message;
    ``sent_digests``: the SHA-256 of each large item's body as sent; ``received_digests``:
    the SHA-256 of each copy of it the subscriber received, its body read from S3;
    ``unreadable``: pointers received whose body could not be read.
    FIFO topics: ``positions``, each key's message group and messageSequence as sent;
    ``received_order``: the key of each message the FIFO queue returned, in receive order;
    ``copies_sent_at``: when each copy of a key was sent to the queue (epoch seconds) and
    its MessageDeduplicationId;
    ``dedup_forgotten_at``: when the engine lost its deduplication memory."""
    census = Census(
        inserted=len(inserted),
        deliveries=sum(deliveries.values()),
        unreadable=unreadable,
        fifo=positions is not None,
    )
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
    _count_large(census, sent_digests or {}, received_digests or {})
    if positions is not None:
        census.subscriber_duplicates, census.dropped_on_aws = duplicates(
            inserted, deliveries, copies_sent_at or {}, dedup_forgotten_at
        )
        census.out_of_order = out_of_order(_without_last(received_order, census.dropped_on_aws), positions)
    return census


def duplicates(
    inserted: Sequence[str],
    deliveries: Mapping[str, int],
    copies_sent_at: Mapping[str, Sequence[tuple[float, str]]],
    forgotten_at: Sequence[float],
) -> tuple[list[str], list[str]]:
    """Each copy beyond a key's first, by key: those that break the guarantee, and those AWS
    would have dropped (the first copy's deduplication id, sent within its window, with a
    loss of the engine's deduplication memory between the two)."""
    broken, dropped = [], []
    for key in inserted:
        extra = deliveries.get(key, 0) - 1
        times = sorted(copies_sent_at.get(key, ()))
        if extra <= 0:
            continue
        if len(times) != extra + 1:  # copies without a send time: nothing shows AWS would drop them
            broken.extend([key] * extra)
            continue
        (first, first_id), later_copies = times[0], times[1:]
        for later, dedup_id in later_copies:
            forgot = any(first < at < later for at in forgotten_at)
            aws_drops = forgot and dedup_id == first_id and later - first < DEDUPLICATION_WINDOW_SECONDS
            (dropped if aws_drops else broken).append(key)
    return broken, dropped


def _without_last(received_order: Sequence[str], dropped: Sequence[str]) -> list[str]:
    """The receive order without the copies AWS would have dropped: for each, the latest
    copy of its key (the one sent later)."""
    kept, drop = list(received_order), Counter(dropped)
    for index in range(len(kept) - 1, -1, -1):
        if drop[kept[index]]:
            drop[kept[index]] -= 1
            del kept[index]
    return kept


def out_of_order(received_order: Sequence[str], positions: Mapping[str, GroupPosition]) -> list[str]:
    """The key of every message received after one of its group with a higher sequence
    (a copy of an earlier message received late counts too; keys without a position, e.g.
    another run's, are not judged)."""
    highest: dict[str, int] = {}
    late = []
    for key in received_order:
        position = positions.get(key)
        if position is None:
            continue
        if position.sequence < highest.get(position.group, 0):
            late.append(key)
        highest[position.group] = max(highest.get(position.group, 0), position.sequence)
    return late


def _count_large(census: Census, sent: Mapping[str, str], received: Mapping[str, Sequence[str]]) -> None:
    """A large item is byte-exact when it was received and every copy has the body's digest."""
    census.large = len(sent)
    for key, digest in sent.items():
        copies = received.get(key, ())
        if copies and all(copy == digest for copy in copies):
            census.large_exact.append(key)
        elif key not in census.lost_after_sns:
            census.large_not_exact.append(key)
