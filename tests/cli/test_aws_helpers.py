"""The AWS helpers the drills, the CLI and the tests share, against moto (in process)."""

from __future__ import annotations

import itertools
import json
import threading

import boto3
import pytest

from disa.common.aws_helpers import (
    at_most_every,
    get_items,
    received_messages,
    scan_items,
    subscribe_queue,
    wait_until,
    write_items,
)
from tests.support.moto_stack import REGION

pytestmark = pytest.mark.cli


def test_wait_until_returns_the_first_satisfying_result_or_the_last_one_at_the_timeout():
    counter = itertools.count()
    assert wait_until(lambda: next(counter), lambda n: n >= 3, timeout=5, interval=0.01) == 3
    seen = []
    last = wait_until(
        lambda: next(counter), lambda n: False, timeout=0.2, interval=0.05, on_wait=lambda n, _: seen.append(n)
    )
    assert last > 3 and seen and seen[-1] < last, "on_wait saw each result before a pause; the last one is returned"


def test_at_most_every_runs_its_action_once_per_period_however_often_it_is_called():
    calls = []
    throttled = at_most_every(60, calls.append)
    for n in range(5):
        throttled(f"t{n}")
    assert calls == [], "not within its first period"
    assert at_most_every(0, calls.append)("now") is None and calls == ["now"]


def test_wait_until_lets_a_failing_probe_raise():
    with pytest.raises(ZeroDivisionError):
        wait_until(lambda: 1 / 0, lambda _: True, timeout=1)


def _table_t():
    """A client and an empty table "t" keyed on a string ``id``."""
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(
        TableName="t",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return ddb


def test_write_items_writes_more_than_one_batch_and_scan_items_reads_every_page(moto_engine):
    ddb = _table_t()
    write_items(ddb, "t", ({"id": {"S": f"k{n}"}, "n": {"N": str(n)}} for n in range(60)))
    assert sorted(int(i["n"]["N"]) for i in scan_items(ddb, "t", Limit=7)) == list(range(60))


def test_get_items_reads_only_the_keys_asked_for_in_calls_of_100_and_skips_missing_ones(moto_engine):
    ddb = _table_t()
    write_items(ddb, "t", ({"id": {"S": f"k{n}"}, "n": {"N": str(n)}, "extra": {"S": "x"}} for n in range(300)))
    keys = [{"id": {"S": f"k{n}"}} for n in range(50, 260)] + [{"id": {"S": "missing"}}]
    found = list(get_items(ddb, "t", keys, ProjectionExpression="id, n"))
    assert sorted(int(i["n"]["N"]) for i in found) == list(range(50, 260))
    assert all("extra" not in i for i in found)


@pytest.mark.parametrize("topic_name", ["events", "events.fifo"])
def test_subscribe_queue_is_idempotent_scoped_to_the_topic_and_fifo_for_a_fifo_topic(moto_engine, topic_name):
    sqs, sns = boto3.client("sqs", region_name=REGION), boto3.client("sns", region_name=REGION)
    fifo = topic_name.endswith(".fifo")
    topic = sns.create_topic(Name=topic_name, Attributes={"FifoTopic": "true"} if fifo else {})["TopicArn"]
    queue = "watcher.fifo" if fifo else "watcher"
    url = subscribe_queue(sqs, sns, topic, queue)
    assert subscribe_queue(sqs, sns, topic, queue) == url

    [subscription] = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    attributes = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])["Attributes"]
    assert attributes["RawMessageDelivery"] == "true"
    queue_attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert queue_attributes.get("FifoQueue", "false") == str(fifo).lower()
    [statement] = json.loads(queue_attributes["Policy"])["Statement"]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": topic}}


def test_received_messages_reads_and_deletes_everything_and_waits_for_stragglers(moto_engine):
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for n in range(23):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
    assert sorted(m["Body"] for m in received_messages(sqs, url)) == sorted(f"m{n}" for n in range(23))
    assert received_messages(sqs, url) == []

    late = threading.Timer(0.5, lambda: sqs.send_message(QueueUrl=url, MessageBody="late"))
    late.start()
    assert [m["Body"] for m in received_messages(sqs, url, wait_seconds=2)] == ["late"]
    late.join()


def test_subscribe_queue_with_a_filter_policy_receives_only_matching_messages(moto_engine):
    sqs, sns = boto3.client("sqs", region_name=REGION), boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="filtered")["TopicArn"]
    url = subscribe_queue(sqs, sns, topic, "wanted-only", filter_policy={"kind": ["wanted"]})
    for kind in ("wanted", "other"):
        sns.publish(
            TopicArn=topic, Message=kind, MessageAttributes={"kind": {"DataType": "String", "StringValue": kind}}
        )
    assert [m["Body"] for m in received_messages(sqs, url)] == ["wanted"]
