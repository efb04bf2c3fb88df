"""`disa deploy` and `disa destroy`: change sets, live stack events (nested stacks too),
and the outputs table."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from botocore.exceptions import ClientError

from disa.common.aws import Clients
from disa.common.console import progress
from disa.common.errors import UserError
from disa.deploy.packaging import Packaged

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
POLL_SECONDS = 2.0


def stack_status(clients: Clients, stack: str) -> str | None:
    try:
        return clients("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise


def described(clients: Clients, stack: str, if_missing: str) -> dict[str, Any]:
    """The stack's description; a missing stack is a UserError saying ``if_missing``."""
    try:
        return clients("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in str(error):
            raise UserError(if_missing) from error
        raise


def outputs(clients: Clients, stack: str, if_missing: str = "") -> dict[str, str]:
    return outputs_of(
        described(
            clients,
            stack,
            if_missing or f"stack {stack} does not exist; deploy it first with `disa deploy --stack {stack}`",
        )
    )


def outputs_of(stack_description: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack_description.get("Outputs", [])}


def parameters_of(stack_description: dict[str, Any]) -> dict[str, str]:
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack_description.get("Parameters", [])}


def deploy(
    clients: Clients,
    stack: str,
    packaged: Packaged,
    parameters: dict[str, str],
    log: Callable[[str], None] = progress,
) -> bool:
    """Create or update ``stack``; returns False when there was nothing to change."""
    cfn = clients("cloudformation")
    status = stack_status(clients, stack)
    if status == "ROLLBACK_COMPLETE":
        log(f"stack {stack} failed its first creation (ROLLBACK_COMPLETE); deleting it before creating again")
        destroy(clients, stack, log)
        status = None
    if status == "REVIEW_IN_PROGRESS":
        # A first change set that failed leaves an empty stack; another CREATE change set
        # may take its place.
        status = None
    if status and status.endswith("_IN_PROGRESS"):
        raise UserError(f"stack {stack} is busy ({status}); wait for it to finish and run deploy again")
    if status in ("UPDATE_ROLLBACK_FAILED", "DELETE_FAILED"):
        raise UserError(
            f"stack {stack} is {status} and cannot be updated; fix what its failed events name, then "
            f"`aws cloudformation continue-update-rollback --stack-name {stack}` (or `disa destroy`) and deploy again"
        )
    # Unique per call, not per second: two deploys of one stack within a second (a
    # two-region subscribe deploys the secondary's twice) would collide on the name.
    change_set = f"disa-{time.time_ns()}"
    existing = set()
    if status:
        described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        existing = {p["ParameterKey"] for p in described.get("Parameters", [])}
    template_params = packaged.template_parameters
    parameters = {**parameters, **packaged.parameters}
    unknown = sorted(set(parameters) - template_params)
    if unknown:
        raise UserError(f"unknown parameter {unknown[0]}; the template takes: {', '.join(sorted(template_params))}")
    stack_parameters = [
        {"ParameterKey": name, "ParameterValue": parameters[name]}
        if name in parameters
        else {"ParameterKey": name, "UsePreviousValue": True}
        for name in sorted(template_params)
        if name in parameters or name in existing
    ]
    cfn.create_change_set(
        StackName=stack,
        ChangeSetName=change_set,
        ChangeSetType="UPDATE" if status else "CREATE",
        TemplateURL=packaged.template_url,
        Parameters=stack_parameters,
        Capabilities=CAPABILITIES,
        Tags=[{"Key": "disa:stack", "Value": stack}],
    )
    log(f"change set {change_set} created for {stack}; waiting for it to be computed")
    described = _wait_for_change_set(clients, stack, change_set)
    if described["Status"] == "FAILED":
        reason = described.get("StatusReason", "")
        cfn.delete_change_set(StackName=stack, ChangeSetName=change_set)
        if any(marker in reason for marker in _NO_CHANGES):
            log(f"stack {stack} is up to date: no changes to deploy")
            return False
        raise UserError(f"change set for {stack} failed: {reason}")
    for change in described.get("Changes", []):
        detail = change.get("ResourceChange", {})
        log(f"  {detail.get('Action', '?'):<8} {detail.get('LogicalResourceId')} ({detail.get('ResourceType')})")
    started = time.time()
    cfn.execute_change_set(StackName=stack, ChangeSetName=change_set)
    final = follow_events(clients, stack, started, log)
    if final not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise UserError(f"deploy of {stack} ended {final}; the failed events above say why")
    return True


def _wait_for_change_set(clients: Clients, stack: str, change_set: str) -> dict[str, Any]:
    cfn = clients("cloudformation")
    while True:
        described = cfn.describe_change_set(StackName=stack, ChangeSetName=change_set)
        if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return described
        time.sleep(POLL_SECONDS / 2)


def destroy(clients: Clients, stack: str, log: Callable[[str], None] = progress) -> None:
    if stack_status(clients, stack) is None:
        raise UserError(f"stack {stack} does not exist; nothing to destroy")
    started = time.time()
    clients("cloudformation").delete_stack(StackName=stack)
    final = follow_events(clients, stack, started, log)
    if final not in ("DELETE_COMPLETE", None):
        raise UserError(f"delete of {stack} ended {final}; the failed events above say why")


def delete_retained_table(clients: Clients, table: str) -> bool:
    """Delete a table the stack retained (its deletion protection turned off first); False
    when it is already gone or going, so a destroy run again, or an engine that deleted it
    with the stack, is not an error."""
    ddb = clients("dynamodb")
    try:
        described = ddb.describe_table(TableName=table)["Table"]
        if described["TableStatus"] == "DELETING":
            return False
        if described.get("DeletionProtectionEnabled"):
            ddb.update_table(TableName=table, DeletionProtectionEnabled=False)
        ddb.delete_table(TableName=table)
    except ddb.exceptions.ResourceNotFoundException:
        return False
    return True


@dataclass
class _EventFollower:
    clients: Clients
    since: float
    log: Callable[[str], None]
    seen: set[str] = field(default_factory=set)

    def poll(self, stack_id: str, label: str) -> None:
        cfn = self.clients("cloudformation")
        try:
            events = cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
        except ClientError:
            return
        for event in reversed(events):
            if event["EventId"] in self.seen or event["Timestamp"].timestamp() < self.since - 1:
                continue
            self.seen.add(event["EventId"])
            reason = f"  {event['ResourceStatusReason']}" if event.get("ResourceStatusReason") else ""
            self.log(
                f"{event['Timestamp']:%H:%M:%S} {label:<10} {event['LogicalResourceId']:<28} "
                f"{event['ResourceStatus']}{reason}"
            )


def follow_events(clients: Clients, stack: str, since: float, log: Callable[[str], None]) -> str | None:
    """Print stack events of the root and its nested stacks until the root settles."""
    cfn = clients("cloudformation")
    follower = _EventFollower(clients, since, log)
    try:
        stack_id = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackId"]
    except ClientError:
        return None
    while True:
        follower.poll(stack_id, "root")
        try:
            resources = cfn.list_stack_resources(StackName=stack_id)["StackResourceSummaries"]
        except ClientError:
            resources = []
        for resource in resources:
            if resource["ResourceType"] == "AWS::CloudFormation::Stack" and resource.get("PhysicalResourceId"):
                follower.poll(resource["PhysicalResourceId"], resource["LogicalResourceId"])
        status = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            return status
        time.sleep(POLL_SECONDS)
