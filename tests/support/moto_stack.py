"""Disa's stack as moto holds it (in process): the table, topics, subscriber queues, state
machine and alarms built from the templates' own properties and the real ASL, the root
stack's outputs registered as a CloudFormation stack (so the CLI finds it by name), and the
functions' environment as the templates set it. A template change reaches the tests
instead of drifting from them."""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import boto3
from disa_lambda.dal.items import ItemStore
from disa_lambda.logic import attempts, clock, launch
from disa_lambda.models.claim import Claim
from disa_lambda.models.settings import RetrySettings, TriggerSettings
from disa_lambda.models.status import Field, Status

from disa.common.aws_helpers import get_item, received_messages, subscribe_queue, wait_until
from tests.support.templates import asl_text, resources, template

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's
NAME_PREFIX = "disa-test"
NAMESPACE = "Disa"
KEY_NAME = "id"
SECONDARY_REGION = "us-west-2"  # two regions: the region that does not own at first


def resolve(value: Any, params: dict[str, str]) -> Any:
    """Enough of Ref and Fn::Sub to read a nested template's properties."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return params[value["Ref"]]
        if set(value) == {"Fn::Sub"}:
            return re.sub(r"\$\{([^}]+)\}", lambda m: params[m.group(1)], value["Fn::Sub"])
        return {k: resolve(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, params) for v in value]
    return value


@dataclass
class MotoStack:
    topic_type: str = "standard"
    max_attempts: int = 3
    fifo_abandoned_items: str = "release"
    # Two regions: this stack plays the primary, and the ownership table says who publishes.
    two_regions: bool = False
    finished_item_retention_days: int = 0  # FinishedItemRetentionDays: 0 keeps finished items
    clients: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for service in ("dynamodb", "sns", "sqs", "stepfunctions", "cloudwatch", "kms", "cloudformation", "s3"):
            self.clients[service] = boto3.client(service, region_name=REGION)
        key_arn = self.clients["kms"].create_key()["KeyMetadata"]["Arn"]
        self.params = {
            "NamePrefix": NAME_PREFIX,
            "KeyArn": key_arn,
            "KeyAttributeName": KEY_NAME,
            "KeyAttributeType": "S",
            "DeletionProtection": "false",
        }
        self.payload_bucket, self.upload_bucket = self._create_buckets()
        self.table = self._create_table()
        self.job_state_table = self._create_key_only_table("JobStateTable")
        self.groups_table = self._create_key_only_table("GroupsTable")
        self.ownership_table = self._create_key_only_table("OwnershipTable") if self.two_regions else ""
        self.primary_region = REGION if self.two_regions else ""
        self.topic_arn = self._create_topic()
        self.queue_url, self.envelope_queue_url = self._subscribe_queues()
        self.state_machine_arn = self._create_state_machine()
        self.alarm_topic_arn = self.clients["sns"].create_topic(Name=f"{NAME_PREFIX}-alarms")["TopicArn"]
        self.trigger_failure_queue_url = self.clients["sqs"].create_queue(QueueName=f"{NAME_PREFIX}-trigger-failures")[
            "QueueUrl"
        ]
        self.alarms_by_logical_id = self._create_alarms()
        self._register_outputs()

    # -- construction -------------------------------------------------------------------
    def _create_table(self) -> str:
        # TTL is the table's own business (no test waits days for it): what Disa writes for it is tested.
        table = resources("table", "AWS::DynamoDB::Table")["Table"]["Properties"]
        props = resolve({k: v for k, v in table.items() if k != "TimeToLiveSpecification"}, self.params)
        self.clients["dynamodb"].create_table(
            TableName=props["TableName"],
            BillingMode=props["BillingMode"],
            AttributeDefinitions=props["AttributeDefinitions"],
            KeySchema=props["KeySchema"],
            GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
            StreamSpecification={"StreamEnabled": True, **props["StreamSpecification"]},
            SSESpecification={
                "Enabled": props["SSESpecification"]["SSEEnabled"],
                "SSEType": props["SSESpecification"]["SSEType"],
                "KMSMasterKeyId": props["SSESpecification"]["KMSMasterKeyId"],
            },
        )
        return props["TableName"]

    def _create_key_only_table(self, logical_id: str) -> str:
        """One of the stack's small tables (jobs, groups): its key schema, nothing more."""
        props = resolve(resources("table", "AWS::DynamoDB::Table")[logical_id]["Properties"], self.params)
        self.clients["dynamodb"].create_table(
            TableName=props["TableName"],
            BillingMode=props["BillingMode"],
            AttributeDefinitions=props["AttributeDefinitions"],
            KeySchema=props["KeySchema"],
        )
        return props["TableName"]

    def _create_buckets(self) -> tuple[str, str]:
        """The payload bucket (CloudFormation names it; moto's S3 gets a fixed name) and a
        producer's bucket the stack is told it may read (PayloadSourceBuckets)."""
        names = (f"{NAME_PREFIX}-payloads", f"{NAME_PREFIX}-uploads")
        for name in names:
            self.clients["s3"].create_bucket(Bucket=name)
        return names

    @property
    def fifo(self) -> bool:
        return self.topic_type == "fifo"

    def _create_topic(self) -> str:
        name = f"{NAME_PREFIX}-messages" + (".fifo" if self.fifo else "")
        attributes = {"FifoTopic": "true", "ContentBasedDeduplication": "false"} if self.fifo else {}
        return self.clients["sns"].create_topic(Name=name, Attributes=attributes)["TopicArn"]

    def _subscribe_queues(self) -> tuple[str, str]:
        """A raw-delivery queue (body and attributes as sent) and an envelope queue (shows
        the Subject)."""
        sqs, sns, suffix = self.clients["sqs"], self.clients["sns"], ".fifo" if self.fifo else ""
        return (
            subscribe_queue(sqs, sns, self.topic_arn, f"{NAME_PREFIX}-raw{suffix}"),
            subscribe_queue(sqs, sns, self.topic_arn, f"{NAME_PREFIX}-envelope{suffix}", raw=False),
        )

    def _create_state_machine(self) -> str:
        props = resources("state-machine", "AWS::StepFunctions::StateMachine")["Publisher"]["Properties"]
        bound = resolve(
            props["DefinitionSubstitutions"],
            {**self.params, "MessageTopicArn": self.topic_arn, "TableName": self.table, "MetricNamespace": NAMESPACE},
        )
        definition = asl_text()
        for name, value in bound.items():
            definition = definition.replace("${" + name + "}", value)
        return self.clients["stepfunctions"].create_state_machine(
            name=f"{NAME_PREFIX}-publisher",
            definition=definition,
            roleArn="arn:aws:iam::123456789012:role/disa-test-publisher",
        )["stateMachineArn"]

    def _create_alarms(self) -> dict[str, str]:
        """The alarms template's alarms, by logical id (moto's CloudFormation skips alarms)."""
        params = {
            **self.params,
            "AlarmTopicArn": self.alarm_topic_arn,
            "MetricNamespace": NAMESPACE,
            "FailureAlarmThreshold": "1",
            "AlarmPeriodSeconds": "60",
            "TriggerFailureQueueName": f"{NAME_PREFIX}-trigger-failures",
            "TriggerFunctionName": f"{NAME_PREFIX}-trigger",
            "PublishFailureDatapoints": "3",
            "PublishFailurePeriods": "5",
            "RetryIntervalMinutes": "1",
            "RetryJobScheduled": "true",
            "StateMachineArn": self.state_machine_arn,
            "TopicIsFifo": "true" if self.fifo else "false",
            "StalledGroupSeconds": "900",
        }
        mappings = template("alarms")["Mappings"]
        # The alarms template's conditions are each one Fn::Equals of a parameter.
        conditions = {
            name: resolve(condition["Fn::Equals"][0], params) == condition["Fn::Equals"][1]
            for name, condition in template("alarms")["Conditions"].items()
        }
        names = {}
        for logical_id, alarm in resources("alarms", "AWS::CloudWatch::Alarm").items():
            if "Condition" in alarm and not conditions[alarm["Condition"]]:
                continue  # as CloudFormation leaves out a resource whose condition is false
            props = dict(alarm["Properties"])
            if isinstance(props.get("Period"), dict) and "Fn::FindInMap" in props["Period"]:
                mapping, key, field_name = props["Period"]["Fn::FindInMap"]
                props["Period"] = mappings[mapping][params[key["Ref"]]][field_name]
            props = resolve(props, params)
            for number in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
                if number in props:
                    props[number] = int(props[number])
            props["Threshold"] = float(props["Threshold"])
            for query in props.get("Metrics", []):
                if "MetricStat" in query:
                    query["MetricStat"]["Period"] = int(query["MetricStat"]["Period"])
            self.clients["cloudwatch"].put_metric_alarm(**props)
            names[logical_id] = props["AlarmName"]
        return names

    def _register_outputs(self) -> None:
        """A stack named like the root stack whose outputs describe these resources."""
        outputs = {
            "TableName": self.table,
            "GroupsTableName": self.groups_table,
            "OwnershipTableName": self.ownership_table,
            "Regions": f"{REGION},{SECONDARY_REGION}" if self.two_regions else REGION,
            "KeyAttributeName": KEY_NAME,
            "KeyAttributeType": "S",
            "MessageTopicArn": self.topic_arn,
            "AlarmTopicArn": self.alarm_topic_arn,
            "StateMachineArn": self.state_machine_arn,
            "TriggerFunctionName": f"{NAME_PREFIX}-trigger",
            "RetryFunctionName": f"{NAME_PREFIX}-retry",
            "TriggerFailureQueueUrl": self.trigger_failure_queue_url,
            "PublishFailuresAlarmName": self.alarms_by_logical_id["PublishFailuresAlarm"],
            "AbandonedItemsAlarmName": self.alarms_by_logical_id["AbandonedItemsAlarm"],
            "TriggerFailuresAlarmName": self.alarms_by_logical_id["TriggerFailuresAlarm"],
            "StreamLagAlarmName": self.alarms_by_logical_id["StreamLagAlarm"],
            "AlarmNames": ",".join(self.alarms_by_logical_id.values()),
            "DashboardName": f"{NAME_PREFIX}-pipeline",
            "KeyArn": self.params["KeyArn"],
            "PayloadBucketName": self.payload_bucket,
            "PayloadReaderPolicyArn": f"arn:aws:iam::{ACCOUNT}:policy/{NAME_PREFIX}-payload-reader",
            "PayloadUploaderPolicyArn": f"arn:aws:iam::{ACCOUNT}:policy/{NAME_PREFIX}-payload-uploader",
            "PayloadRetentionDays": "30",
            "FinishedItemRetentionDays": str(self.finished_item_retention_days),
        }
        assert set(outputs) == set(template("root-stack")["Outputs"]), "describe every root stack output"
        parameters = {"NamePrefix": NAME_PREFIX, "FifoAbandonedItems": self.fifo_abandoned_items}
        outputs_stack(self.clients["cloudformation"], NAME_PREFIX, outputs, parameters)

    # -- the environment the functions get --------------------------------------------------
    def environment(self) -> dict[str, str]:
        """Values for every variable the templates give the functions."""
        fn = template("functions")["Resources"]
        variables = {
            **fn["TriggerFunction"]["Properties"]["Environment"]["Variables"],
            **fn["RetryFunction"]["Properties"]["Environment"]["Variables"],
        }
        values = resolve(
            variables,
            {
                **self.params,
                "TableName": self.table,
                "StateMachineArn": self.state_machine_arn,
                "TopicIsFifo": "true" if self.fifo else "false",
                "MaxAttempts": str(self.max_attempts),
                "RetryBaseDelaySeconds": "60",
                "RetryMaxDelaySeconds": "3600",
                "MetricNamespace": NAMESPACE,
                "RetryIntervalMinutes": "1",
                "SweepSegments": "4",
                "SweepGraceSeconds": "600",
                "SweepSecondsPerRun": "30",
                "JobStateTableName": self.job_state_table,
                "GroupsTableName": self.groups_table,
                "FifoAbandonedItems": self.fifo_abandoned_items,
                "AWS::AccountId": ACCOUNT,
                "PayloadBucketName": self.payload_bucket,
                "PayloadSourceBuckets": self.upload_bucket,
                "PayloadOffloadThreshold": "262144",
                "PayloadMaxBytes": "2147483648",
                "OwnershipTableName": self.ownership_table,
                "PrimaryRegion": self.primary_region,
                "FinishedItemRetentionDays": str(self.finished_item_retention_days),
            },
        )
        return {name: str(value) for name, value in values.items()}

    def trigger_settings(self) -> TriggerSettings:
        return TriggerSettings.from_env(self.environment())

    def retry_settings(self) -> RetrySettings:
        return RetrySettings.from_env(self.environment())

    # -- attempts, planned and claimed by the Lambda code itself ------------------------------
    def key(self, key: str) -> dict[str, Any]:
        return {KEY_NAME: {"S": key}}

    def plan_claim(self, key: str, attempt: int = 1) -> Claim:
        return attempts.plan_claim(self.key(key), attempt, time.time(), self.trigger_settings(), random.Random())

    def execution_input(
        self, key: str, body: dict[str, Any], claim: Claim | None = None
    ) -> tuple[Claim, dict[str, Any]]:
        """The claim and execution input the trigger (or, for a later attempt, the retry job)
        makes for an item with ``body``, through the same functions they use; the input is
        checked against its contract there. The stored item's acceptedAt, once claimed,
        keeps a derived FIFO deduplication id the same on every attempt."""
        claim = claim or self.plan_claim(key)
        accepted_at = self.item(key).get(Field.ACCEPTED_AT, {}).get("S", clock.iso(time.time()))
        publish = attempts.publish_parameters(self.key(key), body, self.fifo, accepted_at=accepted_at)
        fifo = launch.fifo_window(self.trigger_settings(), time.time(), None)
        return claim, attempts.execution_input(self.key(key), claim, publish, fifo)

    def insert_and_claim(self, key: str, body: dict[str, Any], attempt: int = 1) -> tuple[Claim, dict[str, Any]]:
        """Insert the item, then claim it as the trigger does (PENDING, lease, token)."""
        self.put({**self.key(key), **body})
        claim = self.plan_claim(key, attempt)
        assert ItemStore(self.table, self.clients["dynamodb"]).claim_new(self.key(key), claim, clock.iso(time.time()))
        return self.execution_input(key, body, claim)

    def reclaim(self, key: str, body: dict[str, Any], previous: Claim) -> tuple[Claim, dict[str, Any]]:
        """Claim the item again, for the next attempt, as the retry job does."""
        claim = self.plan_claim(key, previous.attempt + 1)
        store = ItemStore(self.table, self.clients["dynamodb"])
        assert store.claim_due(self.key(key), Status.PENDING, previous.token, claim, clock.iso(time.time()))
        return self.execution_input(key, body, claim)

    # -- time and outages ------------------------------------------------------------------------
    def make_due(self, key: str) -> None:
        """Time passes: the item's failure (or lease) is due now."""
        self.clients["dynamodb"].update_item(
            TableName=self.table,
            Key=self.key(key),
            UpdateExpression="SET dueAt = :now",
            ExpressionAttributeValues={":now": {"N": "1"}},
        )

    def restore_topic(self) -> None:
        """The topic again, with its subscriptions, after a test deleted it (an SNS outage)."""
        assert self._create_topic() == self.topic_arn
        self._subscribe_queues()

    # -- observation ---------------------------------------------------------------------------
    def put(self, item: dict[str, Any]) -> None:
        self.clients["dynamodb"].put_item(TableName=self.table, Item=item)

    def put_in_flight(
        self,
        key: str,
        status: Status = Status.FAILED,
        attempt: int = 1,
        due_in: int = -10,
        shard: str = "3",
        accepted_at: str = "2026-11-23T09:00:00.000Z",
        message: str | None = None,
    ) -> None:
        """An item as the pipeline leaves one in flight: in the due index, due ``due_in``
        seconds from now, its body ``retry KEY`` unless given."""
        self.put(
            {
                **self.key(key),
                "message": {"S": f"retry {key}" if message is None else message},
                Field.STATUS: {"S": status},
                Field.ATTEMPT: {"N": str(attempt)},
                Field.CLAIM_TOKEN: {"S": "c" * 32},
                Field.DUE_SHARD: {"S": shard},
                Field.DUE_AT: {"N": str(int(time.time()) + due_in)},
                Field.ACCEPTED_AT: {"S": accepted_at},
            }
        )

    def item(self, key: str) -> dict[str, Any]:
        return get_item(self.clients["dynamodb"], self.table, self.key(key))

    def index_keys(self, index: str, shard: str) -> list[str]:
        """The keys one shard of a sparse index (the due or the attention index) holds."""
        page = self.clients["dynamodb"].query(
            TableName=self.table,
            IndexName=index,
            KeyConditionExpression="#shard = :shard",
            ExpressionAttributeNames={"#shard": Field.DUE_SHARD},
            ExpressionAttributeValues={":shard": {"S": shard}},
        )
        return sorted(item[KEY_NAME]["S"] for item in page["Items"])

    def status(self, key: str) -> Status | None:
        return Status.of(self.item(key))

    def wait_for_executions(self, timeout: float = 60) -> list[dict[str, Any]]:
        sfn = self.clients["stepfunctions"]
        executions = wait_until(
            lambda: sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"],
            lambda found: all(e["status"] != "RUNNING" for e in found),
            timeout,
            interval=0.05,
        )
        if any(e["status"] == "RUNNING" for e in executions):
            raise TimeoutError(f"executions still running after {timeout}s")
        return executions

    def received_messages(self, queue_url: str | None = None) -> list[dict[str, Any]]:
        """Every message now in a subscriber queue (the raw one unless named), read and deleted."""
        return received_messages(self.clients["sqs"], queue_url or self.queue_url)

    def metric_datapoints(self, name: str) -> list[dict[str, Any]]:
        return self.clients["cloudwatch"].get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=name,
            Dimensions=[{"Name": "StackName", "Value": NAME_PREFIX}],
            StartTime=time.time() - 3600,
            EndTime=time.time() + 60,
            Period=60,
            Statistics=["Sum", "SampleCount"],
        )["Datapoints"]

    def metric_sum(self, name: str) -> float:
        return sum(point["Sum"] for point in self.metric_datapoints(name))


def outputs_stack(cfn: Any, name: str, outputs: dict[str, str], parameters: dict[str, str]) -> None:
    """A stack whose outputs (and parameters) describe resources made without CloudFormation,
    as `disa` reads a deployed stack: moto's CloudFormation does not create them all."""
    body = {
        "Parameters": {key: {"Type": "String"} for key in parameters},
        # A stack needs a resource; a parameter is the cheapest one moto creates.
        "Resources": {
            "Placeholder": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Name": f"/{name}/stack", "Type": "String", "Value": "-"},
            }
        },
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cfn.create_stack(
        StackName=name,
        TemplateBody=json.dumps(body),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
    )
