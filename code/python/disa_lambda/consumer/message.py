"""One SQS record as a Disa message: parsed from raw delivery or from SNS's JSON envelope.

Pure: no AWS calls, so the parsing is tested on recorded event shapes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from disa_lambda.models import message as disa_attributes
from disa_lambda.models import pointer
from disa_lambda.models.pointer import ObjectRef

_DISA_PREFIX = "disa."


@dataclass(frozen=True)
class Message:
    """What a consumer's handler receives. ``attributes`` are the item's own (Disa's
    ``disa.*`` attributes are read into ``insert_id`` and ``accepted_at_ms``, the extended
    clients' marker into ``stored_at``). A message whose body is stored in S3 arrives as a
    pointer (``stored_at`` set); the consumer helper reads the body before the handler
    sees it (consumer/payloads.py)."""

    body: str
    attributes: dict[str, str]
    insert_id: str | None
    accepted_at_ms: int | None
    sqs_message_id: str
    receive_count: int
    group_id: str | None
    sent_ms: int
    first_received_ms: int
    sns_timestamp_ms: int | None  # only the SNS envelope carries it
    stored_at: ObjectRef | None = None
    stored_size: int | None = None  # the body's bytes, as the pointer's marker attribute says
    record: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        """One per insert: every copy of it carries the same ``disa.insertId``. A message
        someone sent to the queue directly has none and is known by its SQS message id."""
        return self.insert_id or f"sqs:{self.sqs_message_id}"


def parse(record: Mapping[str, Any]) -> Message:
    """An SQS Lambda event record (AWS's shape) as a Message."""
    system = record.get("attributes", {})
    sqs_attributes = {name: _value(a) for name, a in (record.get("messageAttributes") or {}).items()}
    body, attributes, sns_timestamp = record["body"], sqs_attributes, None
    envelope = None if disa_attributes.INSERT_ID in sqs_attributes else _envelope(body)
    if envelope is not None:
        body = envelope["Message"]
        attributes = {name: a.get("Value", "") for name, a in (envelope.get("MessageAttributes") or {}).items()}
        sns_timestamp = _iso_ms(envelope.get("Timestamp"))
    accepted = attributes.get(disa_attributes.ACCEPTED_AT)
    return Message(
        body=body,
        attributes={
            name: value
            for name, value in attributes.items()
            if not name.startswith(_DISA_PREFIX) and name not in pointer.MARKER_ATTRIBUTES
        },
        insert_id=attributes.get(disa_attributes.INSERT_ID),
        accepted_at_ms=int(accepted) if accepted and accepted.isdigit() else None,
        sqs_message_id=record["messageId"],
        receive_count=int(system.get("ApproximateReceiveCount", 1)),
        group_id=system.get("MessageGroupId"),
        sent_ms=int(system["SentTimestamp"]),
        first_received_ms=int(system.get("ApproximateFirstReceiveTimestamp", system["SentTimestamp"])),
        sns_timestamp_ms=sns_timestamp,
        stored_at=pointer.parse(body, attributes),
        stored_size=pointer.marked_size(attributes),
        record=record,
    )


def _value(attribute: Mapping[str, Any]) -> str:
    return attribute.get("stringValue") or attribute.get("StringValue") or ""


def _envelope(body: str) -> dict[str, Any] | None:
    """SNS's JSON envelope (delivery without RawMessageDelivery), or None."""
    if not body.startswith("{"):
        return None
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError:
        return None
    if (
        isinstance(parsed, dict)
        and parsed.get("Type") == "Notification"
        and "Message" in parsed
        and "TopicArn" in parsed
    ):
        return parsed
    return None


def _iso_ms(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None
