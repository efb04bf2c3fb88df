"""Least privilege and encryption, read from the templates: each IAM action is one that a
code path or the platform needs, every store is encrypted with the stack's key, and every
topic and queue refuses plain HTTP."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from tests.support.templates import ROOT, resources, template, template_names

pytestmark = pytest.mark.templates
LAMBDA = ROOT / "code" / "python" / "disa_lambda"

# Actions no code line calls but the platform needs for the function or state machine to
# run as configured. Each says why; nothing else may appear in a policy.
PLATFORM_NEEDS = {
    "logs:CreateLogStream": "Lambda writes the function's logs",
    "logs:PutLogEvents": "Lambda writes the function's logs",
    "xray:PutTraceSegments": "active tracing",
    "xray:PutTelemetryRecords": "active tracing",
    "kms:Decrypt": "environment variables, stream records, topic payloads and stored bodies are encrypted with the key",
    "kms:GenerateDataKey": "the on-failure destination queue and the payload bucket are encrypted with the key",
    "kms:GenerateDataKey*": "publishing to a topic encrypted with the key",
    "dynamodb:DescribeStream": "the event source mapping reads the stream",
    "dynamodb:GetRecords": "the event source mapping reads the stream",
    "dynamodb:GetShardIterator": "the event source mapping reads the stream",
    "dynamodb:ListStreams": "the event source mapping reads the stream",
    "sqs:SendMessage": "the event source mapping's on-failure destination",
    "xray:GetSamplingRules": "state machine tracing",
    "xray:GetSamplingTargets": "state machine tracing",
    "s3:ListBucket": "without it S3 answers HeadObject of a missing key with 403, not 404",
}
LOG_DELIVERY = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
# Actions AWS offers no resource-level permission for; only these may use Resource "*".
STAR_RESOURCE_ALLOWED = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "cloudwatch:PutMetricData",
    "dynamodb:ListStreams",
    *LOG_DELIVERY,
}
SERVICE_PREFIX = {"dynamodb": "dynamodb", "stepfunctions": "states", "cloudwatch": "cloudwatch", "s3": "s3"}
# S3 operations authorised by another action's name
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html).
S3_AUTHORISED_AS = {
    "s3:HeadObject": {"s3:GetObject"},
    "s3:CopyObject": {"s3:GetObject", "s3:PutObject"},  # read the source, write the target
}


def _calls_in(module: Path) -> set[str]:
    """IAM actions of the boto3 operations a data-access module uses (self._client.<op>)."""
    tree = ast.parse(module.read_text())
    services = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "client" and node.args
    }
    # Every self._client.<operation> (or another client of the one service, such as
    # self._copy_client), called here or handed to a pager.
    operations = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr.endswith("_client")
    }
    [service] = services
    actions = {f"{SERVICE_PREFIX[service]}:{''.join(p.title() for p in op.split('_'))}" for op in operations}
    return set().union(*(S3_AUTHORISED_AS.get(action, {action}) for action in actions))


def _code_actions(handler: str) -> set[str]:
    source = (LAMBDA / "handlers" / f"{handler}.py").read_text()
    modules = re.findall(r"from disa_lambda\.dal\.(\w+) import", source)
    actions = set().union(*(_calls_in(LAMBDA / "dal" / f"{m}.py") for m in modules))
    if handler == "retry":  # query reaches only the due index
        assert "dynamodb:Query" in actions
    return actions


def _asl_actions() -> set[str]:
    asl = json.loads((ROOT / "state-machine" / "publisher.asl.json").read_text())
    actions = set()
    for state in asl["States"].values():
        resource = state.get("Resource", "")
        if resource.startswith("arn:aws:states:::"):
            service, operation = resource.removeprefix("arn:aws:states:::").removeprefix("aws-sdk:").split(":")
            actions.add(f"{service}:{operation[0].upper()}{operation[1:]}")
    return actions


def _statements(role: str) -> list[dict]:
    """The role's inline statements and those of every policy attached to it (the source
    buckets' policy exists only with PayloadSourceBuckets)."""
    props = resources("roles", "AWS::IAM::Role")[role]["Properties"]
    documents = [p["PolicyDocument"] for p in props["Policies"]]
    documents += [
        policy["Properties"]["PolicyDocument"]
        for policy in resources("roles", "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
    ]
    return [s for document in documents for s in document["Statement"]]


def _granted(role: str) -> set[str]:
    actions = set()
    for statement in _statements(role):
        assert statement["Effect"] == "Allow"
        granted = statement["Action"]
        actions.update([granted] if isinstance(granted, str) else granted)
    return actions


@pytest.mark.parametrize(("role", "handler"), [("TriggerRole", "trigger"), ("RetryRole", "retry")])
def test_function_role_grants_what_its_code_calls_and_the_platform_needs(role, handler):
    granted = _granted(role)
    needed = _code_actions(handler)
    assert needed <= granted, f"{role} lacks {needed - granted}: the function would fail at run time"
    extra = granted - needed - set(PLATFORM_NEEDS)
    assert not extra, f"{role} grants {extra}, which no code path or platform feature uses"


def test_state_machine_role_grants_what_the_asl_calls():
    granted = _granted("StateMachineRole")
    needed = _asl_actions()
    assert needed == {"sns:Publish", "dynamodb:UpdateItem", "cloudwatch:PutMetricData"}
    assert needed <= granted
    assert not granted - needed - set(PLATFORM_NEEDS) - LOG_DELIVERY


@pytest.mark.parametrize("role", ["TriggerRole", "RetryRole", "StateMachineRole"])
def test_no_wildcard_action_and_star_resources_only_where_aws_has_no_resource_level(role):
    for statement in _statements(role):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any("*" in a and a != "kms:GenerateDataKey*" for a in actions), statement
        if statement["Resource"] == "*":
            assert set(actions) <= STAR_RESOURCE_ALLOWED, statement
            if "cloudwatch:PutMetricData" in actions:
                assert "cloudwatch:namespace" in json.dumps(statement.get("Condition", {}))


def test_every_store_topic_queue_and_log_group_uses_the_stacks_key():
    key_refs = {"KmsMasterKeyId", "KMSMasterKeyId", "KMSMasterKeyID", "KmsKeyId", "KmsKeyArn"}
    checked = 0
    for name in ("table", "topics", "functions", "state-machine", "payloads"):
        for logical_id, resource in template(name)["Resources"].items():
            if resource["Type"] in (
                "AWS::SNS::Topic",
                "AWS::SQS::Queue",
                "AWS::Logs::LogGroup",
                "AWS::DynamoDB::Table",
                "AWS::Lambda::Function",
                "AWS::S3::Bucket",
            ):
                text = json.dumps(resource["Properties"])
                assert any(f'"{k}": {{"Ref": "KeyArn"}}' in text for k in key_refs), f"{name}/{logical_id}"
                checked += 1
    assert checked >= 10


def test_every_topic_and_queue_denies_insecure_transport():
    protected = {}
    for name in ("topics", "functions"):
        for resource in template(name)["Resources"].values():
            if resource["Type"] in ("AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy"):
                targets = resource["Properties"].get("Topics") or resource["Properties"].get("Queues")
                denies = [
                    s
                    for s in resource["Properties"]["PolicyDocument"]["Statement"]
                    if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                ]
                if denies:
                    protected.update({t["Ref"]: name for t in targets})
    owned = {
        logical
        for name in ("topics", "functions")
        for logical, r in template(name)["Resources"].items()
        if r["Type"] in ("AWS::SNS::Topic", "AWS::SQS::Queue")
    }
    assert owned == set(protected)


def test_what_outlives_the_stack_is_kept_on_delete_but_not_after_a_failed_first_create():
    """Data and its key survive `disa destroy`; a first create that rolls back leaves nothing
    behind whose name the next deploy would collide with (RetainExceptOnCreate)."""
    kept = {
        (name, logical_id): resource
        for name in template_names()
        for logical_id, resource in template(name).get("Resources", {}).items()
        if "DeletionPolicy" in resource or "UpdateReplacePolicy" in resource
    }
    expected = {
        ("table", "Table"),
        ("table", "GroupsTable"),
        ("table", "OwnershipTable"),
        ("encryption", "Key"),
        ("payloads", "PayloadBucket"),
    }
    assert expected <= set(kept)
    for where, resource in kept.items():
        assert resource.get("DeletionPolicy") == "RetainExceptOnCreate", where
        assert resource.get("UpdateReplacePolicy") == "Retain", where  # RetainExceptOnCreate is not valid there


def test_finished_items_expire_through_ttl_only_when_a_retention_is_set():
    """FinishedItemRetentionDays (0: kept) reaches both functions; the table's TTL reads the
    expiresAt they and the state machine write on SUCCESSFUL and REJECTED items only."""
    table = resources("table", "AWS::DynamoDB::Table")["Table"]["Properties"]
    # TTL is turned on only with a retention: an upgrade keeping the default leaves the
    # table's TTL alone (DynamoDB allows one TTL change an hour, which a rollback would need).
    assert table["TimeToLiveSpecification"] == {
        "Fn::If": ["ExpiresFinishedItems", {"AttributeName": "expiresAt", "Enabled": True}, {"Ref": "AWS::NoValue"}]
    }
    assert template("table")["Conditions"]["ExpiresFinishedItems"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "FinishedItemRetentionDays"}, "0"]}]
    }
    root = template("root-stack")
    assert root["Parameters"]["FinishedItemRetentionDays"]["Default"] == 0
    assert root["Resources"]["Storage"]["Properties"]["Parameters"]["FinishedItemRetentionDays"] == {
        "Ref": "FinishedItemRetentionDays"
    }
    assert root["Resources"]["Functions"]["Properties"]["Parameters"]["FinishedItemRetentionDays"] == {
        "Ref": "FinishedItemRetentionDays"
    }
    functions = template("functions")["Resources"]
    for name in ("TriggerFunction", "RetryFunction"):
        variables = functions[name]["Properties"]["Environment"]["Variables"]
        assert variables["FINISHED_ITEM_RETENTION_DAYS"] == {"Ref": "FinishedItemRetentionDays"}, name
    states = json.loads((ROOT / "state-machine" / "publisher.asl.json").read_text())["States"]
    # The two ways of recording success differ only in the expiry, so they cannot drift apart.
    plain, expiring = states["RecordSuccess"], states["RecordSuccessExpiring"]
    values = dict(expiring["Parameters"]["ExpressionAttributeValues"])
    assert values.pop(":expires") == {"N.$": "$.expiresAt"}
    assert values == plain["Parameters"]["ExpressionAttributeValues"]
    assert expiring["Parameters"]["UpdateExpression"] == plain["Parameters"]["UpdateExpression"].replace(
        " REMOVE", ", expiresAt = :expires REMOVE"
    )
    same = {k: v for k, v in expiring.items() if k not in ("Parameters", "Comment")}
    assert same == {k: v for k, v in plain.items() if k not in ("Parameters", "Comment")}
    # Nothing writes an expiry on ABANDONED (it waits for a person) but the dismissal.
    assert "expiresAt" not in states["RecordAbandoned"]["Parameters"]["UpdateExpression"]


def test_every_kms_grant_to_a_role_holds_only_through_an_aws_service():
    """A role's key permission is usable only by the services that keep data under the key
    (kms:ViaService), never by the role's code calling KMS directly."""
    grants = []
    for name in template_names():
        for logical_id, resource in template(name).get("Resources", {}).items():
            documents = []
            if resource["Type"] == "AWS::IAM::Role":
                documents = [policy["PolicyDocument"] for policy in resource["Properties"].get("Policies", [])]
            elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                documents = [resource["Properties"]["PolicyDocument"]]
            for document in documents:
                for statement in json.loads(json.dumps(document))["Statement"]:
                    if "Fn::If" in statement:
                        statement = statement["Fn::If"][1]
                    actions = statement.get("Action", [])
                    actions = [actions] if isinstance(actions, str) else actions
                    if any(action.startswith("kms:") for action in actions):
                        grants.append((name, logical_id, statement))
    assert len(grants) >= 6
    for name, logical_id, statement in grants:
        via = statement.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService")
        assert via, f"{name} {logical_id} {statement.get('Sid')}: kms without kms:ViaService"
