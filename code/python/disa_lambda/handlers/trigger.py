"""Stream trigger: each DynamoDB INSERT record becomes a REJECTED item or a started execution
(on FIFO topics, a WAITING one until its group's turn comes; the MODIFY that makes an item of
a group final passes the turn on).

The records of a batch are taken in concurrently (WORKERS threads, records of one key in
stream order). The partial batch response reports only records whose item could not be
written; a record is never failed for bad content (that is REJECTED) nor for a failed start
(the claim is deferred to the retry job), so one poison record cannot block the shard.
Records not begun before the invocation's reserve are reported too and come back in the
next batch, so a batch never outlives the function's timeout.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import Any, Callable

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from disa_lambda.dal.groups import GroupLedger
from disa_lambda.dal.items import ItemStore
from disa_lambda.dal.ownership import Ownership
from disa_lambda.dal.payloads import PayloadBucket
from disa_lambda.dal.workflow import Workflow
from disa_lambda.logic import clock, fanout, intake
from disa_lambda.logic.ordering import Sequencer, sequencer_for
from disa_lambda.logic.ports import TIME_RESERVE_MS
from disa_lambda.models.exceptions import ItemUnwritable
from disa_lambda.models.metrics import DIMENSION, Count
from disa_lambda.models.settings import TriggerSettings
from disa_lambda.observability import logger

_rng = random.SystemRandom()


@dataclass(frozen=True)
class TriggerDependencies:
    """What the trigger works with, built once per execution environment."""

    settings: TriggerSettings
    store: ItemStore
    workflow: Workflow
    payloads: PayloadBucket
    groups: GroupLedger
    ownership: Ownership
    metrics: EphemeralMetrics

    def sequencer(self, time_left_ms: Callable[[], int]) -> Sequencer | None:
        return sequencer_for(self.settings, self.groups, self.store, self.workflow, self.payloads, _rng, time_left_ms)


@cache
def dependencies() -> TriggerDependencies:
    settings = TriggerSettings.from_env()
    return TriggerDependencies(
        settings,
        ItemStore(settings.TABLE_NAME),
        Workflow(settings.STATE_MACHINE_ARN),
        PayloadBucket(settings.PAYLOAD_BUCKET, settings.PAYLOAD_BUCKET_OWNER),
        GroupLedger(settings.GROUPS_TABLE_NAME),
        Ownership(settings.OWNERSHIP_TABLE_NAME, os.environ["AWS_REGION"], settings.PRIMARY_REGION),
        _metrics(settings),
    )


def _metrics(settings: TriggerSettings) -> EphemeralMetrics:
    # Ephemeral: Powertools' Metrics share their dimensions across instances in a process.
    # service="": Powertools would add a `service` dimension, and the alarms and the dashboard
    # read the one StackName dimension (models/metrics.py).
    metrics = EphemeralMetrics(namespace=settings.METRIC_NAMESPACE, service="")
    metrics.set_default_dimensions(**{DIMENSION: settings.METRIC_STACK_NAME})
    return metrics


# What each outcome of a record adds to the batch's metrics (models/metrics.py).
_COUNTED = {
    intake.IntakeOutcome.STARTED: (Count.ITEMS_ACCEPTED,),
    intake.IntakeOutcome.WAITING: (Count.ITEMS_ACCEPTED,),
    intake.IntakeOutcome.START_DEFERRED: (Count.ITEMS_ACCEPTED, Count.STARTS_DEFERRED),
    intake.IntakeOutcome.REJECTED: (Count.ITEMS_REJECTED,),
    intake.IntakeOutcome.ABANDONED: (Count.ITEMS_ABANDONED,),
}


def _report(metrics: EphemeralMetrics, tally: Counter) -> None:
    counts = Counter({Count.ITEMS_ACCEPTED: 0, Count.ITEMS_REJECTED: 0, Count.STARTS_DEFERRED: 0})
    for outcome, times in tally.items():
        for name in _COUNTED.get(outcome, ()):
            counts[name] += times
    for name, value in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    metrics.flush_metrics()


def take_in(record: dict[str, Any], time_left_ms: Callable[[], int]) -> intake.IntakeOutcome:
    deps = dependencies()
    outcome = intake.handle_insert(
        record,
        deps.settings,
        deps.store,
        deps.workflow,
        deps.payloads,
        clock.now(),
        _rng,
        time_left_ms,
        deps.sequencer(time_left_ms),
    )
    if outcome in (intake.IntakeOutcome.REJECTED, intake.IntakeOutcome.START_DEFERRED):
        # Only what a person may look for is logged per item; the batch gets one summary line.
        logger.info("item taken in", outcome=outcome.value, key=record["dynamodb"]["Keys"])
    return outcome


def _key_of(record: dict[str, Any]) -> str:
    return json.dumps((record.get("dynamodb") or {}).get("Keys"), sort_keys=True)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = dependencies()  # settings errors surface once, at the start of the batch
    settings, records = deps.settings, event.get("Records", [])
    if not deps.ownership.owns():
        # Two regions: the owner's trigger takes these items in from its own stream; a write
        # here would race its claims (README, "Two regions").
        logger.info("batch left to the owning region", records=len(records), owner=deps.ownership.record().owner)
        return {"batchItemFailures": []}
    outcomes = fanout.run_grouped(
        records,
        group_of=_key_of,
        work=lambda record: take_in(record, context.get_remaining_time_in_millis),
        workers=settings.WORKERS,
        # Ownership is read again (cached 5 s) before each record: a batch begun just before a
        # failover stops within seconds of the record reaching this region, and its records
        # not begun come back to a batch that leaves them to the new owner.
        may_start=lambda: context.get_remaining_time_in_millis() >= TIME_RESERVE_MS and deps.ownership.owns(),
    )
    failures, tally = [], Counter()
    for record, outcome in zip(records, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
            tally[type(outcome).__name__] += 1
            if not isinstance(outcome, fanout.NotStarted):
                # Reported as this record's failure: the mapping cuts the batch there and,
                # after its retries, describes it on the on-failure queue (alarmed).
                message = "item cannot take a status" if isinstance(outcome, ItemUnwritable) else "record failed"
                logger.error(message, key=record["dynamodb"].get("Keys"), reason=str(outcome))
        else:
            tally[outcome] += 1
    logger.info("batch taken in", records=len(records), **{str(name): n for name, n in tally.items()})
    _report(deps.metrics, tally)
    return {"batchItemFailures": failures}
