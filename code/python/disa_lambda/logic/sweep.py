"""The sweep: finds items that no stream record brought to the trigger (a disabled mapping,
a record older than the stream's 24 hours, a batch sent to the on-failure queue) and takes
them in as the trigger would.

Each retry run sweeps one segment of the table (the next one each run) from where the last
visit to that segment stopped, within its own time budget, so the whole table is covered
every SWEEP_SEGMENTS runs on small tables and over several rounds on large ones. An item
without a status is marked on first sight and taken in once SWEEP_GRACE_SECONDS have
passed, which leaves fresh inserts to the trigger; if both reach an item, the conditional claim lets only one start it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

from disa_lambda.logic import intake
from disa_lambda.logic.ordering import Sequencer
from disa_lambda.logic.ports import (
    TIME_RESERVE_MS,
    PayloadStore,
    Starter,
    SweepCursors,
    SweepStore,
    UnstatusedScanner,
)
from disa_lambda.models.exceptions import ItemUnwritable
from disa_lambda.models.settings import RetrySettings
from disa_lambda.models.status import Field

REPORTED_UNWRITABLE = 10  # reasons kept in a run's report (its log line); the count is complete


@dataclass
class SweepReport:
    segment: int = -1
    resumed: bool = False
    pages: int = 0
    seen: int = 0
    marked: int = 0
    taken_in: int = 0
    rejected: int = 0
    unwritable: int = 0
    unwritable_reasons: list[str] = field(default_factory=list)
    segment_finished: bool = False
    truncated: bool = False


def segment_for(now: float, settings: RetrySettings) -> int:
    """The segment this run sweeps: one further each scheduled run."""
    return int(now // 60 // settings.RETRY_INTERVAL_MINUTES) % settings.SWEEP_SEGMENTS


def run(
    settings: RetrySettings,
    scanner: UnstatusedScanner,
    store: SweepStore,
    workflow: Starter,
    payload_store: PayloadStore,
    cursors: SweepCursors,
    now: Callable[[], float],
    rng: random.Random,
    remaining_ms: Callable[[], int],
    sequencer: Sequencer | None = None,
) -> SweepReport:
    """Sweep this run's segment from where its last visit stopped, for at most
    SWEEP_SECONDS_PER_RUN, 1 MB pages at a time; the cursor is saved after each page, so a
    large table is covered across visits instead of restarting at the top each time."""
    report = SweepReport()
    if settings.SWEEP_SEGMENTS == 0:
        return report
    started = now()
    report.segment = segment_for(started, settings)
    total = settings.SWEEP_SEGMENTS

    def within_budget() -> bool:
        return now() - started < settings.SWEEP_SECONDS_PER_RUN

    start_key = cursors.sweep_cursor(report.segment, total)
    report.resumed = start_key is not None
    for items, next_key in scanner.pages(report.segment, total, start_key):
        # A page begun is finished even past the budget (only the invocation's reserve
        # stops it), so every visit moves the cursor on: no page can stall the sweep.
        for item in items:
            if remaining_ms() < TIME_RESERVE_MS:
                # This page is read again next visit; marks and claims are conditional.
                report.truncated = True
                return report
            report.seen += 1
            try:
                _sweep_item(item, settings, store, workflow, payload_store, now, rng, report, remaining_ms, sequencer)
            except ItemUnwritable as unwritable:
                # One item no status fits on must not stop the sweep of every other one; the
                # trigger already sent its record to the on-failure queue, whose alarm fires.
                report.unwritable += 1
                if len(report.unwritable_reasons) < REPORTED_UNWRITABLE:
                    report.unwritable_reasons.append(str(unwritable))
        cursors.save_sweep_cursor(report.segment, total, next_key, int(now()))
        report.pages += 1
        if next_key is not None and not within_budget():
            report.truncated = True
            return report
    report.segment_finished = True
    return report


def _sweep_item(
    item: dict,
    settings: RetrySettings,
    store: SweepStore,
    workflow: Starter,
    payload_store: PayloadStore,
    now: Callable[[], float],
    rng: random.Random,
    report: SweepReport,
    remaining_ms: Callable[[], int],
    sequencer: Sequencer | None,
) -> None:
    key = {settings.KEY_ATTRIBUTE_NAME: item[settings.KEY_ATTRIBUTE_NAME]}
    swept_at = item.get(Field.SWEPT_AT, {}).get("N")
    if swept_at is None:
        report.marked += store.mark_swept(key, int(now()))
        return
    if now() - int(swept_at) < settings.SWEEP_GRACE_SECONDS:
        return
    image = {name: value for name, value in item.items() if name != Field.SWEPT_AT}
    outcome = intake.take_in(key, image, settings, store, workflow, payload_store, now(), rng, remaining_ms, sequencer)
    report.taken_in += outcome in (
        intake.IntakeOutcome.STARTED,
        intake.IntakeOutcome.START_DEFERRED,
        intake.IntakeOutcome.WAITING,
    )
    report.rejected += outcome is intake.IntakeOutcome.REJECTED


@dataclass
class TakeoverReport:
    """One invocation's share of a takeover: a segment read from ``start_key`` on until its
    end (``next_key`` None) or the invocation's reserve (``next_key`` where to go on)."""

    segment: int
    segments: int
    pages: int = 0
    seen: int = 0
    taken_in: int = 0
    rejected: int = 0
    unwritable: int = 0
    next_key: dict | None = None  # where the next invocation starts (None: the segment's start)
    done: bool = False  # the whole segment was read


def take_over(
    settings: RetrySettings,
    scanner: UnstatusedScanner,
    store: SweepStore,
    workflow: Starter,
    payload_store: PayloadStore,
    segment: int,
    segments: int,
    start_key: dict | None,
    now: Callable[[], float],
    rng: random.Random,
    remaining_ms: Callable[[], int],
) -> TakeoverReport:
    """A failover's sweep (`disa failover`): every item without a status in one segment,
    taken in at once, with no grace. The region that owned the table until now may have
    left inserts its stream never brought to its trigger, and this region's trigger passed
    over them while it did not own; no one else will take them in before the regular sweep
    comes round (SWEEP_SEGMENTS runs). Claims are conditional, so a segment read twice, or
    an item the trigger reaches too, is started once."""
    report = TakeoverReport(segment=segment, segments=segments)
    for items, next_key in scanner.pages(segment, segments, start_key):
        for item in items:
            if remaining_ms() < TIME_RESERVE_MS:
                report.next_key = start_key  # this page again: claims are conditional
                return report
            report.seen += 1
            key = {settings.KEY_ATTRIBUTE_NAME: item[settings.KEY_ATTRIBUTE_NAME]}
            image = {name: value for name, value in item.items() if name != Field.SWEPT_AT}
            try:
                outcome = intake.take_in(
                    key, image, settings, store, workflow, payload_store, now(), rng, remaining_ms, None
                )
            except ItemUnwritable:
                report.unwritable += 1
                continue
            report.taken_in += outcome in (intake.IntakeOutcome.STARTED, intake.IntakeOutcome.START_DEFERRED)
            report.rejected += outcome is intake.IntakeOutcome.REJECTED
        report.pages += 1
        start_key = next_key
        if next_key is not None and remaining_ms() < 2 * TIME_RESERVE_MS:
            report.next_key = next_key
            return report
    report.done = True
    return report
