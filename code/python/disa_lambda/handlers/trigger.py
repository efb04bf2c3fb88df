"""Stream trigger: each DynamoDB INSERT record becomes a REJECTED item or a started execution.

Partial batch responses report only records whose item could not be written; a record
is never failed for bad content (that is REJECTED) nor for a failed start (the claim's
lease hands it to the retry job), so one poison record cannot block the shard.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from disa_lambda.dal.items import ItemStore
from disa_lambda.dal.workflow import Workflow
from disa_lambda.logic import clock, intake
from disa_lambda.models.exceptions import ItemUnwritable
from disa_lambda.models.settings import TriggerSettings
from disa_lambda.observability import logger

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
_rng = random.SystemRandom()


@dataclass(frozen=True)
class TriggerDependencies:
    """What the trigger works with, built once per execution environment."""

    settings: TriggerSettings
    store: ItemStore
    workflow: Workflow


@cache
def dependencies() -> TriggerDependencies:
    settings = TriggerSettings.from_env()
    return TriggerDependencies(settings, ItemStore(settings.TABLE_NAME), Workflow(settings.STATE_MACHINE_ARN))


def record_handler(record: DynamoDBRecord) -> str:
    deps = dependencies()
    try:
        outcome = intake.handle_insert(record.raw_event, deps.settings, deps.store, deps.workflow, clock.now(), _rng)
    except ItemUnwritable as unwritable:
        # Reported as this record's failure: the mapping bisects the batch down to it and,
        # after its retries, describes it on the on-failure queue (alarmed).
        logger.error("item cannot take a status", reason=str(unwritable))
        raise
    logger.info("item taken in", outcome=outcome.value, key=record.raw_event["dynamodb"]["Keys"])
    return outcome.value


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    dependencies()  # settings errors surface once, at the start of the batch
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
