"""The retry job's readings at the end of each run (models/metrics.py Gauge): items in flight
per status, the age of the oldest PENDING, FAILED and WAITING item (the last is what the
groups-stalled alarm reads), and the ABANDONED items that wait for a person, which the
abandoned alarm stays in ALARM on until none is left."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

from disa_lambda.logic.ports import BacklogReader
from disa_lambda.models.metrics import Gauge
from disa_lambda.models.status import Field, Status

# Up to this many 1 MB pages per shard and index (8 shards): about 40,000 in-flight items per
# page budget are counted exactly; past that the gauges are lower bounds (logged), and a run
# reads at most 8 x 2 x PAGES_PER_SHARD MB.
PAGES_PER_SHARD = 2
# The oldest item is looked for among this many per status: those with the most attempts and,
# among equals, the earliest due time (WAITING: the latest); the due index holds no acceptedAt.
AGE_CANDIDATES = 20


def read(backlog: BacklogReader, key_name: str, now: float) -> tuple[dict[str, float], bool]:
    """The gauges, and whether every count is exact."""
    in_flight = backlog.in_flight(PAGES_PER_SHARD)
    waiting = backlog.abandoned_waiting(PAGES_PER_SHARD)
    # An item whose dueAt moved while its shard was read page by page (a claim, a failure) may
    # be read twice: counted once, and named once in the BatchGetItem, which refuses duplicates.
    latest = {json.dumps(entry[key_name], sort_keys=True): entry for entry in in_flight.items}
    by_status: dict[str, list[dict[str, Any]]] = {}
    for entry in latest.values():
        by_status.setdefault(entry.get(Field.STATUS, {}).get("S", ""), []).append(entry)
    counts = Counter({status: len(entries) for status, entries in by_status.items()})
    readings: dict[str, float] = {
        Gauge.PENDING_ITEMS: counts[Status.PENDING],
        Gauge.FAILED_ITEMS: counts[Status.FAILED],
        Gauge.WAITING_ITEMS: counts[Status.WAITING],
        Gauge.ABANDONED_WAITING: waiting.count,
        Gauge.OLDEST_PENDING_AGE: _oldest_age(backlog, key_name, by_status.get(Status.PENDING, []), now),
        Gauge.OLDEST_FAILED_AGE: _oldest_age(backlog, key_name, by_status.get(Status.FAILED, []), now),
        Gauge.OLDEST_WAITING_AGE: _oldest_age(
            backlog, key_name, by_status.get(Status.WAITING, []), now, latest_due_first=True
        ),
    }
    return readings, in_flight.complete and waiting.complete


def _oldest_age(
    backlog: BacklogReader, key_name: str, entries: list[dict[str, Any]], now: float, latest_due_first: bool = False
) -> float:
    """``latest_due_first``: WAITING items, all at attempt 0, are checked again the less often
    the longer they have waited (logic/ordering.py), so those due last have mostly waited
    longest. An old one is missed while more than AGE_CANDIDATES items are due after it, as in
    the last RetryBaseDelaySeconds before each of its checks when many younger ones wait: the
    groups-stalled alarm looks at 3 periods, so such a gap does not return it to OK."""
    if not entries:
        return 0.0

    def order(entry: dict[str, Any]) -> tuple[int, int]:
        due = int(entry[Field.DUE_AT]["N"])
        return (-int(entry[Field.ATTEMPT]["N"]), -due if latest_due_first else due)

    candidates = sorted(entries, key=order)
    keys = [{key_name: entry[key_name]} for entry in candidates[:AGE_CANDIDATES]]
    accepted = backlog.accepted_at(keys)
    if not accepted:
        return 0.0
    oldest = min(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() for stamp in accepted)
    return max(0.0, round(now - oldest, 1))
