"""`disa fault sns-outage on|off`: makes SNS refuse the stack's publishes, and restores it,
without touching Disa's code. Each engine needs its own real mechanism (docs/engine-differences.md):

- AWS: an explicit Deny of sns:Publish in the topic's policy. IAM evaluates it for every
  caller, the state machine's role included, which gets AuthorizationError.
- the local cloud (ministack): it enforces topic policies only in its AUTH mode, which Disa
  cannot use (there it signs the state machine's calls with the starter's identity). So the
  topic is removed, and restored with its attributes and subscriptions; publishes get a
  real NotFound.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from disa.aws import Clients
from disa.errors import UserError
from disa.items import StackInfo

OUTAGE_SID = "DisaFaultSnsOutage"
_KEPT_TOPIC_ATTRIBUTES = ("KmsMasterKeyId", "Policy", "DisplayName", "FifoTopic", "ContentBasedDeduplication")
_KEPT_SUBSCRIPTION_ATTRIBUTES = ("RawMessageDelivery", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy")


def sns_outage(clients: Clients, info: StackInfo, on: bool, snapshot_dir: Path | None) -> str:
    """Switch the outage; ``snapshot_dir`` selects the local-cloud mechanism."""
    if snapshot_dir is None:
        return _policy_outage(clients, info.topic_arn, on)
    return _removal_outage(clients, info.topic_arn, on, snapshot_dir)


def _policy_outage(clients: Clients, topic_arn: str, on: bool) -> str:
    sns = clients("sns")
    policy = json.loads(sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"].get("Policy") or "{}")
    statements = [s for s in policy.get("Statement", []) if s.get("Sid") != OUTAGE_SID]
    if on:
        statements.append(
            {
                "Sid": OUTAGE_SID,
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sns:Publish",
                "Resource": topic_arn,
            }
        )
    policy = {"Version": "2012-10-17", **policy, "Statement": statements}
    sns.set_topic_attributes(TopicArn=topic_arn, AttributeName="Policy", AttributeValue=json.dumps(policy))
    return f"SNS outage {'on' if on else 'off'}: topic policy statement {OUTAGE_SID} {'added' if on else 'removed'}"


def _removal_outage(clients: Clients, topic_arn: str, on: bool, snapshot_dir: Path) -> str:
    sns = clients("sns")
    snapshot_file = snapshot_dir / f"{topic_arn.rsplit(':', 1)[-1]}.json"
    if on:
        if snapshot_file.exists():
            return "SNS outage is already on"
        snapshot = _snapshot(sns, topic_arn)
        snapshot_dir.mkdir(parents=True, exist_ok=True)
        snapshot_file.write_text(json.dumps(snapshot, indent=2))
        sns.delete_topic(TopicArn=topic_arn)
        return f"SNS outage on: topic removed ({len(snapshot['subscriptions'])} subscriptions kept aside)"
    if not snapshot_file.exists():
        return "SNS outage is already off"
    snapshot = json.loads(snapshot_file.read_text())
    restored = sns.create_topic(Name=snapshot["name"], Attributes=snapshot["attributes"])["TopicArn"]
    if restored != topic_arn:
        raise UserError(f"restored topic has ARN {restored}, expected {topic_arn}; redeploy the stack")
    for subscription in snapshot["subscriptions"]:
        sns.subscribe(
            TopicArn=restored,
            Protocol=subscription["Protocol"],
            Endpoint=subscription["Endpoint"],
            Attributes=subscription["Attributes"],
            ReturnSubscriptionArn=True,
        )
    snapshot_file.unlink()
    return f"SNS outage off: topic restored with {len(snapshot['subscriptions'])} subscriptions"


def _snapshot(sns: Any, topic_arn: str) -> dict[str, Any]:
    attributes = sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]
    subscriptions = []
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for subscription in page["Subscriptions"]:
            details = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])["Attributes"]
            subscriptions.append(
                {
                    "Protocol": subscription["Protocol"],
                    "Endpoint": subscription["Endpoint"],
                    "Attributes": {k: details[k] for k in _KEPT_SUBSCRIPTION_ATTRIBUTES if details.get(k)},
                }
            )
    return {
        "name": topic_arn.rsplit(":", 1)[-1],
        "attributes": {k: attributes[k] for k in _KEPT_TOPIC_ATTRIBUTES if attributes.get(k)},
        "subscriptions": subscriptions,
    }
