"""A deployed Disa stack as the CLI, the drills and the tests address it: read from the
root stack's outputs, so anything deployed with `disa deploy` can be operated."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from disa.common import paths
from disa.common.aws import Clients
from disa.deploy.packaging import load_template
from disa.deploy.stacks import described, outputs_of, parameters_of


@dataclass(frozen=True)
class StackInfo:
    name: str
    name_prefix: str  # the NamePrefix its resources are named with, which subscriber stacks share
    table: str
    key_name: str
    key_type: str
    topic_arn: str
    alarm_topic_arn: str
    retry_function: str
    trigger_function: str
    publish_failures_alarm: str
    abandoned_items_alarm: str
    trigger_failures_alarm: str
    stream_lag_alarm: str
    trigger_failure_queue_url: str
    payload_bucket: str  # where bodies too large to publish are stored (and producers may upload, under incoming/)
    key_arn: str  # the stack's KMS key: the table's, the topics' and the payload bucket's
    groups_table: str  # FIFO topics: each message group's turn (kept with the items table)
    region: str = ""  # the region this stack runs in
    # Two regions: both, primary first, and the table naming the one that publishes;
    # one region: (region,) and "".
    regions: tuple[str, ...] = ()
    ownership_table: str = ""
    state_machine_arn: str = ""  # the publisher: its executions, its AWS/States metrics
    every_alarm: tuple[str, ...] = ()  # the AlarmNames output; empty from a stack deployed before it
    dashboard: str = ""
    finished_item_retention_days: int = 0  # FinishedItemRetentionDays: a dismissed item expires after it
    # Where Disa's own metrics are (models/metrics.py), a root parameter, and the retry job's
    # schedule, which says how old its last gauge reading may be.
    metric_namespace: str = "Disa"
    retry_interval_minutes: int = 1
    # FIFO topics: whether an ABANDONED item releases its message group or holds it (a root
    # parameter), and how long a body stored in S3 is kept (PayloadRetentionDays).
    fifo_abandoned_items: str = "release"
    payload_retention_days: int = 30

    @classmethod
    def of(cls, clients: Clients, stack: str) -> StackInfo:
        description = described(
            clients, stack, f"stack {stack} does not exist; deploy it first with `disa deploy --stack {stack}`"
        )
        out, parameters = outputs_of(description), parameters_of(description)
        return cls(
            name=stack,
            name_prefix=parameters["NamePrefix"],
            table=out["TableName"],
            key_name=out["KeyAttributeName"],
            key_type=out["KeyAttributeType"],
            topic_arn=out["MessageTopicArn"],
            alarm_topic_arn=out["AlarmTopicArn"],
            retry_function=out["RetryFunctionName"],
            trigger_function=out["TriggerFunctionName"],
            publish_failures_alarm=out["PublishFailuresAlarmName"],
            abandoned_items_alarm=out["AbandonedItemsAlarmName"],
            trigger_failures_alarm=out["TriggerFailuresAlarmName"],
            stream_lag_alarm=out["StreamLagAlarmName"],
            trigger_failure_queue_url=out["TriggerFailureQueueUrl"],
            payload_bucket=out["PayloadBucketName"],
            key_arn=out["KeyArn"],
            groups_table=out["GroupsTableName"],
            region=clients.region,
            regions=tuple(out.get("Regions", clients.region).split(",")),
            ownership_table=out.get("OwnershipTableName", ""),
            state_machine_arn=out["StateMachineArn"],
            every_alarm=tuple(name for name in out.get("AlarmNames", "").split(",") if name),
            dashboard=out.get("DashboardName", ""),
            finished_item_retention_days=int(out.get("FinishedItemRetentionDays", "0")),
            metric_namespace=parameters.get("MetricNamespace") or _template_default("MetricNamespace"),
            retry_interval_minutes=int(
                parameters.get("RetryIntervalMinutes") or _template_default("RetryIntervalMinutes")
            ),
            fifo_abandoned_items=parameters.get("FifoAbandonedItems") or _template_default("FifoAbandonedItems"),
            payload_retention_days=int(out.get("PayloadRetentionDays") or _template_default("PayloadRetentionDays")),
        )

    @property
    def two_regions(self) -> bool:
        return len(self.regions) == 2

    @property
    def topic_is_fifo(self) -> bool:
        return self.topic_arn.endswith(".fifo")  # SNS requires the suffix on FIFO topic names

    @property
    def metric_dimensions(self) -> list[dict[str, str]]:
        """The one dimension of every Disa metric: StackName, valued with the NamePrefix
        (functions.yaml METRIC_STACK_NAME), which `disa deploy` derives from the stack name."""
        return [{"Name": "StackName", "Value": self.name_prefix}]

    @property
    def account(self) -> str:
        """The stack's account (its key's): what every S3 call names as ExpectedBucketOwner."""
        return self.key_arn.split(":")[4]

    @property
    def topic_name(self) -> str:
        return self.topic_arn.rsplit(":", 1)[-1]

    @property
    def alarm_names(self) -> tuple[str, ...]:
        return self.every_alarm or (
            self.publish_failures_alarm,
            self.abandoned_items_alarm,
            self.trigger_failures_alarm,
            self.stream_lag_alarm,
        )


@cache
def _template_default(parameter: str) -> str:
    """The root template's default, for a stack description that does not list the parameter
    (CloudFormation lists every declared one, so only a stack made some other way)."""
    return str(load_template(paths.ROOT_TEMPLATE)["Parameters"][parameter]["Default"])
