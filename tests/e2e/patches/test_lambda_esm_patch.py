"""Canary for engine patch 0008 (an event source mapping CloudFormation creates with
`Enabled: false` reports State Disabled). It fails on ministack 1.5.33 as released, which
reports State Enabled for it while not polling: `disa failover`, reading the state before it
changes it, would leave a consumer off.

A stack of its own (a queue, a function, a mapping created disabled), not Disa's, so a
failure names the engine behaviour and not a Disa defect.
"""

from __future__ import annotations

import io
import json
import textwrap
import uuid
import zipfile

import pytest

from disa.common.aws_helpers import wait_until

pytestmark = pytest.mark.e2e

ROLE = "arn:aws:iam::000000000000:role/canary"
HANDLER = textwrap.dedent(
    """
    def handler(event, context):
        return {"batchItemFailures": []}
    """
)


def _template(name: str, bucket: str, key: str) -> dict:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": name, "VisibilityTimeout": 30}},
            "Function": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": name,
                    "Runtime": "python3.12",
                    "Handler": "consumer.handler",
                    "Role": ROLE,
                    "Code": {"S3Bucket": bucket, "S3Key": key},
                },
            },
            "Mapping": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "FunctionName": {"Ref": "Function"},
                    "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]},
                    "BatchSize": 1,
                    "Enabled": False,
                },
            },
        },
        "Outputs": {"QueueUrl": {"Value": {"Ref": "Queue"}}},
    }


def test_a_mapping_created_disabled_says_so_and_polls_once_enabled(local_cloud):
    clients = local_cloud.clients()
    name = f"canary-esm-{uuid.uuid4().hex[:8]}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("consumer.py", HANDLER)
    clients("s3").create_bucket(Bucket=name)
    clients("s3").put_object(Bucket=name, Key="consumer.zip", Body=buffer.getvalue())
    cfn = clients("cloudformation")
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(_template(name, name, "consumer.zip")))
    status = wait_until(
        lambda: cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"],
        lambda s: not s.endswith("_IN_PROGRESS"),
        60,
    )
    assert status == "CREATE_COMPLETE"
    try:
        lam, sqs = clients("lambda"), clients("sqs")
        [mapping] = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
        assert mapping["State"] == "Disabled"
        url = cfn.describe_stacks(StackName=name)["Stacks"][0]["Outputs"][0]["OutputValue"]
        sqs.send_message(QueueUrl=url, MessageBody="held while disabled")

        lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)

        assert lam.get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Enabled"
        left = wait_until(
            lambda: sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"],
            lambda a: a["ApproximateNumberOfMessages"] == "0" and a["ApproximateNumberOfMessagesNotVisible"] == "0",
            30,
        )
        assert left["ApproximateNumberOfMessages"] == "0", "the enabled mapping consumed the message"
    finally:
        cfn.delete_stack(StackName=name)
