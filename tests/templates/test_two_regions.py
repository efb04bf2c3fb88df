"""The root stack's two-region shape, read as CloudFormation would evaluate it: the primary
creates the replicated tables, the secondary uses its replicas, and each region's functions
learn the ownership table and the primary."""

from __future__ import annotations

import pytest

from tests.support.templates import Evaluator, resources

ACCOUNT_REGION = {"AWS::Region": "us-west-2", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
STREAM = "arn:aws:dynamodb:us-west-2:123456789012:table/disa-items/stream/2026-12-02T00:00:00.000"


def storage(**parameters: str) -> Evaluator:
    return Evaluator("table", {"NamePrefix": "disa", **parameters}, ACCOUNT_REGION)


def created(evaluator: Evaluator, template: str) -> set[str]:
    return {
        name
        for name, resource in resources(template, "AWS::DynamoDB::Table").items()
        if "Condition" not in resource or evaluator.condition(resource["Condition"])
    }


def test_one_region_creates_its_tables_and_no_ownership_table():
    evaluator = storage()
    assert created(evaluator, "table") == {"Table", "JobStateTable", "GroupsTable"}
    assert evaluator.resolve({"Fn::If": ["TwoRegions", "x", ""]}) == ""


def test_the_primary_also_creates_the_ownership_table_with_the_stream_a_global_table_needs():
    evaluator = storage(TwoRegions="true")
    assert created(evaluator, "table") == {"Table", "JobStateTable", "GroupsTable", "OwnershipTable"}
    ownership = resources("table", "AWS::DynamoDB::Table")["OwnershipTable"]["Properties"]
    assert ownership["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert ownership["SSESpecification"]["SSEType"] == "KMS"


def test_the_secondary_creates_only_its_own_job_state_and_names_its_replicas():
    evaluator = storage(TwoRegions="true", HoldsReplicas="true", ReplicaStreamArn=STREAM)
    assert created(evaluator, "table") == {"JobStateTable"}
    wanted = ("TableName", "StreamArn", "TableArn", "OwnershipTableName")
    outputs = {name: evaluator.resolve(evaluator.template["Outputs"][name]["Value"]) for name in wanted}
    assert outputs["TableName"] == "disa-items" and outputs["StreamArn"] == STREAM
    assert outputs["TableArn"] == "arn:aws:dynamodb:us-west-2:123456789012:table/disa-items"
    assert outputs["OwnershipTableName"] == "disa-ownership"


@pytest.mark.parametrize(("stream", "mapped"), [("", False), (STREAM, True)])
def test_the_trigger_is_mapped_only_once_the_replica_has_a_stream(stream, mapped):
    evaluator = Evaluator("functions", {"StreamArn": stream}, ACCOUNT_REGION)
    mapping = resources("functions", "AWS::Lambda::EventSourceMapping")["StreamMapping"]
    assert evaluator.condition(mapping["Condition"]) is mapped


@pytest.mark.parametrize(
    ("parameters", "primary", "regions"),
    [
        ({}, "", "us-west-2"),
        ({"PeerRegion": "us-east-1", "HoldsReplicas": "true"}, "us-east-1", "us-east-1,us-west-2"),
        ({"PeerRegion": "eu-west-1"}, "us-west-2", "us-west-2,eu-west-1"),
    ],
)
def test_every_function_is_told_the_primary_and_the_outputs_list_the_regions_primary_first(
    parameters, primary, regions
):
    evaluator = Evaluator("root-stack", parameters, ACCOUNT_REGION)
    functions = evaluator.template["Resources"]["Functions"]["Properties"]["Parameters"]
    assert evaluator.resolve(functions["PrimaryRegion"]) == primary
    assert evaluator.resolve(evaluator.template["Outputs"]["Regions"]["Value"]) == regions


def test_two_regions_refuse_a_fifo_topic_and_a_secondary_without_its_peer():
    fifo = Evaluator(
        "root-stack", {"PeerRegion": "us-east-1", "TopicType": "fifo", "RetryIntervalMinutes": "1"}, ACCOUNT_REGION
    )
    assert any("Two regions take a standard topic" in f for f in fifo.rule_failures())
    orphan = Evaluator("root-stack", {"HoldsReplicas": "true"}, ACCOUNT_REGION)
    assert any("needs PeerRegion" in f for f in orphan.rule_failures())
    assert Evaluator("root-stack", {"PeerRegion": "us-east-1"}, ACCOUNT_REGION).rule_failures() == []
