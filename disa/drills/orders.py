"""Seed 002's orders through a subscriber, shared by `disa demo` and the end-to-end tests:
order items of which a share are poison pills (no ``store_id``), what the sample consumer
processed (read from its log), and what waits in a dead-letter queue (read without
consuming it)."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from disa_lambda.models import message as message_attributes

from disa.common import paths
from disa.common.aws import Clients
from disa.deploy.subscribers import Subscription
from disa.operate import items
from disa.operate.stack import StackInfo

# The sample consumer logs this line once per order it processed (code/python/sample_consumer).
PROCESSED_LINE = "order processed"
ORDER_KIND = "order"  # the `kind` attribute the orders subscriber's filter policy selects
# The sample consumer on orders only, two receives before the dead-letter queue (seed 002),
# and a 3 s timeout, so its queue's visibility timeout (6x) lets a failed order come back
# within 18 s; FIXED_HANDLER is the consumer after the fix that lets the poison pills through.
SUBSCRIPTION = Subscription(
    name="orders",
    handler="orders.handler",
    code=paths.SAMPLE_CONSUMER,
    filter_policy=json.dumps({"kind": [ORDER_KIND]}),
    parameters={"MaxReceiveCount": "2", "ConsumerTimeoutSeconds": "3"},
)
FIXED_HANDLER = "orders.handler_with_default_store"


@dataclass(frozen=True)
class Order:
    key: str
    store_id: str | None

    @property
    def poison(self) -> bool:
        return self.store_id is None


def orders(run_id: str, count: int, poison_every: int = 4) -> list[Order]:
    """``count`` orders, every ``poison_every``-th without a store (a poison pill)."""
    return [
        Order(f"{run_id}-order-{n}", None if n % poison_every == 0 else f"store-{n % 3 + 1}")
        for n in range(1, count + 1)
    ]


def send_orders(clients: Clients, info: StackInfo, run_id: str, batch: list[Order]) -> None:
    for order in batch:
        body = {"order_id": order.key, "amount": 12.5, "currency": "EUR"}
        if order.store_id is not None:
            body["store_id"] = order.store_id
        item = items.build_item(json.dumps(body), None, [f"kind={ORDER_KIND}", f"run={run_id}"], None, None)
        items.send(clients, info, item, order.key)


def processed_orders(clients: Clients, function: str, since: float) -> Counter[str]:
    """How many times the consumer processed each order (by order id) since ``since``,
    from the sample consumer's structured log lines."""
    logs = clients("logs")
    group = f"/aws/lambda/{function}"
    counts: Counter[str] = Counter()
    try:
        pages = logs.get_paginator("filter_log_events").paginate(
            logGroupName=group, startTime=int(since * 1000), filterPattern=f'"{PROCESSED_LINE}"'
        )
        for page in pages:
            for event in page["events"]:
                line = _json_line(event["message"])
                if line and line.get("message") == PROCESSED_LINE:
                    counts[line["order_id"]] += 1
    except logs.exceptions.ResourceNotFoundException:
        return counts  # the consumer has not logged anything yet
    return counts


def _json_line(text: str) -> dict[str, Any] | None:
    """A JSON log line, also when the runtime prefixed it (timestamp, request id, level)."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        parsed = json.loads(text[start:])
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def peek(clients: Clients, queue_url: str, wait_seconds: float = 1) -> list[dict[str, Any]]:
    """The messages a queue holds, read without consuming them: each is made visible again
    at once (visibility timeout 0), so a redrive or another reader still finds it."""
    sqs = clients("sqs")
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + wait_seconds
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=5,
            WaitTimeSeconds=1 if wait_seconds else 0,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        ).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        seen.update({m["MessageId"]: m for m in fresh})
        if not fresh and time.monotonic() >= deadline:
            break
    entries = [
        {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0} for n, m in enumerate(seen.values())
    ]
    for start in range(0, len(entries), 10):
        sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries[start : start + 10])
    return list(seen.values())


def order_id_of(message: dict[str, Any]) -> str:
    return json.loads(message["Body"])["order_id"]


def insert_id_of(message: dict[str, Any]) -> str | None:
    return message.get("MessageAttributes", {}).get(message_attributes.INSERT_ID, {}).get("StringValue")
