"""Canaries for engine patches 0003-cloudformation-keep-retained-resources-on-delete.patch
(a stack delete keeps the resources of its nested stacks whose DeletionPolicy is Retain) and
0004-cloudformation-update-nested-stacks-in-place.patch (a nested stack whose template changed
updates in place). Each fails on ministack 1.5.33 as released: the first finds the retained
queue deleted with the stack, the second ends UPDATE_ROLLBACK_FAILED on "Requested attribute
Arn does not exist in schema for AWS::SQS::Queue".

They use a small root stack with one nested stack holding one queue, not Disa's stack, so a
failure names the engine behaviour and not a Disa defect.
"""

from __future__ import annotations

import contextlib
import json
import uuid

import pytest
from botocore.exceptions import ClientError

from disa.common.aws_helpers import wait_until

pytestmark = pytest.mark.e2e

REGION = "us-east-1"

ROOT = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Parameters": {"ChildUrl": {"Type": "String"}, "QueueName": {"Type": "String"}},
    "Resources": {
        "Child": {
            "Type": "AWS::CloudFormation::Stack",
            "Properties": {"TemplateURL": {"Ref": "ChildUrl"}, "Parameters": {"QueueName": {"Ref": "QueueName"}}},
        }
    },
    "Outputs": {"QueueArn": {"Value": {"Fn::GetAtt": ["Child", "Outputs.QueueArn"]}}},
}


def _child(description: str, extra_outputs: dict | None = None) -> dict:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": description,
        "Parameters": {"QueueName": {"Type": "String"}},
        "Resources": {
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {"QueueName": {"Ref": "QueueName"}},
            }
        },
        "Outputs": {"QueueArn": {"Value": {"Fn::GetAtt": ["Queue", "Arn"]}}, **(extra_outputs or {})},
    }


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _upload(s3, bucket: str, key: str, template: dict) -> str:
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(template).encode())
    return f"https://s3.{REGION}.amazonaws.com/{bucket}/{key}"


def _settled(cfn, stack: str) -> str:
    def status() -> str:
        try:
            return cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        except ClientError as error:
            if "does not exist" in str(error):
                return "DELETE_COMPLETE"
            raise

    return wait_until(status, lambda s: not s.endswith("_IN_PROGRESS"), timeout=60)


def _root_with_retained_queue(clients) -> tuple[str, str, str]:
    """Creates the root stack; returns its name, the bucket and the queue's name."""
    s3, cfn = clients("s3"), clients("cloudformation")
    bucket, stack, queue = _unique("canary-cfn"), _unique("canary-cfn"), _unique("canary-retained")
    s3.create_bucket(Bucket=bucket)
    child_url = _upload(s3, bucket, "v1/child.json", _child("a queue the stack retains"))
    cfn.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(ROOT),
        Parameters=[
            {"ParameterKey": "ChildUrl", "ParameterValue": child_url},
            {"ParameterKey": "QueueName", "ParameterValue": queue},
        ],
    )
    assert _settled(cfn, stack) == "CREATE_COMPLETE"
    return stack, bucket, queue


def test_stack_delete_keeps_retained_resources_of_nested_stacks(local_cloud):
    clients = local_cloud.clients()
    cfn, sqs = clients("cloudformation"), clients("sqs")
    stack, _, queue = _root_with_retained_queue(clients)
    queue_url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]

    cfn.delete_stack(StackName=stack)
    assert _settled(cfn, stack) == "DELETE_COMPLETE"

    assert sqs.get_queue_url(QueueName=queue)["QueueUrl"] == queue_url
    sqs.delete_queue(QueueUrl=queue_url)


def test_nested_stack_updates_in_place_when_its_template_changed(local_cloud):
    clients = local_cloud.clients()
    s3, cfn, sqs = clients("s3"), clients("cloudformation"), clients("sqs")
    stack, bucket, queue = _root_with_retained_queue(clients)
    queue_arn = cfn.describe_stacks(StackName=stack)["Stacks"][0]["Outputs"][0]["OutputValue"]

    # The queue itself is unchanged; only the description and the outputs differ.
    changed = _child("the same queue, described anew", {"QueueUrl": {"Value": {"Ref": "Queue"}}})
    cfn.update_stack(
        StackName=stack,
        TemplateBody=json.dumps(ROOT),
        Parameters=[
            {"ParameterKey": "ChildUrl", "ParameterValue": _upload(s3, bucket, "v2/child.json", changed)},
            {"ParameterKey": "QueueName", "UsePreviousValue": True},
        ],
    )

    assert _settled(cfn, stack) == "UPDATE_COMPLETE"
    assert cfn.describe_stacks(StackName=stack)["Stacks"][0]["Outputs"][0]["OutputValue"] == queue_arn
    [child] = cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    child_outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in cfn.describe_stacks(StackName=child["PhysicalResourceId"])["Stacks"][0]["Outputs"]
    }
    assert child_outputs["QueueArn"] == queue_arn
    assert child_outputs["QueueUrl"].endswith(f"/{queue}")
    queue_url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    cfn.delete_stack(StackName=stack)
    _settled(cfn, stack)
    with contextlib.suppress(ClientError):  # without patch 0003 the stack delete took the queue
        sqs.delete_queue(QueueUrl=queue_url)
