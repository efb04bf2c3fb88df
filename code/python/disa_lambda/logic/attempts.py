"""Plans one publishing attempt: its claim on the item, its execution input and name.

A claim is what makes starts idempotent without relying on execution names (Express
workflows do not deduplicate names): the item is updated conditionally to carry a fresh
``claimToken``, and every later status write by the execution is conditional on that
token. A redelivered stream record or an overlapping retry run loses the conditional
claim and starts nothing.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from functools import cache
from typing import Any, Callable, Mapping

import fastjsonschema

from disa_lambda import contracts
from disa_lambda.models import message
from disa_lambda.models.claim import Claim
from disa_lambda.models.exceptions import ItemUnpublishable
from disa_lambda.models.settings import PublishingSettings
from disa_lambda.models.status import DUE_INDEX_SHARDS

# Step Functions and SNS both cap a payload at 262,144 bytes. The state keeps the input
# plus the publish result or a caught error (whose Cause can be long), so Disa leaves
# room for them: a larger input has its body stored in S3 (logic/payloads.py).
PAYLOAD_LIMIT_BYTES = 262_144
STATE_GROWTH_RESERVE_BYTES = 16_384
INPUT_LIMIT_BYTES = PAYLOAD_LIMIT_BYTES - STATE_GROWTH_RESERVE_BYTES

_ATTRIBUTE_TYPES = {"S": "String", "N": "Number", "SS": "String.Array", "NS": "String.Array"}
# Published-message field -> the item attribute it comes from, for reasons people read.
_ITEM_FIELD_OF = {
    "Message": "message",
    "Subject": "subject",
    "MessageAttributes": "attributes",
    "MessageGroupId": "messageGroupId",
    "MessageDeduplicationId": "deduplicationId",
}


def key_digest(key: Mapping[str, Any]) -> str:
    """A stable hex digest of a key in AttributeValue form (independent of attribute order)."""
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def retry_delay_seconds(attempt: int, settings: PublishingSettings, rng: random.Random) -> int:
    """Exponential backoff with equal jitter before the attempt after ``attempt``.

    Half the capped delay is fixed so a retry never comes immediately; the other half is
    random so items that failed together do not come back together.
    """
    capped = min(settings.RETRY_MAX_DELAY_SECONDS, settings.RETRY_BASE_DELAY_SECONDS * 2 ** (attempt - 1))
    return int(capped / 2 + rng.uniform(0, capped / 2))


def due_shard(key: Mapping[str, Any]) -> str:
    """The item's shard of the due and attention indexes: from its key, so it never changes."""
    return str(int(key_digest(key)[:8], 16) % DUE_INDEX_SHARDS)


def plan_claim(
    key: Mapping[str, Any], attempt: int, now: float, settings: PublishingSettings, rng: random.Random
) -> Claim:
    lease_until = int(now) + settings.LEASE_SECONDS
    return Claim(
        token=uuid.UUID(int=rng.getrandbits(128), version=4).hex,
        attempt=attempt,
        lease_until=lease_until,
        shard=due_shard(key),
        retry_at=int(now) + retry_delay_seconds(attempt, settings, rng),
        abandon_on_failure=attempt >= settings.MAX_ATTEMPTS,
    )


def deferral_reason(claim: Claim, error: Exception | str) -> str:
    """The statusReason of a claim whose execution did not start (shown while it waits)."""
    return f"attempt {claim.attempt} not started yet, the retry job starts it: {error}"[:1000]


def execution_name(key: Mapping[str, Any], claim: Claim) -> str:
    """Readable, unique per claim, within the 80-character limit of execution names."""
    return f"{key_digest(key)[:24]}-a{claim.attempt}-{claim.token[:16]}"


def publish_parameters(
    key: Mapping[str, Any], item: Mapping[str, Any], topic_is_fifo: bool, accepted_at: str
) -> dict[str, Any]:
    """Build sns:publish parameters (without TopicArn) from a contract-valid item.

    Raises ItemUnpublishable when the item is valid by the schema but not for this topic.
    An item whose body is an S3 object (``messageObject``) gets no ``Message`` here: the
    pointer to its stored copy is set once it is stored (logic/payloads.py), as is that of a
    body too large to publish as it is.
    """
    # Every copy of this insert carries the same id (each attempt derives it from the same
    # key and acceptedAt), so consumers deduplicate SNS and SQS redeliveries and a second
    # publish alike; a later re-insert of the key is accepted later and gets a new id.
    insert_id = key_digest({"key": key, "acceptedAt": accepted_at})[:64]
    params: dict[str, Any] = {
        **({"Message": item["message"]["S"]} if "message" in item else {}),
        "MessageAttributes": {
            **{name: _message_attribute(value) for name, value in item.get("attributes", {}).get("M", {}).items()},
            message.INSERT_ID: {"DataType": "String", "StringValue": insert_id},
            message.ACCEPTED_AT: {"DataType": "Number", "StringValue": str(message.epoch_ms(accepted_at))},
        },
    }
    if "subject" in item:
        params["Subject"] = item["subject"]["S"]
    group = item.get("messageGroupId", {}).get("S")
    dedup = item.get("deduplicationId", {}).get("S")
    if topic_is_fifo:
        if group is None:
            raise ItemUnpublishable(
                "messageGroupId: required because the topic is FIFO; add a string attribute messageGroupId"
            )
        if "messageSequence" not in item:
            raise ItemUnpublishable(
                "messageSequence: required because the topic is FIFO; add a number attribute messageSequence, "
                "the item's place in its message group (1, 2, 3, ...)"
            )
        params["MessageGroupId"] = group
        # Stable across attempts of one insert, so SNS drops a second copy when a publish
        # succeeded but its status was not recorded; a later re-insert of the same key has
        # a new insert id and is not dropped as a duplicate.
        params["MessageDeduplicationId"] = dedup or insert_id
    elif group is not None or dedup is not None or "messageSequence" in item:
        field = "messageGroupId" if group is not None else "deduplicationId" if dedup is not None else "messageSequence"
        raise ItemUnpublishable(f"{field}: only FIFO topics take it and this topic is standard; remove it")
    return params


