"""The claim-check the AWS extended client libraries (SNS and SQS, Java and Python) write and
read: a message whose body lives in S3 is published as a pointer to it, with the body's
length in a marker attribute. Disa writes it and its consumer helper reads it, so either side
can be an official extended client.

Pure: no AWS calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"
LEGACY_POINTER_CLASS = "com.amazon.sqs.javamessaging.MessageS3Pointer"
SIZE_ATTRIBUTE = "ExtendedPayloadSize"
LEGACY_SIZE_ATTRIBUTE = "SQSLargePayloadSize"
MARKER_ATTRIBUTES = (SIZE_ATTRIBUTE, LEGACY_SIZE_ATTRIBUTE)
# Java's reader rewrites the legacy class name; the Python one ignores it: match the last part.
_CLASS_NAMES = tuple(name.rsplit(".", 1)[1] for name in (POINTER_CLASS, LEGACY_POINTER_CLASS))


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def render(where: ObjectRef) -> str:
    """The pointer body, compact as the Java client writes it (the Python client's spaced
    form parses the same)."""
    return json.dumps([POINTER_CLASS, {"s3BucketName": where.bucket, "s3Key": where.key}], separators=(",", ":"))


def size_attribute(size: int) -> dict[str, str]:
    return {"DataType": "Number", "StringValue": str(size)}


def marked_size(attributes: Mapping[str, str]) -> int | None:
    """The body's length the marker attribute gives, if there is one."""
    for name in MARKER_ATTRIBUTES:
        value = attributes.get(name, "")
        if value.isdigit():
            return int(value)
    return None


def parse(body: str, attribute_names: Any = ()) -> ObjectRef | None:
    """Where the body of a pointer message lives, or None for a message that carries its body.

    A message is a pointer when it has a marker attribute (what both libraries check), or,
    without one, when its body is a two-element JSON list whose first element names either
    pointer class and whose second holds the bucket and key: the local engine, or an SNS
    envelope read as raw, can lose the attribute, and a body of exactly that shape is not
    something a producer sends by accident.
    """
    marked = any(name in MARKER_ATTRIBUTES for name in attribute_names)
    if not body.startswith("[") or len(body) > 4096:
        return None
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not (isinstance(parsed, list) and len(parsed) == 2 and isinstance(parsed[1], Mapping)):
        return None
    names_a_pointer = isinstance(parsed[0], str) and parsed[0].endswith(_CLASS_NAMES)
    bucket, key = parsed[1].get("s3BucketName"), parsed[1].get("s3Key")
    if not (isinstance(bucket, str) and bucket and isinstance(key, str) and key):
        return None
    if marked or names_a_pointer:
        return ObjectRef(bucket, key)
    return None
