"""Scheduled retry job: redrives every due item, then reports one batch of metrics: its
counts, its heartbeat and its readings of the backlog (logic/gauges.py).

Two regions: only the owning region redrives (the other only reports its heartbeat and
readings, which are of the same global table), and `disa failover` invokes it with a takeover
event to sweep a segment for the items the old owner left.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any, Callable

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError

from disa_lambda.dal.backlog import Backlog
from disa_lambda.dal.due_index import DueIndex
from disa_lambda.dal.groups import GroupLedger
from disa_lambda.dal.items import ItemStore
from disa_lambda.dal.job_state import JobState
from disa_lambda.dal.metrics import MetricsSink
from disa_lambda.dal.ownership import Ownership
from disa_lambda.dal.payloads import PayloadBucket
from disa_lambda.dal.unstatused import UnstatusedItems
from disa_lambda.dal.workflow import Workflow
from disa_lambda.logic import clock, gauges, retries, sweep
from disa_lambda.logic.ordering import Sequencer, sequencer_for
from disa_lambda.models.exceptions import StoreUnavailable
from disa_lambda.models.metrics import Count
from disa_lambda.models.ownership import NO_OWNER
from disa_lambda.models.settings import RetrySettings
from disa_lambda.observability import logger

_rng = random.SystemRandom()
# The readings take at most 16 Query pages and 3 BatchGetItem calls (logic/gauges.py); with
# the SDK's timeouts and retries (dal/clients.py) that fits in this much of the run.
READINGS_RESERVE_MS = 60_000
TAKEOVER = "takeover"  # {"takeover": {"segment": i, "segments": n, "startKey": key or null}}


@dataclass(frozen=True)
class RetryDependencies:
    """What the retry job works with, built once per execution environment."""

    settings: RetrySettings
    due_index: DueIndex
    unstatused: UnstatusedItems
    store: ItemStore
    workflow: Workflow
    payloads: PayloadBucket
    metrics: MetricsSink
    job_state: JobState
    groups: GroupLedger
    ownership: Ownership
    backlog: Backlog

    def sequencer(self, time_left_ms: Callable[[], int]) -> Sequencer | None:
        return sequencer_for(self.settings, self.groups, self.store, self.workflow, self.payloads, _rng, time_left_ms)


@cache
def dependencies() -> RetryDependencies:
    settings = RetrySettings.from_env()
    return RetryDependencies(
        settings=settings,
        due_index=DueIndex(settings.TABLE_NAME),
        unstatused=UnstatusedItems(settings.TABLE_NAME),
        store=ItemStore(settings.TABLE_NAME),
        workflow=Workflow(settings.STATE_MACHINE_ARN),
        payloads=PayloadBucket(settings.PAYLOAD_BUCKET, settings.PAYLOAD_BUCKET_OWNER),
        metrics=MetricsSink(settings.METRIC_NAMESPACE, settings.METRIC_STACK_NAME),
        job_state=JobState(settings.JOB_STATE_TABLE_NAME),
        groups=GroupLedger(settings.GROUPS_TABLE_NAME),
        ownership=Ownership(settings.OWNERSHIP_TABLE_NAME, os.environ["AWS_REGION"], settings.PRIMARY_REGION),
        backlog=Backlog(settings.TABLE_NAME, settings.KEY_ATTRIBUTE_NAME),
    )


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = dependencies()

    def remaining_ms() -> int:
        # A run that stops owning (a failover) stops as if out of time, at the next item:
        # what it has not claimed is the new owner's. Ownership is cached 5 s.
        return context.get_remaining_time_in_millis() if deps.ownership.owns() else 0

    if TAKEOVER in event:
        return _take_over(deps, event[TAKEOVER], remaining_ms) if deps.ownership.owns() else _skipped(deps)
    if not deps.ownership.owns():
        # The passive region beats too, so its retry-job-stopped alarm means its job is
        # broken; but while nobody owns (a failover left half done) neither region does,
        # and the alarm says so in both instead of OK.
        if deps.ownership.record().owner != NO_OWNER:
            report_run(deps, {}, context.get_remaining_time_in_millis)
        return _skipped(deps)
    sweep_budget_ms = 1000 * deps.settings.SWEEP_SECONDS_PER_RUN if deps.settings.SWEEP_SEGMENTS else 0

    def left_for_retries() -> int:
        # The sweep keeps its own budget: a backlog of retries cannot starve it.
        return remaining_ms() - sweep_budget_ms

    report = retries.run(
        deps.settings,
        deps.due_index,
        deps.store,
        deps.workflow,
        deps.payloads,
        deps.job_state,
        clock.now,
        _rng,
        left_for_retries,
        deps.sequencer(left_for_retries),
    )
    swept = sweep.run(
        deps.settings,
        deps.unstatused,
        deps.store,
        deps.workflow,
        deps.payloads,
        deps.job_state,
        clock.now,
        _rng,
        remaining_ms,
        deps.sequencer(remaining_ms),
    )
    counts = report.metrics()
    counts[Count.ITEMS_REJECTED] += swept.rejected
    counts[Count.ITEMS_SWEPT] = swept.taken_in + swept.rejected
    readings = report_run(deps, counts, context.get_remaining_time_in_millis)
    result = {**asdict(report), "sweep": asdict(swept), "readings": readings}
    logger.info("retry run finished", **result)
    return result


def report_run(deps: RetryDependencies, counts: dict[str, int], remaining_ms: Callable[[], int]) -> dict[str, float]:
    """The run's counts and heartbeat first, in one PutMetricData, so that no slow read can
    cost them; then, with time left, the backlog's readings in a second one. Readings that
    could not be taken are missing, which the abandoned alarm keeps its state through."""
    deps.metrics.put({**counts, Count.RETRY_JOB_RUNS: 1})
    if remaining_ms() < READINGS_RESERVE_MS:
        logger.warning("backlog readings skipped: too little of this run is left", remaining_ms=remaining_ms())
        return {}
    try:
        readings, exact = gauges.read(deps.backlog, deps.settings.KEY_ATTRIBUTE_NAME, clock.now())
    except (StoreUnavailable, BotoCoreError) as error:
        logger.warning("backlog readings skipped", reason=str(error))
        return {}
    if not exact:
        logger.warning("backlog readings are lower bounds: a shard held more than the page budget")
    deps.metrics.put(readings)
    return readings


def _skipped(deps: RetryDependencies) -> dict[str, Any]:
    owner = deps.ownership.record().owner
    if owner == NO_OWNER:
        logger.warning("retry run skipped: nobody owns publishing; finish the failover (`disa failover --to REGION`)")
    else:
        logger.info("retry run skipped: another region owns publishing", owner=owner)
    return {"skipped": True, "owner": owner}


def _take_over(deps: RetryDependencies, request: dict[str, Any], remaining_ms: Callable[[], int]) -> dict[str, Any]:
    segments = int(request["segments"])
    segment = int(request["segment"])
    if not 0 <= segment < segments:
        raise ValueError(f"takeover segment {segment} is not in 0..{segments - 1}")
    report = sweep.take_over(
        deps.settings,
        deps.unstatused,
        deps.store,
        deps.workflow,
        deps.payloads,
        segment,
        segments,
        request.get("startKey"),
        clock.now,
        _rng,
        remaining_ms,
    )
    result = asdict(report)
    logger.info("takeover sweep finished", **{k: v for k, v in result.items() if k != "next_key"})
    return {"nextKey": result.pop("next_key"), **result}  # done False: invoke again from nextKey
