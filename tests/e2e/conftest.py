"""The local cloud for end-to-end tests: a private engine (own port, state and temp
folders) for the session, and Disa's root stack deployed on it through the same package ->
change set path as on AWS. Each fixture undoes what it made: the stack is destroyed and the
engine stopped when the session ends."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from disa_lambda.models.status import Status

from disa.common import paths
from disa.common.aws_helpers import get_item, subscribe_queue, wait_until, write_items
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
    # One failing minute raises the publish-failures alarm here: the tests check its wiring
    # and its return to OK; the M of N default (3 of 5) is a template test.
    "PublishFailureDatapoints": "1",
    "PublishFailurePeriods": "1",
    # Two retries of a failing stream record before the on-failure queue: seconds, not minutes.
    "StreamMaxRetryAttempts": "2",
    # Small enough for a test to send a body above it (tests/e2e/test_large_messages.py).
    "PayloadMaxBytes": "6000000",
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
class SecondStack:
    """What happened to a second stack taken through its life by `disa deploy` and `disa destroy`."""

    name: str
    table: str
    key_arn: str
    nested_stack_ids: list[str]
    redeployed: bool
    status_after_redeploy: str
    trigger_before: dict[str, Any]
    trigger_after: dict[str, Any]
    kept_items: list[str]


CHANGED_DESCRIPTION = "Validates each inserted item and starts its publisher execution (revised)."


def _changed_templates(root: Path) -> Path:
    """A copy of the templates in which one nested template differs: the trigger's timeout
    and description."""
    for folder in (paths.CFT_DIR, paths.STATE_MACHINE_DIR):
        shutil.copytree(folder, root / folder.relative_to(paths.ROOT))
    functions = root / "cft" / "nested-stacks" / "functions.yaml"
    text = functions.read_text()
    text = text.replace("Validates each inserted item and starts its publisher execution.", CHANGED_DESCRIPTION, 1)
    # The trigger's timeout is the first of the two 300 s timeouts (the retry job's follows).
    assert text.count("Timeout: 300") == 2 and text.index("Timeout: 300") < text.index("RetryFunction:")
    functions.write_text(text.replace("Timeout: 300", "Timeout: 330", 1))
    return root


@pytest.fixture(scope="session")
def second_stack(local_stack, tmp_path_factory) -> SecondStack:
    """A second stack from the session's artifacts: created, an item delivered, redeployed
    from changed templates (updated in place, as on AWS), another item delivered through the
    updated stack, then destroyed (the table and its key stay, as on AWS)."""
    clients, name = local_stack.clients, f"{STACK}-second"
    stacks.deploy(clients, name, local_stack.packaged, {**PARAMETERS, "NamePrefix": name}, log=quiet)
    info = StackInfo.of(clients, name)
    ddb, lam = clients("dynamodb"), clients("lambda")
    key_arn = info.key_arn

    def send_and_settle(key: str) -> None:
        """Sends one item and waits until it is SUCCESSFUL."""
        write_items(ddb, info.table, [{"id": {"S": key}, "message": {"S": f"sent {key}"}}])
        settled = wait_until(
            lambda: Status.of(get_item(ddb, info.table, {"id": {"S": key}})),
            lambda status: isinstance(status, Status) and status.is_final,
            timeout=60,
        )
        assert settled is Status.SUCCESSFUL, f"{key} on {name}: {settled}"

    send_and_settle("before-redeploy")
    trigger_before = lam.get_function_configuration(FunctionName=info.trigger_function)
    root = _changed_templates(tmp_path_factory.mktemp("changed-templates"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(paths, "ROOT", root)
        patch.setattr(paths, "CFT_DIR", root / "cft")
        patch.setattr(paths, "ROOT_TEMPLATE", root / "cft" / "root-stack.yaml")
        patch.setattr(paths, "STATE_MACHINE_DIR", root / "state-machine")
        changed = packaging.package(clients, ARTIFACT_BUCKET, log=quiet)
    redeployed = stacks.deploy(clients, name, changed, {**PARAMETERS, "NamePrefix": name}, log=quiet)
    status_after_redeploy = stacks.stack_status(clients, name)
    trigger_after = lam.get_function_configuration(FunctionName=info.trigger_function)
    send_and_settle("after-redeploy")
    nested = [
        r["PhysicalResourceId"]
        for r in clients("cloudformation").list_stack_resources(StackName=name)["StackResourceSummaries"]
        if r["ResourceType"] == "AWS::CloudFormation::Stack"
    ]
    stacks.destroy(clients, name, log=quiet)
    kept = sorted(item["id"]["S"] for item in ddb.scan(TableName=info.table)["Items"])
    yield SecondStack(
        name, info.table, key_arn, nested, redeployed, status_after_redeploy, trigger_before, trigger_after, kept
    )
    # Retained by design; this session is done with it (as `disa destroy --delete-table` does).
    for table in (info.table, info.groups_table):
        ddb.update_table(TableName=table, DeletionProtectionEnabled=False)
        ddb.delete_table(TableName=table)
