"""Reads the body of a message stored in S3 (the extended clients' claim-check) for the
consumer helper, or for any code that receives Disa's messages itself.

Only buckets the consumer is configured to read (PAYLOAD_BUCKETS: Disa's payload bucket,
and any bucket an official SNS extended client of another producer writes to) are read, and
each call names the account expected to own them: a pointer is data from the queue, and
reading wherever it points would let a message make the consumer fetch anything its role may
read. Nothing here deletes a stored body: several subscribers, and their dead-letter queues,
read the same object, and the payload bucket's lifecycle rule expires it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from disa_lambda.consumer.message import Message
from disa_lambda.dal.clients import SDK_CONFIG, error_code


class PayloadUnreadable(Exception):
    """The body of a pointer message cannot be read; the message fails (and, after the
    queue's maxReceiveCount receives, waits in the dead-letter queue)."""


class PayloadReader:
    def __init__(self, buckets: frozenset[str], owner: str | None = None, s3: Any = None) -> None:
        self._buckets = buckets
        self._owner = owner
        self._s3 = s3

    def resolve(self, message: Message) -> Message:
        """``message`` with its body read from S3 when it is a pointer, unchanged otherwise."""
        where = message.stored_at
        if where is None:
            return message
        if where.bucket not in self._buckets:
            raise PayloadUnreadable(
                f"the body is stored at {where}, in a bucket this consumer is not set to read "
                f"(PAYLOAD_BUCKETS: {', '.join(sorted(self._buckets)) or 'none'})"
            )
        owner = {"ExpectedBucketOwner": self._owner} if self._owner else {}
        try:
            data = self._client().get_object(Bucket=where.bucket, Key=where.key, **owner)["Body"].read()
        except BotoCoreError as error:
            raise PayloadUnreadable(f"reading the body stored at {where} failed: {error}") from error
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "404"):
                raise PayloadUnreadable(
                    f"the body stored at {where} is gone: Disa's payload bucket expires bodies after "
                    "PayloadRetentionDays (a message redriven again and again can outlive it)"
                ) from error
            raise PayloadUnreadable(f"reading the body stored at {where} failed: {error}") from error
        if message.stored_size is not None and len(data) != message.stored_size:
            raise PayloadUnreadable(
                f"the body stored at {where} is {len(data)} bytes, the message says {message.stored_size}"
            )
        try:
            body = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise PayloadUnreadable(f"the body stored at {where} is not UTF-8 text") from error
        return dataclasses.replace(message, body=body)

    def _client(self) -> Any:
        if self._s3 is None:
            self._s3 = boto3.client("s3", config=SDK_CONFIG)
        return self._s3
