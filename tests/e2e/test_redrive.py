"""`disa redrive` on the local cloud: the engine has no message move tasks, so the redrive is
portable. Queues of their own; the dead letters get there the way a consumer's failures put
them there, by being received maxReceiveCount times without being deleted."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from disa.common.aws_helpers import wait_until
from disa.operate.redrive import QueueRef, redrive

pytestmark = pytest.mark.e2e

ATTRIBUTES = {
    "disa.insertId": {"DataType": "String", "StringValue": "0b7c2e9a-insert"},
    "amount": {"DataType": "Number", "StringValue": "0001.50"},
    "blob": {"DataType": "Binary", "BinaryValue": bytes(range(256))},
    "packed": {"DataType": "Binary.gzip", "BinaryValue": b"\x1f\x8b\x00\xff"},
    "doc": {"DataType": "String.json", "StringValue": '{"a": [1, 2]} é'},
}


def _queue(sqs: Any, name: str, fifo: bool, **attributes: str) -> QueueRef:
    extra = {"FifoQueue": "true"} if fifo else {}
    url = sqs.create_queue(QueueName=name + (".fifo" if fifo else ""), Attributes={**extra, **attributes})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return QueueRef(url, arn, fifo)


def _receive(sqs: Any, queue: QueueRef, visibility: int = 0) -> list[dict[str, Any]]:
    return sqs.receive_message(
        QueueUrl=queue.url,
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
        VisibilityTimeout=visibility,
        WaitTimeSeconds=0,
    ).get("Messages", [])


def _attributes(message: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, value in message.get("MessageAttributes", {}).items()
    }


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_portable_redrive_returns_dead_letters_to_their_source_byte_exact(local_cloud, fifo):
    clients = local_cloud.clients()
    sqs, name = clients("sqs"), f"redrive-{uuid.uuid4().hex[:8]}"
    dead_letter = _queue(sqs, f"{name}-dlq", fifo)
    policy = json.dumps({"deadLetterTargetArn": dead_letter.arn, "maxReceiveCount": 1})
    source = _queue(sqs, name, fifo, RedrivePolicy=policy)
    bodies = [f"order {n}: é\u2028 \t{{}}  " for n in range(12)]
    for n, body in enumerate(bodies):
        fifo_ids = {"MessageGroupId": f"g{n % 2}", "MessageDeduplicationId": f"d{n}"} if fifo else {}
        sqs.send_message(QueueUrl=source.url, MessageBody=body, MessageAttributes=ATTRIBUTES, **fifo_ids)
    # A consumer that fails every message: received, never deleted, until the engine moves
    # them to the dead-letter queue.
    wait_until(lambda: _receive(sqs, source), lambda got: not got, timeout=30, interval=0.2)
    dead = wait_until(lambda: _receive(sqs, dead_letter), lambda got: len(got) >= 1, timeout=10)
    assert {m["Attributes"].get("DeadLetterQueueSourceArn") for m in dead} == {source.arn}

    report = redrive(clients, dead_letter, source, rate=50, log=lambda _: None)

    assert (report.mode, report.moved, report.failed, report.status) == ("portable", 12, 0, "COMPLETED")
    arrived = []
    while batch := _receive(sqs, source, visibility=60):
        arrived.extend(batch)
        for message in batch:  # a FIFO group stays locked while its messages are in flight
            sqs.delete_message(QueueUrl=source.url, ReceiptHandle=message["ReceiptHandle"])
    assert sorted(m["Body"] for m in arrived) == sorted(bodies)
    assert all(_attributes(m) == ATTRIBUTES for m in arrived), "String, Number, Binary and custom types byte-exact"
    if fifo:
        groups = {m["Body"]: m["Attributes"]["MessageGroupId"] for m in arrived}
        assert groups == {body: f"g{n % 2}" for n, body in enumerate(bodies)}
        for group in ("g0", "g1"):
            assert [m["Body"] for m in arrived if groups[m["Body"]] == group] == [
                b for n, b in enumerate(bodies) if f"g{n % 2}" == group
            ], "order kept within each group"
    assert _receive(sqs, dead_letter) == []
