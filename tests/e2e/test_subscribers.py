"""Subscribers on the local cloud, deployed with `disa subscribe` as a consumer team would:
`orders` (the sample consumer, a filter on kind=order, two receives before the dead-letter
queue) and `audit` (a queue nobody consumes). Poison pills reach the dead-letter queue and
every good order is processed once; a fixed consumer and a redrive process the poison pills
once; a duplicate delivery is processed once; the latency of every stage is measured; a FIFO
subscriber on a FIFO stack keeps each group's order."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections import Counter

import pytest
from disa_lambda.consumer import stages
from disa_lambda.models import message as message_attributes

from disa import cli
from disa.common.aws_helpers import received_messages, wait_until
from disa.deploy import stacks
from disa.deploy.subscribers import Subscription, subscribe, unsubscribe
from disa.drills import orders
from disa.operate import items, redrive
from disa.operate.stack import StackInfo
from disa.operate.subscribers import SubscriberInfo, depth, latency, subscribers
from tests.e2e.conftest import ARTIFACT_BUCKET, PARAMETERS, quiet

pytestmark = pytest.mark.e2e
ORDERS = orders.SUBSCRIPTION
AUDIT = Subscription(name="audit")
COUNT = 8  # two of them poison pills


@pytest.fixture(scope="module")
def subscribed(local_stack):
    clients, info = local_stack.clients, local_stack.info
    for request in (ORDERS, AUDIT):
        subscribe(clients, info, request, ARTIFACT_BUCKET, log=quiet)
    yield {name: SubscriberInfo.of(clients, info.name, name) for name in ("orders", "audit")}
    for name in ("orders", "audit"):
        unsubscribe(clients, info.name, name, discard=True, log=quiet)


@pytest.fixture(scope="module")
def poisoned(local_stack, subscribed):
    """COUNT orders sent, settled: the good ones processed, the poison pills dead-lettered."""
    clients, run_id, started = local_stack.clients, uuid.uuid4().hex[:8], time.time()
    batch = orders.orders(run_id, COUNT)
    orders.send_orders(clients, local_stack.info, run_id, batch)
    consumer = subscribed["orders"].consumer_function
    poison = {o.key for o in batch if o.poison}
    dead = wait_until(
        lambda: orders.peek(clients, subscribed["orders"].dead_letter.url),
        lambda found: {orders.order_id_of(m) for m in found} >= poison,
        timeout=150,
        interval=3,
    )
    return {
        "batch": batch,
        "started": started,
        "dead": dead,
        "processed": orders.processed_orders(clients, consumer, started),
        "audit": received_messages(clients("sqs"), subscribed["audit"].queue.url, wait_seconds=2),
    }


def test_each_subscriber_is_a_raw_subscription_of_the_topic_and_only_orders_filter(local_stack, subscribed):
    subscriptions = local_stack.clients("sns").list_subscriptions_by_topic(TopicArn=local_stack.info.topic_arn)
    by_endpoint = {s["Endpoint"]: s["SubscriptionArn"] for s in subscriptions["Subscriptions"]}
    sns = local_stack.clients("sns")
    for name, subscriber in subscribed.items():
        attributes = sns.get_subscription_attributes(SubscriptionArn=by_endpoint[subscriber.queue.arn])["Attributes"]
        assert attributes["RawMessageDelivery"] == "true"
        assert bool(attributes.get("FilterPolicy")) == (name == "orders")
    listed = cli.subscriber_report(local_stack.clients, local_stack.info.name, minutes=5)
    assert [s["name"] for s in listed] == ["audit", "orders"]


def test_poison_pills_reach_the_dead_letter_queue_after_two_receives_and_good_orders_are_processed_once(poisoned):
    good = {o.key for o in poisoned["batch"] if not o.poison}
    poison = {o.key for o in poisoned["batch"] if o.poison}
    assert len(poison) == COUNT // 4
    assert poisoned["processed"] == Counter(dict.fromkeys(good, 1)), "every good order once, no poison pill"
    dead = {orders.order_id_of(m): m for m in poisoned["dead"]}
    assert set(dead) == poison
    assert all(int(m["Attributes"]["ApproximateReceiveCount"]) >= 1 for m in dead.values())
    assert all(orders.insert_id_of(m) for m in dead.values()), "dead letters keep their attributes"


def test_a_subscriber_without_a_consumer_receives_every_message_byte_exact(poisoned):
    bodies = {orders.order_id_of(m): m for m in poisoned["audit"] if m["MessageAttributes"].get("kind")}
    assert set(bodies) == {o.key for o in poisoned["batch"]}
    for message in bodies.values():
        assert set(message["MessageAttributes"]) == {
            "kind",
            "run",
            message_attributes.INSERT_ID,
            message_attributes.ACCEPTED_AT,
        }


def test_a_fixed_consumer_and_a_redrive_process_each_poison_pill_once(local_stack, subscribed, poisoned):
    clients, info = local_stack.clients, local_stack.info
    fixed = dataclasses.replace(ORDERS, handler=orders.FIXED_HANDLER)
    subscribe(clients, info, fixed, ARTIFACT_BUCKET, log=quiet)
    since = time.time()
    report = redrive.redrive(clients, subscribed["orders"].dead_letter, subscribed["orders"].queue, rate=50, log=quiet)
    poison = {o.key for o in poisoned["batch"] if o.poison}
    assert (report.mode, report.moved, report.failed) == ("portable", len(poison), 0)
    processed = wait_until(
        lambda: orders.processed_orders(clients, subscribed["orders"].consumer_function, since),
        lambda counts: set(counts) >= poison,
        timeout=60,
        interval=2,
    )
    time.sleep(5)  # a second processing would show within a receive or two
    assert orders.processed_orders(clients, subscribed["orders"].consumer_function, since) == Counter(
        dict.fromkeys(poison, 1)
    ), processed
    assert depth(clients, subscribed["orders"].dead_letter)["waiting"] == 0


def test_a_duplicate_delivery_of_one_insert_is_processed_once(local_stack, subscribed, poisoned):
    clients = local_stack.clients
    good = next(o for o in poisoned["batch"] if not o.poison)
    copy = next(m for m in poisoned["audit"] if orders.order_id_of(m) == good.key)
    since = time.time()
    clients("sqs").send_message(  # what SNS's at-least-once delivery or a second publish would add
        QueueUrl=subscribed["orders"].queue.url, MessageBody=copy["Body"], MessageAttributes=copy["MessageAttributes"]
    )
    time.sleep(8)
    assert orders.processed_orders(clients, subscribed["orders"].consumer_function, since)[good.key] == 0
    assert depth(clients, subscribed["orders"].queue) == {"waiting": 0, "in flight": 0}


def test_every_stage_of_every_processed_message_has_a_latency(local_stack, subscribed, poisoned):
    measured = wait_until(
        lambda: {row["stage"]: row for row in latency(local_stack.clients, subscribed["orders"], minutes=30)},
        lambda rows: len(rows) >= 5,
        timeout=30,
        interval=2,
    )
    raw_stages = [s for s in stages.STAGES if s not in stages.ENVELOPE_ONLY]
    assert set(measured) == {s.label for s in raw_stages}, "raw delivery: no SNS Timestamp stages"
    for row in measured.values():
        assert row["messages"] >= COUNT - COUNT // 4
        assert 0 <= row["p50"] <= row["p95"] <= row["p99"]


def test_a_fifo_subscriber_on_a_fifo_stack_receives_each_message_once_with_its_group_in_order(local_stack):
    clients, name = local_stack.clients, "disa-e2e-fifo"
    stacks.deploy(
        clients, name, local_stack.packaged, {**PARAMETERS, "NamePrefix": name, "TopicType": "fifo"}, log=quiet
    )
    info = StackInfo.of(clients, name)
    try:
        subscribe(clients, info, Subscription(name="ledger"), ARTIFACT_BUCKET, log=quiet)
        ledger = SubscriberInfo.of(clients, name, "ledger")
        assert ledger.queue.fifo and ledger.queue.url.endswith(".fifo")
        sent = {f"{group}-{n}": group for group in ("g1", "g2") for n in range(4)}
        for key, group in reversed(sent.items()):  # inserted last first: the sequence decides
            sequence = int(key.split("-")[1]) + 1
            items.send(clients, info, items.build_item(f"{key} body", None, [], group, None, sequence), key)
        delivered: list[dict] = []
        deadline = time.monotonic() + 60
        while len(delivered) < len(sent) and time.monotonic() < deadline:
            delivered += received_messages(clients("sqs"), ledger.queue.url, wait_seconds=1)
        delivered += received_messages(clients("sqs"), ledger.queue.url, wait_seconds=2)  # any duplicate
        groups = {m["Body"].split()[0]: m["Attributes"]["MessageGroupId"] for m in delivered}
        assert groups == sent and len(delivered) == len(sent), "each message once, in its group"
        for group in ("g1", "g2"):
            in_group = [m["Body"].split()[0] for m in delivered if m["Attributes"]["MessageGroupId"] == group]
            assert in_group == [f"{group}-{n}" for n in range(4)], "in messageSequence order"
    finally:
        if subscribers(clients, name):
            unsubscribe(clients, name, "ledger", discard=True, log=quiet)
        stacks.destroy(clients, name, log=quiet)
