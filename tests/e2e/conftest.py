"""The local cloud for end-to-end tests: a private engine (own port, state and temp
folders) for the session, and Disa's root stack deployed on it through the same package ->
change set path as on AWS. Each fixture undoes what it made: the stack is destroyed and the
engine stopped when the session ends."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from disa.common.aws_helpers import subscribe_queue
from disa.deploy import packaging, stacks
from disa.local_cloud.engine import LocalCloud
from disa.operate.stack import StackInfo
from tests.support.local_stack import LocalStack
from tests.support.net import free_port

STACK = "disa-e2e"
ARTIFACT_BUCKET = "disa-e2e-artifacts"
PARAMETERS = {
    "NamePrefix": STACK,
    "TableDeletionProtection": "false",
    # Three attempts: a scheduled retry run during a test's outage uses one without
    # abandoning the item the test means to recover.
    "MaxAttempts": "3",
    "RetryBaseDelaySeconds": "1",
    "RetryMaxDelaySeconds": "2",
    "AlarmPeriodSeconds": "60",
    # Two retries of a failing stream record before the on-failure queue: seconds, not minutes.
    "StreamMaxRetryAttempts": "2",
}


def quiet(_: str) -> None:
    """Deploy progress is for people; tests read outcomes."""


@pytest.fixture(scope="session")
def local_cloud(tmp_path_factory):
    cloud = LocalCloud(home=tmp_path_factory.mktemp("local-cloud"), port=free_port())
    cloud.up()
    yield cloud
    cloud.down()


@pytest.fixture(scope="session")
def local_stack(local_cloud) -> LocalStack:
    clients = local_cloud.clients()
    packaged = packaging.package(clients, ARTIFACT_BUCKET, log=quiet)
    stacks.deploy(clients, STACK, packaged, PARAMETERS, log=quiet)
    info = StackInfo.of(clients, STACK)
    sqs, sns = clients("sqs"), clients("sns")
    yield LocalStack(
        clients=clients,
        info=info,
        packaged=packaged,
        queue_url=subscribe_queue(sqs, sns, info.topic_arn, f"{STACK}-subscriber"),
        alarm_queue_url=subscribe_queue(sqs, sns, info.alarm_topic_arn, f"{STACK}-alarm-watcher"),
    )
    if stacks.stack_status(clients, STACK):
        stacks.destroy(clients, STACK, log=quiet)


@pytest.fixture
def private_cloud(tmp_path):
    """An engine of its own, for a test that stops, restarts or floods it."""
    cloud = LocalCloud(home=tmp_path / "private-cloud", port=free_port())
    cloud.up()
    yield cloud
    cloud.down()


@dataclass(frozen=True)
class DestroyedStack:
    name: str
    table: str
    nested_stack_ids: list[str]


@pytest.fixture(scope="session")
def destroyed_stack(local_stack) -> DestroyedStack:
    """A second stack from the same artifacts, deployed and then destroyed with `disa destroy`'s code."""
    clients, name = local_stack.clients, f"{STACK}-destroyed"
    stacks.deploy(clients, name, local_stack.packaged, {**PARAMETERS, "NamePrefix": name}, log=quiet)
    nested = [
        r["PhysicalResourceId"]
        for r in clients("cloudformation").list_stack_resources(StackName=name)["StackResourceSummaries"]
        if r["ResourceType"] == "AWS::CloudFormation::Stack"
    ]
    table = StackInfo.of(clients, name).table
    stacks.destroy(clients, name, log=quiet)
    return DestroyedStack(name, table, nested)
