"""The local cloud for end-to-end tests: a private engine (own port, state and temp
folders) started for the session and stopped at its end, with Disa's root stack deployed
through the same package -> change set path as on AWS."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from disa import packaging, stacks
from disa.aws import Clients
from disa.demo import subscribe_queue
from disa.items import StackInfo
from disa.local_cloud import LocalCloud
from tests.support.net import free_port

STACK = "disa-e2e"
PARAMETERS = {
    "NamePrefix": STACK,
    "TableDeletionProtection": "false",
    "MaxAttempts": "2",
    "RetryBaseDelaySeconds": "1",
    "RetryMaxDelaySeconds": "2",
    "AlarmPeriodSeconds": "60",
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
def clients(local_cloud) -> Clients:
    return local_cloud.clients()


@dataclass
class Deployed:
    clients: Clients
    info: StackInfo
    packaged: packaging.Packaged
    queue_url: str
    alarm_queue_url: str

    def put(self, key: str, **attributes: Any) -> None:
        self.clients("dynamodb").put_item(TableName=self.info.table, Item={"id": {"S": key}, **attributes})

    def item(self, key: str) -> dict[str, Any]:
        return (
            self.clients("dynamodb")
            .get_item(TableName=self.info.table, Key={"id": {"S": key}}, ConsistentRead=True)
            .get("Item", {})
        )

    def wait_status(self, key: str, wanted: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.time() + timeout
        while True:
            item = self.item(key)
            if item.get("status", {}).get("S") == wanted or time.time() > deadline:
                return item
            time.sleep(0.3)

    def drain(self, queue_url: str | None = None, wait: float = 1) -> list[dict[str, Any]]:
        sqs, url, found = self.clients("sqs"), queue_url or self.queue_url, []
        deadline = time.time() + wait
        while True:
            batch = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
            ).get("Messages", [])
            for message in batch:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            found.extend(batch)
            if not batch and time.time() > deadline:
                return found

    def alarm(self, name: str) -> str:
        return self.clients("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]

    def wait_alarm(self, name: str, wanted: str, timeout: float) -> str:
        deadline = time.time() + timeout
        while (state := self.alarm(name)) != wanted and time.time() < deadline:
            time.sleep(1)
        return state


@pytest.fixture(scope="session")
def deployed(clients) -> Deployed:
    packaged = packaging.package(clients, "disa-e2e-artifacts", log=quiet)
    stacks.deploy(clients, STACK, packaged, PARAMETERS, log=quiet)
    info = StackInfo.of(clients, STACK)
    outputs = stacks.outputs(clients, STACK)
    return Deployed(
        clients=clients,
        info=info,
        packaged=packaged,
        queue_url=subscribe_queue(clients, info.topic_arn, f"{STACK}-subscriber"),
        alarm_queue_url=subscribe_queue(clients, outputs["AlarmTopicArn"], f"{STACK}-alarm-watcher"),
    )