def _message_attribute(value: Mapping[str, Any]) -> dict[str, str]:
    ((dynamo_type, raw),) = value.items()
    if dynamo_type == "SS":
        rendered = json.dumps(sorted(raw), ensure_ascii=False)
    elif dynamo_type == "NS":
        # String.Array carries numbers as JSON numbers; DynamoDB already normalised them.
        rendered = "[" + ",".join(sorted(raw, key=float)) + "]"
    else:
        rendered = raw
    return {"DataType": _ATTRIBUTE_TYPES[dynamo_type], "StringValue": rendered}


def sns_size(params: Mapping[str, Any]) -> int:
    size = len(params.get("Message", "").encode("utf-8"))
    for name, attribute in params["MessageAttributes"].items():
        size += len(name.encode()) + len(attribute["DataType"]) + len(attribute["StringValue"].encode("utf-8"))
    return size


def input_size(key: Mapping[str, Any], publish: Mapping[str, Any]) -> int:
    """The byte length of the execution input that would carry ``publish``, with the
    longest claim fields (execution_input's document, JSON as StartExecution sends it)."""
    widest = {"key": dict(key), "claimToken": "0" * 32, "attempt": 10**6, "publish": dict(publish)}
    widest["onFailure"] = {"abandon": False, "retryAt": "9" * 12}
    widest["publishLeaseUntil"] = widest["retryInDoubtAt"] = "9" * 12
    widest["republishBy"] = "2026-12-01T00:00:00.000Z"
    return len(json.dumps(widest, ensure_ascii=False).encode("utf-8"))


@cache
def _execution_input_check() -> Callable[[Any], Any]:
    return fastjsonschema.compile(contracts.load("execution-input"))


def finished_expiry(settings: PublishingSettings, now: float) -> int | None:
    """When a finished item may be deleted by TTL (its expiresAt), or None to keep it."""
    days = settings.FINISHED_ITEM_RETENTION_DAYS
    return int(now) + days * 86_400 if days else None


def execution_input(
    key: Mapping[str, Any],
    claim: Claim,
    publish: Mapping[str, Any],
    fifo: Mapping[str, str] | None = None,
    expires_at: int | None = None,
) -> dict[str, Any]:
    """The state machine input, checked against its contract
    (contracts/execution-input.schema.json, whose ``publish`` is the published-message
    contract): a document the ASL cannot read never reaches StartExecution. ``fifo`` is
    logic/dedup.py's execution_window on FIFO topics."""
    document = {
        "key": dict(key),
        "claimToken": claim.token,
        "attempt": claim.attempt,
        "publish": dict(publish),
        "onFailure": {"abandon": claim.abandon_on_failure, "retryAt": str(claim.retry_at)},
        **(fifo or {}),
        **({"expiresAt": str(expires_at)} if expires_at is not None else {}),
    }
    try:
        _execution_input_check()(document)
    except fastjsonschema.JsonSchemaValueException as error:
        path = [str(part) for part in error.path or []]
        if path[1:2] != ["publish"]:
            raise  # the claim or key Disa built is wrong: a bug, not the item's fault
        # The item contract is meant to admit only what the published-message contract
        # does; should they ever drift, the item is REJECTED with the reason, not retried.
        field = _ITEM_FIELD_OF.get(path[2] if len(path) > 2 else "", "message")
        raise ItemUnpublishable(f"{field}: cannot be published as it is: {error.message}") from error
    encoded = json.dumps(document, ensure_ascii=False).encode("utf-8")
    if len(encoded) > INPUT_LIMIT_BYTES:
        # The body is in S3 by now whenever it alone was too large, so what is left over is
        # the attributes (or a key near DynamoDB's 2 KB).
        raise ItemUnpublishable(
            f"attributes: too large for Step Functions even with the body stored in S3 ({len(encoded)} bytes "
            f"of execution input, limit {INPUT_LIMIT_BYTES}); shorten the attribute values"
        )
    return document
