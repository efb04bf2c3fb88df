"""The official AWS extended clients for Python (amazon-sqs-extended-client and
amazon-sns-extended-client 1.0.1), run in a process of their own: importing either replaces
boto3's Session for the whole process, which must not reach the other tests.

    python -m tests.support.extended_clients receive QUEUE_URL BUCKET
        every message in the queue as the SQS extended client returns it, as JSON lines
        (body digest and length, attributes), each deleted with its original receipt handle
    python -m tests.support.extended_clients publish TOPIC_ARN BUCKET SIZE
        one SIZE-byte message published by the SNS extended client (body in BUCKET), its
        SHA-256 printed

The endpoint comes from AWS_ENDPOINT_URL: the libraries build their S3 clients without one.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# The library's own delete_message cannot recover a receipt handle with '-' in it (it keeps
# only the text after the last '-'); the part after this marker is the original handle.
_KEY_MARKER = "-..s3Key..-"


def run(environment: dict[str, str], *args: str) -> list[dict[str, Any]]:
    """Run this module with ``args`` in a fresh interpreter; its JSON lines."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.extended_clients", *args],
        env={**os.environ, **environment},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"extended client {args[0]} failed: {done.stderr[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _receive(queue_url: str, bucket: str) -> None:
    import sqs_extended_client  # noqa: F401  (patches boto3.Session, in this process only)
    from sqs_extended_client.client import SQSExtendedClientSession

    sqs = SQSExtendedClientSession().client("sqs")
    sqs.large_payload_support = bucket
    empty = 0
    while empty < 3:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        ).get("Messages", [])
        empty = 0 if batch else empty + 1
        for message in batch:
            body = message["Body"].encode("utf-8")
            attributes = {name: a.get("StringValue") for name, a in message.get("MessageAttributes", {}).items()}
            print(
                json.dumps({"sha256": hashlib.sha256(body).hexdigest(), "length": len(body), "attributes": attributes})
            )
            handle = message["ReceiptHandle"].rsplit(_KEY_MARKER, 1)[-1]
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=handle)


def _publish(topic_arn: str, bucket: str, size: int) -> None:
    import sns_extended_client  # noqa: F401  (patches boto3.Session, in this process only)
    from sns_extended_client.session import SNSExtendedClientSession

    sns = SNSExtendedClientSession().client("sns")
    sns.large_payload_support = bucket
    body = ("published by the SNS extended client " * (size // 37 + 1))[:size]
    sns.publish(
        TopicArn=topic_arn, Message=body, MessageAttributes={"kind": {"DataType": "String", "StringValue": "x"}}
    )
    print(json.dumps({"sha256": hashlib.sha256(body.encode()).hexdigest(), "length": size}))


if __name__ == "__main__":
    command, target, bucket, *rest = sys.argv[1:]
    if command == "receive":
        _receive(target, bucket)
    else:
        _publish(target, bucket, int(rest[0]))
