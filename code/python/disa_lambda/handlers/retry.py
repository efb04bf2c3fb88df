"""Scheduled retry job: redrives every due item, then reports one batch of metrics."""

from __future__ import annotations

import random
from dataclasses import asdict
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from disa_lambda.dal.due_index import DueIndex
from disa_lambda.dal.items import ItemStore
from disa_lambda.dal.metrics import MetricsSink
from disa_lambda.dal.unstatused import UnstatusedItems
from disa_lambda.dal.workflow import Workflow
from disa_lambda.logic import clock, retries, sweep
from disa_lambda.models.settings import RetrySettings
from disa_lambda.observability import logger

_rng = random.SystemRandom()


@cache
def _dependencies() -> tuple[RetrySettings, DueIndex, UnstatusedItems, ItemStore, Workflow, MetricsSink]:
    settings = RetrySettings.from_env()
    return (
        settings,
        DueIndex(settings.TABLE_NAME),
        UnstatusedItems(settings.TABLE_NAME),
        ItemStore(settings.TABLE_NAME),
        Workflow(settings.STATE_MACHINE_ARN),
        MetricsSink(settings.METRIC_NAMESPACE, settings.METRIC_STACK_NAME),
    )


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings, index, scanner, store, workflow, metrics = _dependencies()
    report = retries.run(settings, index, store, workflow, clock.now, _rng, context.get_remaining_time_in_millis)
    swept = sweep.run(settings, scanner, store, workflow, clock.now, _rng, context.get_remaining_time_in_millis)
    metrics.put_counts({**report.metrics(), "ItemsSwept": swept.taken_in + swept.rejected})
    result = {**asdict(report), "sweep": asdict(swept)}
    logger.info("retry run finished", **result)
    return result
