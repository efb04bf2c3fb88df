"""Subscriber stacks as the CLI, the drills and the tests address them: one stack per
subscriber, named after the Disa stack it subscribes to, read from its outputs."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from disa_lambda.consumer import stages

from disa.common.aws import Clients
from disa.common.errors import UserError
from disa.deploy.stacks import described, outputs_of, parameters_of
from disa.operate.redrive import QueueRef

NAME_PATTERN = r"[a-z][a-z0-9-]{0,39}"
_SEPARATOR = "-sub-"


def check_name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise UserError(f"subscriber name {name!r} must start with a letter and be 1-40 lowercase letters, digits or -")
    return name


def stack_name(disa_stack: str, name: str) -> str:
    return f"{disa_stack}{_SEPARATOR}{check_name(name)}"


@dataclass(frozen=True)
class SubscriberInfo:
    name: str
    stack: str
    metric_name: str  # the Subscriber dimension of its latency metrics
    queue: QueueRef
    dead_letter: QueueRef
    consumer_function: str | None
    processed_ids_table: str | None
    dashboard: str
    dead_letter_alarm: str
    oldest_message_alarm: str
    raw_delivery: bool
    filter_policy: str

    @classmethod
    def of(cls, clients: Clients, disa_stack: str, name: str) -> SubscriberInfo:
        stack = stack_name(disa_stack, name)
        description = described(
            clients,
            stack,
            f"no subscriber {name} on stack {disa_stack}; list them with `disa subscribers --stack {disa_stack}`",
        )
        return cls.from_description(name, description)

    @classmethod
    def from_description(cls, name: str, description: dict[str, Any]) -> SubscriberInfo:
        out, params = outputs_of(description), parameters_of(description)
        fifo = out["QueueIsFifo"] == "true"
        return cls(
            name=name,
            stack=description["StackName"],
            metric_name=f"{params['NamePrefix']}-{params['SubscriberName']}",
            queue=QueueRef(out["QueueUrl"], out["QueueArn"], fifo),
            dead_letter=QueueRef(out["DeadLetterQueueUrl"], out["DeadLetterQueueArn"], fifo),
            consumer_function=out.get("ConsumerFunctionName") or None,
            processed_ids_table=out.get("ProcessedIdsTableName") or None,
            dashboard=out["DashboardName"],
            dead_letter_alarm=out["DeadLetterAlarmName"],
            oldest_message_alarm=out["OldestMessageAlarmName"],
            raw_delivery=params.get("RawMessageDelivery", "true") == "true",
            filter_policy=params.get("FilterPolicy", ""),
        )


def subscribers(clients: Clients, disa_stack: str) -> list[SubscriberInfo]:
    """Every subscriber stack of ``disa_stack`` that exists (any status but deleted)."""
    prefix = f"{disa_stack}{_SEPARATOR}"
    found = []
    for page in clients("cloudformation").get_paginator("describe_stacks").paginate():
        for description in page["Stacks"]:
            name = description["StackName"].removeprefix(prefix)
            ours = description["StackName"].startswith(prefix) and re.fullmatch(NAME_PATTERN, name)
            # A stack still being created has no outputs yet; a deleted one is gone.
            if ours and description["StackStatus"] != "DELETE_COMPLETE" and description.get("Outputs"):
                found.append(SubscriberInfo.from_description(name, description))
    return sorted(found, key=lambda s: s.name)


def depth(clients: Clients, queue: QueueRef) -> dict[str, int]:
    """Messages waiting and in flight (approximate, as SQS reports them)."""
    attributes = clients("sqs").get_queue_attributes(
        QueueUrl=queue.url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return {
        "waiting": int(attributes.get("ApproximateNumberOfMessages", 0)),
        "in flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
    }


def latency(
    clients: Clients, subscriber: SubscriberInfo, minutes: int, now: float | None = None
) -> list[dict[str, Any]]:
    """p50/p95/p99 and the count of each stage over the last ``minutes``, from the metrics
    the consumer helper emits (EMF; on the local cloud, engine patch 0006 extracts them).
    Stages without data in the window are left out."""
    end = now if now is not None else time.time()
    period = max(60, minutes * 60)
    rows = []
    cloudwatch = clients("cloudwatch")
    for stage in stages.STAGES:
        points = cloudwatch.get_metric_statistics(
            Namespace=stages.NAMESPACE,
            MetricName=stage.metric,
            Dimensions=[{"Name": stages.DIMENSION, "Value": subscriber.metric_name}],
            StartTime=end - period,
            EndTime=end,
            Period=period,
            Statistics=["SampleCount"],
            ExtendedStatistics=list(stages.PERCENTILES),
            Unit="Milliseconds",
        )["Datapoints"]
        count = sum(int(p.get("SampleCount", 0)) for p in points)
        if not count:
            continue
        # One period spans the window; should the engine split it, the busiest period speaks.
        point = max(points, key=lambda p: p.get("SampleCount", 0))
        extended = point.get("ExtendedStatistics", {})
        rows.append(
            {
                "stage": stage.label,
                "messages": count,
                **{pct: round(extended[pct]) if pct in extended else None for pct in stages.PERCENTILES},
            }
        )
    return rows
