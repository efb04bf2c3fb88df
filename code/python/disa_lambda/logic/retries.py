"""The retry job: claims every due item (FAILED, or PENDING past its lease) and starts its
next attempt, or ends it ABANDONED at the attempt cap."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from disa_lambda.logic import attempts, clock
from disa_lambda.logic.ports import TIME_RESERVE_MS, DueIndexReader, DueStore, Starter
from disa_lambda.logic.validation import find_problem, pipeline_owned_fields
from disa_lambda.models.exceptions import ItemUnpublishable, WorkflowStartFailed
from disa_lambda.models.settings import RetrySettings
from disa_lambda.models.status import DUE_INDEX_SHARDS, Field, Status

QUERY_PAGE_SIZE = 100


@dataclass
class RetryReport:
    due: int = 0
    started: int = 0
    abandoned: int = 0
    rejected: int = 0
    lost_races: int = 0
    start_deferred: int = 0
    truncated: bool = False
    errors: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, int]:
        # PublishFailed is sent as an explicit 0 on every run: the failure alarm then has a
        # datum each period and returns to OK on its own evidence, on AWS and on engines
        # that evaluate alarms only when data arrive.
        return {
            "PublishFailed": 0,
            "ItemsAbandoned": self.abandoned,
            "RetriesStarted": self.started,
            "RetryDue": self.due,
        }


def run(
    settings: RetrySettings,
    index: DueIndexReader,
    store: DueStore,
    workflow: Starter,
    now: Callable[[], float],
    rng: random.Random,
    remaining_ms: Callable[[], int],
) -> RetryReport:
    report = RetryReport()
    for shard in range(DUE_INDEX_SHARDS):
        for due_item in index.due_items(str(shard), int(now()), QUERY_PAGE_SIZE):
            if report.due >= settings.MAX_ITEMS_PER_RUN or remaining_ms() < TIME_RESERVE_MS:
                report.truncated = True
                return report
            report.due += 1
            _retry_one(due_item, settings, store, workflow, now(), rng, report)
    return report


def _retry_one(
    due_item: Mapping[str, Any],
    settings: RetrySettings,
    store: DueStore,
    workflow: Starter,
    now: float,
    rng: random.Random,
    report: RetryReport,
) -> None:
    key = {settings.KEY_ATTRIBUTE_NAME: due_item[settings.KEY_ATTRIBUTE_NAME]}
    status = due_item[Field.STATUS]["S"]
    token = due_item[Field.CLAIM_TOKEN]["S"]
    attempt = int(due_item[Field.ATTEMPT]["N"])
    now_iso = clock.iso(now)
    if attempt >= settings.MAX_ATTEMPTS:
        reason = (
            f"gave up after {attempt} attempts: the last one recorded no outcome within its lease"
            if status == Status.PENDING.value
            else f"gave up after {attempt} attempts"
        )
        if store.finish_unclaimable(key, status, token, Status.ABANDONED, reason, now_iso):
            report.abandoned += 1
        else:
            report.lost_races += 1
        return
    claim = attempts.plan_claim(key, attempt + 1, now, settings, rng)
    item = store.claim_due(key, status, token, claim, now_iso)
    if item is None:
        report.lost_races += 1
        return
    # The item is read again as it is now: an owner may have corrected it since it failed.
    body = {name: value for name, value in item.items() if name not in key}
    problem = find_problem({name: value for name, value in body.items() if name not in pipeline_owned_fields()})
    try:
        if problem is not None:
            raise ItemUnpublishable(problem)
        publish = attempts.publish_parameters(key, body, settings.TOPIC_IS_FIFO, item[Field.ACCEPTED_AT]["S"])
        document = attempts.execution_input(key, claim, publish)
    except ItemUnpublishable as unpublishable:
        store.finish_unclaimable(key, Status.PENDING.value, claim.token, Status.REJECTED, str(unpublishable), now_iso)
        report.rejected += 1
        return
    try:
        workflow.start(attempts.execution_name(key, claim), document)
    except WorkflowStartFailed as error:
        report.start_deferred += 1
        report.errors.append(str(error))
        return
    report.started += 1
