"""AWS helpers that the drills, the CLI and the tests share: subscribe a queue to a topic,
read what a queue received (and hand it to the consumer helper), write and read many items,
wait for a condition.

Each takes the boto3 client of its service, so it serves `Clients` on any target and the
tests' in-process moto clients alike.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Iterable, Iterator, TypeVar

from boto3.dynamodb.table import BatchWriter
from disa_lambda.consumer.message import Message, parse
from disa_lambda.consumer.payloads import PayloadReader
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

T = TypeVar("T")


def subscribe_queue(
    sqs: Any, sns: Any, topic_arn: str, name: str, raw: bool = True, filter_policy: dict[str, Any] | None = None
) -> str:
    """An SQS queue (created if missing; FIFO for a FIFO topic, whose name then ends in
    .fifo) subscribed to ``topic_arn``, which only that topic may send to; returns the
    queue's URL. ``raw``: the body is the message itself, not SNS's JSON envelope;
    ``filter_policy``: the subscription's filter on message attributes."""
    fifo = topic_arn.endswith(".fifo")
    url = sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"} if fifo else {})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    existing = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    if not any(s["Endpoint"] == arn for s in existing):
        attributes = {"RawMessageDelivery": str(raw).lower()}
        if filter_policy is not None:
            attributes["FilterPolicy"] = json.dumps(filter_policy)
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes=attributes)
    return url


def received_messages(sqs: Any, queue_url: str, wait_seconds: float = 0) -> list[dict[str, Any]]:
    """Every message the queue received, read and deleted: its body, message attributes
    and system attributes (FIFO group and deduplication ids among them).

    Returns at the first empty receive once ``wait_seconds`` have passed, so a wait gives
    messages still on their way (SNS fan-out is asynchronous) time to arrive."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait_seconds
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1 if wait_seconds else 0,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        ).get("Messages", [])
        for message in batch:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        found.extend(batch)
        if not batch and time.monotonic() >= deadline:
            return found


def sqs_lambda_record(message: dict[str, Any]) -> dict[str, Any]:
    """A message read from a queue (ReceiveMessage's shape, as `received_messages` returns
    it) in the shape an SQS event source mapping gives a Lambda: what the consumer helper
    parses (disa_lambda.consumer.message.parse)."""
    return {
        "messageId": message["MessageId"],
        "body": message["Body"],
        "attributes": message["Attributes"],
        "messageAttributes": {
            name: {"stringValue": a["StringValue"], "dataType": a["DataType"]}
            for name, a in message.get("MessageAttributes", {}).items()
        },
    }


def as_consumed(reader: PayloadReader, message: dict[str, Any]) -> Message:
    """What a consumer built on Disa's helper is handed for a message read from a queue: its
    body read from S3 when it is a pointer (raises PayloadUnreadable when that fails)."""
    return reader.resolve(parse(sqs_lambda_record(message)))


def write_items(ddb: Any, table: str, items: Iterable[dict[str, Any]]) -> None:
    """Insert items (AttributeValue form) in batches of 25, resending what DynamoDB left
    unprocessed (boto3's batch writer, given the low-level client)."""
    with BatchWriter(table, ddb) as writer:
        for item in items:
            writer.put_item(Item=item)


def scan_items(ddb: Any, table: str, **scan: Any) -> Iterator[dict[str, Any]]:
    """Every item of a table (a paginated Scan; ``scan`` adds its parameters)."""
    for page in ddb.get_paginator("scan").paginate(TableName=table, **scan):
        yield from page["Items"]


def get_item(ddb: Any, table: str, key: dict[str, Any]) -> dict[str, Any]:
    """The item as it is now (a consistent read); empty if there is none."""
    return ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item", {})


def get_items(ddb: Any, table: str, keys: Iterable[dict[str, Any]], **read: Any) -> Iterator[dict[str, Any]]:
    """The items that exist among ``keys`` (BatchGetItem, 100 keys a call, asking again for
    what DynamoDB left unprocessed; ``read`` adds e.g. ProjectionExpression). Unlike a Scan,
    its cost follows the keys asked for, not the table's size."""
    keys = list(keys)
    for start in range(0, len(keys), 100):
        request = {table: {"Keys": keys[start : start + 100], **read}}
        while request:
            answer = ddb.batch_get_item(RequestItems=request)
            yield from answer["Responses"].get(table, [])
            request = answer.get("UnprocessedKeys") or {}


def alarm_state(cloudwatch: Any, name: str) -> str:
    """OK, ALARM or INSUFFICIENT_DATA."""
    return cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]


def at_most_every(seconds: float, action: Callable[..., None]) -> Callable[..., None]:
    """``action`` that runs at most once per ``seconds`` however often it is called (to
    report progress while waiting), the first time ``seconds`` after it was made."""
    last = time.monotonic()

    def throttled(*args: Any) -> None:
        nonlocal last
        if time.monotonic() - last >= seconds:
            last = time.monotonic()
            action(*args)

    return throttled


def wait_until(
    probe: Callable[[], T],
    satisfied: Callable[[T], bool],
    timeout: float,
    interval: float = 0.5,
    on_wait: Callable[[T, float], None] | None = None,
) -> T:
    """Call ``probe`` until ``satisfied(result)`` or ``timeout`` seconds pass; returns the
    last result either way, for the caller to judge and report. ``on_wait(result, elapsed)``
    runs before each pause."""
    return Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        retry=retry_if_result(lambda result: not satisfied(result)),
        retry_error_callback=lambda state: state.outcome.result(),
        before_sleep=(lambda state: on_wait(state.outcome.result(), state.seconds_since_start)) if on_wait else None,
    )(probe)
