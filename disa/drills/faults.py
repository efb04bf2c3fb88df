"""`disa fault sns-outage on|off`: makes SNS refuse the stack's publishes, and restores it,
without touching Disa's code. Each engine needs its own real mechanism
(docs/engine-differences.md), so there are two, and the caller picks the one its target needs:

- `TopicPolicyOutage` (AWS): an explicit Deny of sns:Publish in the topic's policy. IAM
  evaluates it for every caller, the state machine's role included, which gets
  AuthorizationError.
- `TopicRemovalOutage` (the local cloud, ministack): it enforces topic policies only in its
  AUTH mode, which Disa cannot use (there it signs the state machine's calls with the
  starter's identity). So the topic is removed, and restored with its attributes and
  subscriptions; publishes get a real NotFound.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from disa.common.errors import UserError

OUTAGE_SID = "DisaFaultSnsOutage"
_KEPT_TOPIC_ATTRIBUTES = ("KmsMasterKeyId", "Policy", "DisplayName", "FifoTopic", "ContentBasedDeduplication")
_KEPT_SUBSCRIPTION_ATTRIBUTES = ("RawMessageDelivery", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy")


@dataclass(frozen=True)
class TopicPolicyOutage:
    """An SNS outage on AWS: a Deny statement in the topic policy."""

    sns: Any
    topic_arn: str

    def on(self) -> str:
        self._set_deny(True)
        return f"SNS outage on: topic policy statement {OUTAGE_SID} added"

    def off(self) -> str:
        self._set_deny(False)
        return f"SNS outage off: topic policy statement {OUTAGE_SID} removed"

    def _set_deny(self, deny: bool) -> None:
        attributes = self.sns.get_topic_attributes(TopicArn=self.topic_arn)["Attributes"]
        policy = json.loads(attributes.get("Policy") or "{}")
        statements = [s for s in policy.get("Statement", []) if s.get("Sid") != OUTAGE_SID]
        if deny:
            statements.append(
                {
                    "Sid": OUTAGE_SID,
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sns:Publish",
                    "Resource": self.topic_arn,
                }
            )
        policy = {"Version": "2012-10-17", **policy, "Statement": statements}
        self.sns.set_topic_attributes(
            TopicArn=self.topic_arn, AttributeName="Policy", AttributeValue=json.dumps(policy)
        )


@dataclass(frozen=True)
class TopicRemovalOutage:
    """An SNS outage on the local cloud: the topic is removed, its attributes and
    subscriptions kept in ``snapshot_dir`` until `off` restores them under the same ARN."""

    sns: Any
    topic_arn: str
    snapshot_dir: Path

    @property
    def _snapshot_file(self) -> Path:
        return self.snapshot_dir / f"{self.topic_arn.rsplit(':', 1)[-1]}.json"

    def on(self) -> str:
        if self._snapshot_file.exists():
            return "SNS outage is already on"
        snapshot = self._snapshot()
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        self._snapshot_file.write_text(json.dumps(snapshot, indent=2))
        self.sns.delete_topic(TopicArn=self.topic_arn)
        return f"SNS outage on: topic removed ({len(snapshot['subscriptions'])} subscriptions kept aside)"

    def off(self) -> str:
        if not self._snapshot_file.exists():
            return "SNS outage is already off"
        snapshot = json.loads(self._snapshot_file.read_text())
        restored = self.sns.create_topic(Name=snapshot["name"], Attributes=snapshot["attributes"])["TopicArn"]
        if restored != self.topic_arn:
            raise UserError(f"restored topic has ARN {restored}, expected {self.topic_arn}; redeploy the stack")
        for subscription in snapshot["subscriptions"]:
            self.sns.subscribe(
                TopicArn=restored,
                Protocol=subscription["Protocol"],
                Endpoint=subscription["Endpoint"],
                Attributes=subscription["Attributes"],
                ReturnSubscriptionArn=True,
            )
        self._snapshot_file.unlink()
        return f"SNS outage off: topic restored with {len(snapshot['subscriptions'])} subscriptions"

    def _snapshot(self) -> dict[str, Any]:
        attributes = self.sns.get_topic_attributes(TopicArn=self.topic_arn)["Attributes"]
        subscriptions = []
        for page in self.sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=self.topic_arn):
            for subscription in page["Subscriptions"]:
                details = self.sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])
                subscriptions.append(
                    {
                        "Protocol": subscription["Protocol"],
                        "Endpoint": subscription["Endpoint"],
                        "Attributes": {
                            k: details["Attributes"][k]
                            for k in _KEPT_SUBSCRIPTION_ATTRIBUTES
                            if details["Attributes"].get(k)
                        },
                    }
                )
        return {
            "name": self.topic_arn.rsplit(":", 1)[-1],
            "attributes": {k: attributes[k] for k in _KEPT_TOPIC_ATTRIBUTES if attributes.get(k)},
            "subscriptions": subscriptions,
        }
