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
from dataclasses import dataclass

import pytest

from disa.common.aws_helpers import received_messages, subscribe_queue, wait_until, write_items
from tests.support.streams import stream_sequence_number

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
    only_wanted = subscribe_queue(sqs, sns, topic, _unique("canary-wanted"), filter_policy={"kind": ["wanted"]})

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


# The stream consumer: a record whose item has `poison` fails. In "report" mode it processes
# every record and names the failed ones in a partial batch response (as Powertools' batch
# processor does); in "raise" mode the whole invocation fails before it processes anything.
# Processed keys go to a queue.
CONSUMER = textwrap.dedent(
    """
    import os
    import boto3

    sqs = boto3.client("sqs")

    def handler(event, context):
        records = event["Records"]
        if os.environ["MODE"] == "raise" and any("poison" in r["dynamodb"]["NewImage"] for r in records):
            raise RuntimeError("a poison record in the batch")
        failures = []
        for record in records:
            image = record["dynamodb"]["NewImage"]
            if "poison" in image:
                failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
            else:
                sqs.send_message(QueueUrl=os.environ["SEEN"], MessageBody=image["id"]["S"])
        return {"batchItemFailures": failures}
    """
)


def _consumer_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("consumer.py", CONSUMER)
    return buffer.getvalue()


@dataclass(frozen=True)
class Outcome:
    good: list[str]  # the keys of the records that do not fail
    processed: Counter  # how often each key was processed
    failures: list[dict]  # what reached the on-failure queue
    poison_sequence_number: str


def _stream_with_failing_record(clients, mode: str, mapping: dict, timeout: float = 45) -> Outcome:
    """Six items in one write, the fourth poisoned, through a mapping with ``mapping``'s
    settings."""
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

    failures = wait_until(lambda: received_messages(sqs, failed, wait_seconds=1), bool, timeout=timeout)
    assert failures, f"no on-failure record within {timeout:.0f} s: the failing batch still blocks the shard"
    processed = Counter(m["Body"] for m in received_messages(sqs, seen, wait_seconds=3))
    poison = stream_sequence_number(clients("dynamodbstreams"), stream_arn, {"id": {"S": "k3"}})
    return Outcome(good, processed, [json.loads(m["Body"]) for m in failures], poison)


def test_partial_batch_response_checkpoints_at_the_failure_and_gives_it_up_after_max_retries(local_cloud):
    outcome = _stream_with_failing_record(
        local_cloud.clients(),
        "report",
        {
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": 1,
        },
    )
    assert set(outcome.processed) == set(outcome.good), "every good record processed, the poison one never"
    [failure] = outcome.failures
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    # Cut at the reported record (a partial response is not halved): what is given up
    # starts there, and the records after it were retried with it.
    assert failure["DDBStreamBatchInfo"]["startSequenceNumber"] == outcome.poison_sequence_number
    assert failure["requestContext"]["approximateInvokeCount"] >= 2, "one call and one retry of it"
    assert "functionError" not in failure["responseContext"], "the function answered; it did not fail"


def test_function_error_bisects_the_batch_down_to_the_failing_record(local_cloud):
    outcome = _stream_with_failing_record(
        local_cloud.clients(), "raise", {"BisectBatchOnFunctionError": True, "MaximumRetryAttempts": 0}
    )
    assert outcome.processed == Counter(outcome.good), "halves without the poison record succeed, once each"
    [failure] = outcome.failures
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 1
    assert failure["DDBStreamBatchInfo"]["startSequenceNumber"] == outcome.poison_sequence_number


def test_a_batch_failing_forever_is_given_up_once_its_records_pass_the_maximum_age(local_cloud):
    # No bisect, no retry limit: only MaximumRecordAgeInSeconds (60 s at least on AWS) frees
    # the shard. The engine as released did this too; the patch re-implements it.
    outcome = _stream_with_failing_record(
        local_cloud.clients(), "raise", {"MaximumRecordAgeInSeconds": 60}, timeout=120
    )
    assert {f["requestContext"]["condition"] for f in outcome.failures} == {"MaxRecordAgeExceeded"}
    given_up = sum(f["DDBStreamBatchInfo"]["batchSize"] for f in outcome.failures)
    assert sum(outcome.processed.values()) + given_up == 6, "each record processed once or given up"
