"""The consumer helper: a subscriber's Lambda handler around a function of one message.

Powertools does the batch and idempotency work: partial batch responses (on a FIFO queue
only the failing group's later messages wait), and one processing per insert, keyed by the
``disa.insertId`` every copy of an insert carries, on the subscriber's processed-ids table.
The helper adds the per-stage latency of each processed message as embedded-metric log lines,
and reads the body of a message stored in S3 (the extended clients' pointer) before the
handler sees it.

Two regions: both regions' queues receive every message, and only the region the ownership
record names (dal/ownership.py) processes. A consumer in the other region that processed would
race the owner's on the global processed-ids table, whose conditional puts are checked in each
region alone (last writer wins), so the same insert could be processed in both. Its mapping
is meant to be off (`disa failover` turns it off and on), the messages waiting in its queue
for a failover; a batch it receives anyway (a mapping turned on before the record moved, or
left on) is failed back whole. Each such return counts as a receive, so a mapping left on
moves the messages to the dead-letter queue after MaxReceiveCount receives, from where
`disa redrive` returns them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from disa_lambda.consumer import latency, stages
from disa_lambda.consumer.message import Message, parse
from disa_lambda.consumer.payloads import PayloadReader
from disa_lambda.dal.clients import SDK_CONFIG
from disa_lambda.dal.ownership import Ownership
from disa_lambda.models.exceptions import SettingsError, StoreUnavailable
from disa_lambda.models.settings import names_in

# Longer than a dead-letter queue keeps a message (14 days at most), so a copy redriven
# late is still known.
DEFAULT_RETENTION_SECONDS = 1_296_000
KEY_PREFIX = "disa-consumer"  # stable across handler changes: a fixed consumer still knows what was done

Handler = Callable[[Message], Any]


@dataclass(frozen=True)
class Settings:
    subscriber: str
    processed_ids_table: str
    fifo: bool
    retention_seconds: int
    payload_buckets: frozenset[str] = frozenset()  # buckets whose stored bodies it reads
    payload_bucket_owner: str | None = None
    # Two regions: the table naming the region that processes, the region it names before any
    # failover, and this function's region. The table's name is empty in one region.
    ownership_table: str = ""
    primary_region: str = ""
    region: str = ""

    @classmethod
    def from_environment(cls) -> Settings:
        ownership, primary = os.environ.get("OWNERSHIP_TABLE_NAME", ""), os.environ.get("PRIMARY_REGION", "")
        if ownership and not primary:
            raise SettingsError("OWNERSHIP_TABLE_NAME is set but PRIMARY_REGION is not: two regions need both")
        return cls(
            subscriber=os.environ["SUBSCRIBER_NAME"],
            processed_ids_table=os.environ["PROCESSED_IDS_TABLE_NAME"],
            fifo=os.environ.get("QUEUE_IS_FIFO", "false") == "true",
            retention_seconds=int(os.environ.get("PROCESSED_ID_RETENTION_SECONDS", DEFAULT_RETENTION_SECONDS)),
            payload_buckets=names_in(os.environ.get("PAYLOAD_BUCKETS", "")),
            payload_bucket_owner=os.environ.get("PAYLOAD_BUCKET_OWNER") or None,
            ownership_table=ownership,
            primary_region=primary,
            region=os.environ.get("AWS_REGION", ""),  # Lambda sets it
        )


class Consumer:
    def __init__(
        self, settings: Settings, dynamodb: Any = None, clock: Callable[[], float] = time.time, s3: Any = None
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._payloads = PayloadReader(settings.payload_buckets, settings.payload_bucket_owner, s3)
        self._config = IdempotencyConfig(
            event_key_jmespath="key", expires_after_seconds=settings.retention_seconds, raise_on_no_idempotency_key=True
        )
        dynamodb = dynamodb or boto3.client("dynamodb", config=SDK_CONFIG)
        store = DynamoDBPersistenceLayer(table_name=settings.processed_ids_table, boto3_client=dynamodb)
        self._ownership = Ownership(settings.ownership_table, settings.region, settings.primary_region, client=dynamodb)
        self._once = idempotent_function(
            data_keyword_argument="copy", persistence_store=store, config=self._config, key_prefix=KEY_PREFIX
        )(self._run)
        self.logger = Logger()
        # service="": a `service` dimension would keep the metrics off the dashboard, which
        # charts Subscriber alone (stages.py).
        self.metrics = Metrics(namespace=stages.NAMESPACE, service="")
        self.metrics.set_default_dimensions(**{stages.DIMENSION: settings.subscriber})
        self._current: tuple[Handler, Message] | None = None
        self._ran = False

    @classmethod
    def from_environment(cls) -> Consumer:
        return cls(Settings.from_environment())

    def handler(self, function: Handler) -> Callable[[dict[str, Any], Any], PartialItemFailureResponse]:
        """The Lambda entry point for ``function``, which processes one message and raises
        to fail it (it then returns to the queue, and after the queue's maxReceiveCount
        receives, to the dead-letter queue)."""

        def lambda_handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
            self._config.register_lambda_context(context)  # an in-progress record expires with this invocation
            if not self._owns():
                return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event.get("Records", [])]}
            processor = (
                SqsFifoPartialProcessor(skip_group_on_error=True)
                if self.settings.fifo
                else BatchProcessor(EventType.SQS)
            )
            # A batch whose every message failed is answered like any other (its failures
            # listed), not raised: the messages return to the queue either way, and a raise
            # would count as a Lambda error besides.
            processor.raise_on_entire_batch_failure = False
            try:
                return process_partial_response(
                    event,
                    partial(self._process, function),
                    processor,
                    context,  # type: ignore[arg-type]
                )
            finally:
                self.metrics.flush_metrics()

        return lambda_handler

    def _owns(self) -> bool:
        """Whether this region processes; never when it cannot tell."""
        try:
            if self._ownership.owns():
                return True
            record = self._ownership.record()  # the one owns() read, cached
        except StoreUnavailable as error:
            self.logger.warning(
                "batch not processed: the ownership record could not be read; it returns to the queue",
                extra={"region": self._ownership.region, "reason": str(error)},
            )
            return False
        self.logger.warning(
            "batch not processed: another region owns; it returns to the queue. Disable this "
            "region's consumer mapping (`disa failover` does)",
            extra={"region": self._ownership.region, "owner": record.owner, "epoch": record.epoch},
        )
        return False

    def _process(self, function: Handler, record: SQSRecord) -> None:
        message = parse(record.raw_event)
        if message.insert_id is None:
            self.logger.warning(
                "message without disa.insertId: deduplicated by its SQS message id only",
                extra={"sqs_message_id": message.sqs_message_id},
            )
        started = self._now_ms()
        self._current, self._ran = (function, message), False
        try:
            self._once(copy={"key": message.idempotency_key})
        except Exception as error:
            self.metrics.add_metric(name=stages.FAILED, unit=MetricUnit.Count, value=1)
            self.logger.warning(
                "message failed",
                extra={
                    "insert_id": message.insert_id,
                    "sqs_message_id": message.sqs_message_id,
                    "receive_count": message.receive_count,
                    "reason": f"{type(error).__name__}: {error}",
                },
            )
            raise
        finally:
            self._current = None
        if not self._ran:
            self.metrics.add_metric(name=stages.DUPLICATES, unit=MetricUnit.Count, value=1)
            self.logger.info("duplicate skipped", extra={"insert_id": message.insert_id})
            return
        self.metrics.add_metric(name=stages.PROCESSED, unit=MetricUnit.Count, value=1)
        for metric, milliseconds in latency.measure(message, started, self._now_ms()).items():
            self.metrics.add_metric(name=metric, unit=MetricUnit.Milliseconds, value=milliseconds)

    def _run(self, copy: dict[str, str]) -> dict[str, str]:
        """Runs once per idempotency key; a second copy gets the stored result instead."""
        assert self._current is not None
        function, message = self._current
        self._ran = True
        # Read only for a copy that is processed: a duplicate costs no S3 request.
        function(self._payloads.resolve(message))
        return {"key": copy["key"]}

    def _now_ms(self) -> int:
        return round(self._clock() * 1000)
