"""Canaries for engine patches 0001 (Step Functions sns:publish keeps MessageAttributes) and
0002 (DynamoDB stream mappings honour bisect, retry limit, partial batch responses and the
on-failure destination). Each fails on ministack 1.5.33 as released: the first sees no
attributes, the second waits in vain for the on-failure record while the shard is blocked.

They use small resources of their own, not Disa's stack, so a failure names the engine
behaviour and not a Disa defect.
"""

from __future__ import annotations

import io
import json
import textwrap
import uuid
import zipfile
from collections import Counter

import pytest

from disa.common.aws_helpers import received_messages, subscribe_queue, wait_until, write_items

pytestmark = pytest.mark.e2e

ROLE = "arn:aws:iam::000000000000:role/canary"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _publish_with_attributes(clients, topic_arn: str, kind: str) -> None:
    sfn = clients("stepfunctions")
    definition = {
        "StartAt": "Publish",
        "States": {
            "Publish": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "Parameters": {
                    "TopicArn": topic_arn,
                    "Message.$": "$.message",
                    "MessageAttributes": {
                        "kind": {"DataType": "String", "StringValue.$": "$.kind"},
                        "size": {"DataType": "Number", "StringValue": "42"},
                    },
                },
                "End": True,
            }
        },
    }
    machine = sfn.create_state_machine(name=_unique("canary-publish"), definition=json.dumps(definition), roleArn=ROLE)
    execution = sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"], input=json.dumps({"message": f"a {kind}", "kind": kind})
    )["executionArn"]
    status = wait_until(
        lambda: sfn.describe_execution(executionArn=execution)["status"], lambda s: s != "RUNNING", timeout=30
    )
    assert status == "SUCCEEDED"


def test_state_machine_publish_delivers_message_attributes_to_filters_and_raw_queues(local_cloud):
    clients = local_cloud.clients()
    sns, sqs = clients("sns"), clients("sqs")
    topic = sns.create_topic(Name=_unique("canary-attributes"))["TopicArn"]
    every = subscribe_queue(sqs, sns, topic, _unique("canary-every"))
    only_wanted = subscribe_queue(sqs, sns, topic, _unique("canary-wanted"))
    [subscription] = [
        s["SubscriptionArn"]
        for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        if s["Endpoint"].endswith(only_wanted.rsplit("/", 1)[1])
    ]
    sns.set_subscription_attributes(
        SubscriptionArn=subscription, AttributeName="FilterPolicy", AttributeValue=json.dumps({"kind": ["wanted"]})
    )

    _publish_with_attributes(clients, topic, "wanted")
    _publish_with_attributes(clients, topic, "other")

    delivered = wait_until(lambda: received_messages(sqs, every, wait_seconds=1), lambda got: len(got) >= 2, timeout=20)
    assert {m["Body"]: m["MessageAttributes"]["kind"]["StringValue"] for m in delivered} == {
        "a wanted": "wanted",
        "a other": "other",
    }
    assert all(m["MessageAttributes"]["size"] == {"DataType": "Number", "StringValue": "42"} for m in delivered)
    filtered = received_messages(sqs, only_wanted, wait_seconds=2)
    assert [m["Body"] for m in filtered] == ["a wanted"]


# The stream consumer: a record whose item has `poison` fails. In "report" mode it returns
# a partial batch response naming the first failure (as AWS's docs advise); in "raise" mode
# the whole invocation fails before it processes anything. Processed keys go to a queue.
CONSUMER = textwrap.dedent(
    """
    import os
    import boto3

    sqs = boto3.client("sqs")

    def handler(event, context):
        records = event["Records"]
        if os.environ["MODE"] == "raise" and any("poison" in r["dynamodb"]["NewImage"] for r in records):
            raise RuntimeError("a poison record in the batch")
        for record in records:
            image = record["dynamodb"]["NewImage"]
            if "poison" in image:
                return {"batchItemFailures": [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]}
            sqs.send_message(QueueUrl=os.environ["SEEN"], MessageBody=image["id"]["S"])
        return {"batchItemFailures": []}
    """
)


def _consumer_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("consumer.py", CONSUMER)
    return buffer.getvalue()


def _stream_with_failing_record(clients, mode: str, mapping: dict) -> tuple[list[str], Counter, list[dict]]:
    """Six items in one write, the fourth poisoned, through a mapping with ``mapping``'s
    settings; returns the good keys, how often each key was processed, and what reached
    the on-failure queue."""
    ddb, sqs, lam = clients("dynamodb"), clients("sqs"), clients("lambda")
    table = _unique(f"canary-stream-{mode}")
    stream_arn = ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    seen = sqs.create_queue(QueueName=f"{table}-seen")["QueueUrl"]
    failed = sqs.create_queue(QueueName=f"{table}-failed")["QueueUrl"]
    failed_arn = sqs.get_queue_attributes(QueueUrl=failed, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    lam.create_function(
        FunctionName=table,
        Runtime="python3.12",
        Role=ROLE,
        Handler="consumer.handler",
        Code={"ZipFile": _consumer_zip()},
        Environment={"Variables": {"SEEN": seen, "MODE": mode}},
    )
    lam.create_event_source_mapping(
        FunctionName=table,
        EventSourceArn=stream_arn,
        StartingPosition="TRIM_HORIZON",
        BatchSize=10,
        DestinationConfig={"OnFailure": {"Destination": failed_arn}},
        **mapping,
    )
    keys = [f"k{n}" for n in range(6)]
    items = [{"id": {"S": key}, **({"poison": {"BOOL": True}} if key == "k3" else {})} for key in keys]
    write_items(ddb, table, items)
    good = [key for key in keys if key != "k3"]

    failures = wait_until(lambda: received_messages(sqs, failed, wait_seconds=1), bool, timeout=45)
    assert failures, "no on-failure record within 45 s: the failing batch still blocks the shard"
    processed = Counter(m["Body"] for m in received_messages(sqs, seen, wait_seconds=3))
    return good, processed, [json.loads(m["Body"]) for m in failures]


def test_partial_batch_response_isolates_the_failing_record_and_gives_it_up_after_max_retries(local_cloud):
    good, processed, failures = _stream_with_failing_record(
        local_cloud.clients(),
        "report",
        {
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": 1,
        },
    )
    assert processed == Counter(good), "every good record once: the checkpoint moved past what succeeded"
    [failure] = failures
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 1, "the poison record alone was given up"
    assert failure["requestContext"]["approximateInvokeCount"] >= 2, "one call and one retry of it"


def test_function_error_bisects_the_batch_down_to_the_failing_record(local_cloud):
    good, processed, failures = _stream_with_failing_record(
        local_cloud.clients(), "raise", {"BisectBatchOnFunctionError": True, "MaximumRetryAttempts": 0}
    )
    assert processed == Counter(good), "halves without the poison record succeed, once each"
    [failure] = failures
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 1
