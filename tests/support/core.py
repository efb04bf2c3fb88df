"""Disa's core resources on moto (in process), built from the templates' own properties
and the real ASL, so a template change reaches the tests instead of drifting from them."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import boto3
from disa_lambda.models.settings import RetrySettings, TriggerSettings

from tests.support.templates import asl_text, resources, template

REGION = "us-east-1"
NAME_PREFIX = "disa-test"
NAMESPACE = "Disa"


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
class Core:
    topic_type: str = "standard"
    max_attempts: int = 3
    clients: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for service in ("dynamodb", "sns", "sqs", "stepfunctions", "cloudwatch", "kms"):
            self.clients[service] = boto3.client(service, region_name=REGION)
        key_arn = self.clients["kms"].create_key()["KeyMetadata"]["Arn"]
        self.params = {
            "NamePrefix": NAME_PREFIX,
            "KeyArn": key_arn,
            "KeyAttributeName": "id",
            "KeyAttributeType": "S",
            "DeletionProtection": "false",
        }
        self.table = self._create_table()
        self.topic_arn = self._create_topic()
        self.queue_url, self.envelope_queue_url = self._subscribe_queues()
        self.state_machine_arn = self._create_state_machine()

    # -- construction -------------------------------------------------------------------
    def _create_table(self) -> str:
        props = resolve(resources("table", "AWS::DynamoDB::Table")["Table"]["Properties"], self.params)
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

    def _create_topic(self) -> str:
        fifo = self.topic_type == "fifo"
        name = f"{NAME_PREFIX}-messages" + (".fifo" if fifo else "")
        attributes = {"FifoTopic": "true", "ContentBasedDeduplication": "false"} if fifo else {}
        return self.clients["sns"].create_topic(Name=name, Attributes=attributes)["TopicArn"]

    def _subscribe_queues(self) -> tuple[str, str]:
        """A raw-delivery queue (body and attributes as sent) and an envelope queue (shows
        the Subject)."""
        urls = []
        for suffix, raw in (("raw", "true"), ("envelope", "false")):
            fifo = self.topic_type == "fifo"
            name = f"{NAME_PREFIX}-{suffix}" + (".fifo" if fifo else "")
            url = self.clients["sqs"].create_queue(QueueName=name, Attributes={"FifoQueue": "true"} if fifo else {})[
                "QueueUrl"
            ]
            arn = self.clients["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            self.clients["sns"].subscribe(
                TopicArn=self.topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": raw}
            )
            urls.append(url)
        return urls[0], urls[1]

    def _create_state_machine(self) -> str:
        props = resources("state-machine", "AWS::StepFunctions::StateMachine")["Publisher"]["Properties"]
        bound = resolve(
            props["DefinitionSubstitutions"],
            {
                **self.params,
                "MessageTopicArn": self.topic_arn,
                "TableName": self.table,
                "MetricNamespace": NAMESPACE,
            },
        )
        definition = asl_text()
        for name, value in bound.items():
            definition = definition.replace("${" + name + "}", value)
        return self.clients["stepfunctions"].create_state_machine(
            name=f"{NAME_PREFIX}-publisher",
            definition=definition,
            roleArn="arn:aws:iam::123456789012:role/disa-test-publisher",
        )["stateMachineArn"]

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
                "TopicIsFifo": "true" if self.topic_type == "fifo" else "false",
                "MaxAttempts": str(self.max_attempts),
                "RetryBaseDelaySeconds": "60",
                "RetryMaxDelaySeconds": "3600",
                "MetricNamespace": NAMESPACE,
                "RetryIntervalMinutes": "1",
                "SweepSegments": "4",
                "SweepGraceSeconds": "600",
            },
        )
        return {name: str(value) for name, value in values.items()}

    def trigger_settings(self) -> TriggerSettings:
        return TriggerSettings.from_env(self.environment())

    def retry_settings(self) -> RetrySettings:
        return RetrySettings.from_env(self.environment())

    # -- observation ---------------------------------------------------------------------------
    def put(self, item: dict[str, Any]) -> None:
        self.clients["dynamodb"].put_item(TableName=self.table, Item=item)

    def item(self, key: str) -> dict[str, Any]:
        return (
            self.clients["dynamodb"]
            .get_item(TableName=self.table, Key={"id": {"S": key}}, ConsistentRead=True)
            .get("Item", {})
        )

    def status(self, key: str) -> str | None:
        return self.item(key).get("status", {}).get("S")

    def wait_for_executions(self, timeout: float = 60) -> list[dict[str, Any]]:
        sfn = self.clients["stepfunctions"]
        deadline = time.time() + timeout
        while True:
            executions = sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"]
            if all(e["status"] != "RUNNING" for e in executions):
                return executions
            if time.time() > deadline:
                raise TimeoutError("executions still running")
            time.sleep(0.05)

    def received(self, queue_url: str | None = None) -> list[dict[str, Any]]:
        """Every message now in the subscriber queue (received and deleted)."""
        sqs, url, messages = self.clients["sqs"], queue_url or self.queue_url, []
        while True:
            batch = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            messages.extend(batch)

    def metric_sum(self, name: str) -> float:
        stats = self.clients["cloudwatch"].get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=name,
            Dimensions=[{"Name": "StackName", "Value": NAME_PREFIX}],
            StartTime=time.time() - 3600,
            EndTime=time.time() + 60,
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]
        return sum(point["Sum"] for point in stats)

    def execution_input(self, key: str, token: str, attempt: int = 1, abandon: bool = False, **publish: Any) -> str:
        return json.dumps(
            {
                "key": {"id": {"S": key}},
                "claimToken": token,
                "attempt": attempt,
                "publish": {"Message": f"body of {key}", "MessageAttributes": {}, **publish},
                "onFailure": {"abandon": abandon, "retryAt": "1700000000"},
            }
        )
