"""Disa's root stack deployed on the local cloud, as the end-to-end tests address it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from disa_lambda.models.status import Status

from disa.common.aws import Clients
from disa.common.aws_helpers import alarm_state, get_item, received_messages, wait_until
from disa.deploy.packaging import Packaged
from disa.operate.stack import StackInfo


@dataclass
class LocalStack:
    clients: Clients
    info: StackInfo
    packaged: Packaged
    queue_url: str
    alarm_queue_url: str

    def put(self, key: str, **attributes: Any) -> None:
        self.clients("dynamodb").put_item(TableName=self.info.table, Item={"id": {"S": key}, **attributes})

    def item(self, key: str) -> dict[str, Any]:
        return get_item(self.clients("dynamodb"), self.info.table, {"id": {"S": key}})

    def wait_status(self, key: str, wanted: Status, timeout: float = 60) -> dict[str, Any]:
        """The item once it has ``wanted``, or as it is when ``timeout`` ends."""
        return wait_until(lambda: self.item(key), lambda item: Status.of(item) is wanted, timeout, interval=0.3)

    def received_messages(self, queue_url: str | None = None, wait_seconds: float = 1) -> list[dict[str, Any]]:
        """What a queue (the subscriber's unless named) received, read and deleted."""
        return received_messages(self.clients("sqs"), queue_url or self.queue_url, wait_seconds)

    def alarm(self, name: str) -> str:
        return alarm_state(self.clients("cloudwatch"), name)

    def wait_alarm(self, name: str, wanted: str, timeout: float) -> str:
        return wait_until(lambda: self.alarm(name), lambda state: state == wanted, timeout, interval=1)
