"""The retry job: claims every due item (FAILED, or PENDING past its lease) and starts its
next attempt, or ends it ABANDONED at the attempt cap."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable, Mapping

from disa_lambda.logic import clock, dedup, fanout, launch
from disa_lambda.logic.ordering import Sequencer
from disa_lambda.logic.ports import TIME_RESERVE_MS, DueIndexReader, DueStore, PayloadStore, ShardLeases, Starter
from disa_lambda.models.claim import RightAsRead
from disa_lambda.models.metrics import Count
from disa_lambda.models.settings import RetrySettings
from disa_lambda.models.status import DUE_INDEX_SHARDS, Field, Status

QUERY_PAGE_SIZE = 100
REPORTED_ERRORS = 10  # error messages kept in a run's report (its log line); counts are complete


class RetryOutcome(StrEnum):
    """What became of one due item; each value names the RetryReport count it adds to."""

    STARTED = "started"
    ABANDONED = "abandoned"
    REJECTED = "rejected"
    LOST_RACE = "lost_races"
    START_DEFERRED = "start_deferred"
    STILL_WAITING = "still_waiting"  # FIFO: a WAITING item whose turn has not come
    STILL_PUBLISHING = "still_publishing"  # FIFO: past its lease, but its execution may still publish


@dataclass
class RetryReport:
    due: int = 0
    started: int = 0
    abandoned: int = 0
    rejected: int = 0
    lost_races: int = 0
    start_deferred: int = 0
    still_waiting: int = 0
    still_publishing: int = 0
    failed: int = 0
    shards_done: list[int] = field(default_factory=list)
    shards_busy: list[int] = field(default_factory=list)
    truncated: bool = False
    errors: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, int]:
        # PublishFailed and StartsDeferred are sent as explicit 0s on every run: their alarms
        # then have a datum each period and return to OK on their own evidence, on AWS and
        # on engines that evaluate alarms only when data arrive.
        return {
            Count.PUBLISH_FAILED: 0,
            Count.ITEMS_ABANDONED: self.abandoned,
            Count.ITEMS_REJECTED: self.rejected,
            Count.STARTS_DEFERRED: self.start_deferred,
            Count.RETRIES_STARTED: self.started,
            Count.RETRY_DUE: self.due,
        }

    def count(self, outcome: RetryOutcome | BaseException) -> None:
        if isinstance(outcome, fanout.NotStarted):
            self.truncated = True
            return
        self.due += 1
        if isinstance(outcome, BaseException):
            # The item keeps its state (still due): the next run tries it again.
            self.failed += 1
            self._note(str(outcome))
            return
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)

    def _note(self, error: str) -> None:
        if len(self.errors) < REPORTED_ERRORS:
            self.errors.append(error)


def shard_order(rng: random.Random) -> list[int]:
    """Every shard once, starting at a random one: no shard is always last when a run is
    cut short, and runs that overlap start apart."""
    first = rng.randrange(DUE_INDEX_SHARDS)
    return [(first + step) % DUE_INDEX_SHARDS for step in range(DUE_INDEX_SHARDS)]


def run(
    settings: RetrySettings,
    index: DueIndexReader,
    store: DueStore,
    workflow: Starter,
    payload_store: PayloadStore,
    leases: ShardLeases,
    now: Callable[[], float],
    rng: random.Random,
    remaining_ms: Callable[[], int],
    sequencer: Sequencer | None = None,
) -> RetryReport:
    """Redrive every due item of every shard this run can hold.

    A run holds a shard (a conditional write in the jobs table) while it works on it, so
    runs that overlap (a backlog outlasts the schedule's interval) take different shards
    and add up instead of racing for the same items. Within a shard, a page of due items
    is claimed and started concurrently by WORKERS threads."""
    report = RetryReport()
    owner = uuid.UUID(int=rng.getrandbits(128), version=4).hex

    def may_start() -> bool:
        return remaining_ms() >= TIME_RESERVE_MS and report.due < settings.MAX_ITEMS_PER_RUN

    for shard in shard_order(rng):
        if not may_start():
            report.truncated = True
            break
        held_until = int(now()) + remaining_ms() // 1000 + 1
        if not leases.take_shard(str(shard), owner, int(now()), held_until):
            report.shards_busy.append(shard)
            continue
        try:
            _retry_shard(
                str(shard),
                settings,
                index,
                store,
                workflow,
                payload_store,
                remaining_ms,
                now,
                rng,
                report,
                may_start,
                sequencer,
            )
        finally:
            leases.release_shard(str(shard), owner)
        if report.truncated:
            break
        report.shards_done.append(shard)
    return report


def _retry_shard(
    shard: str,
    settings: RetrySettings,
    index: DueIndexReader,
    store: DueStore,
    workflow: Starter,
    payload_store: PayloadStore,
    time_left_ms: Callable[[], int],
    now: Callable[[], float],
    rng: random.Random,
    report: RetryReport,
    may_start: Callable[[], bool],
    sequencer: Sequencer | None,
) -> None:
    key_name = settings.KEY_ATTRIBUTE_NAME
    for page in index.due_pages(shard, int(now()), QUERY_PAGE_SIZE):
        # Every item of a page is a different key, so the page runs fully in parallel.
        outcomes = fanout.run_grouped(
            page,
            group_of=lambda due_item: json.dumps(due_item[key_name], sort_keys=True),
            work=lambda due_item: _retry_one(
                due_item, settings, store, workflow, payload_store, now(), rng, time_left_ms, sequencer
            ),
            workers=settings.WORKERS,
            may_start=may_start,
        )
        for outcome in outcomes:
            report.count(outcome)
        if report.truncated or not may_start():
            report.truncated = True
            return


def _retry_one(
    due_item: Mapping[str, Any],
    settings: RetrySettings,
    store: DueStore,
    workflow: Starter,
    payload_store: PayloadStore,
    now: float,
    rng: random.Random,
    time_left_ms: Callable[[], int],
    sequencer: Sequencer | None,
) -> RetryOutcome:
    key = {settings.KEY_ATTRIBUTE_NAME: due_item[settings.KEY_ATTRIBUTE_NAME]}
    status = due_item[Field.STATUS]["S"]
    token = due_item[Field.CLAIM_TOKEN]["S"]
    attempt = int(due_item[Field.ATTEMPT]["N"])
    now_iso = clock.iso(now)
    if status == Status.WAITING.value and sequencer is not None:
        # (A WAITING item on a stack since made standard falls through and is published now.)
        promoted = sequencer.recheck(key, token, now)
        return RetryOutcome.STILL_WAITING if promoted is None else _OUTCOME_OF[promoted]
    current = None
    right = None
    if settings.TOPIC_IS_FIFO and status == Status.PENDING.value:
        # Its lease is short (logic/dedup.py): take it over only once its execution, if it
        # took its publish right, can publish no more. An execution that really started may
        # take its right after this read: the claim is conditional on the right as read.
        current = store.read(key)
        if current is not None and not dedup.may_take_over(current, now):
            return RetryOutcome.STILL_PUBLISHING
        if current is not None:
            right = RightAsRead(current.get(Field.PUBLISH_RIGHT_AT, {}).get("S"))
    if attempt >= settings.MAX_ATTEMPTS:
        reason = (
            f"gave up after {attempt} attempts: the last one recorded no outcome within its lease"
            if status == Status.PENDING.value
            else f"gave up after {attempt} attempts"
        )
        if settings.TOPIC_IS_FIFO:
            reason += dedup.doubt_note(current or store.read(key) or {})
        if store.finish_unclaimable(key, status, token, Status.ABANDONED, reason, now_iso, right=right):
            return RetryOutcome.ABANDONED
        return RetryOutcome.LOST_RACE
    launched = launch.relaunch(
        key, status, token, attempt, settings, store, workflow, payload_store, now, rng, time_left_ms, right
    )
    return _OUTCOME_OF[launched]


_OUTCOME_OF = {
    launch.Launched.STARTED: RetryOutcome.STARTED,
    launch.Launched.REJECTED: RetryOutcome.REJECTED,
    # Not an attempt: the claim is set back so the next run repeats this attempt number.
    launch.Launched.DEFERRED: RetryOutcome.START_DEFERRED,
    launch.Launched.ABANDONED: RetryOutcome.ABANDONED,
    launch.Launched.LOST_RACE: RetryOutcome.LOST_RACE,
}
