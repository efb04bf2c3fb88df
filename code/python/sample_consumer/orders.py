"""Sample consumer (seed 002's orders): each message body is a JSON order that names the
store it belongs to. An order without ``store_id`` can never be processed by ``handler``: it
is a poison pill, fails each receive and reaches the dead-letter queue. After the fix a team
would deploy, ``handler_with_default_store`` files such orders under a holding store, so a
redrive processes them.

Deploy: ``disa subscribe orders --handler orders.handler --code code/python/sample_consumer``.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from disa_lambda.consumer import Consumer, Message

HOLDING_STORE = "unassigned"  # where the fixed consumer files orders that name no store

consumer = Consumer.from_environment()
logger = Logger()


class OrderRejected(ValueError):
    """The message is not an order this consumer can process."""


def record_order(message: Message) -> None:
    order = _order(message)
    if not order.get("store_id"):
        raise OrderRejected(f"order {order.get('order_id', '?')} has no store_id; every order names its store")
    _recorded(message, order, order["store_id"])


def record_order_with_default_store(message: Message) -> None:
    order = _order(message)
    _recorded(message, order, order.get("store_id") or HOLDING_STORE)


def _order(message: Message) -> dict[str, Any]:
    try:
        order = json.loads(message.body)
    except json.JSONDecodeError as error:
        raise OrderRejected(f"the body is not JSON: {error}") from error
    if not isinstance(order, dict) or "order_id" not in order:
        raise OrderRejected("the body is not an order: a JSON object with order_id")
    return order


def _recorded(message: Message, order: dict[str, Any], store_id: str) -> None:
    # Where a real consumer writes the order to its store; the log line is the sample's
    # record, one per order processed (the demo and the end-to-end tests count them).
    logger.info(
        "order processed", extra={"order_id": order["order_id"], "store_id": store_id, "insert_id": message.insert_id}
    )


handler = consumer.handler(record_order)
handler_with_default_store = consumer.handler(record_order_with_default_store)
