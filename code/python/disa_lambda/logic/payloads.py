"""Large messages: bodies stored in S3 and published as the AWS extended clients' pointer.

A body goes to the stack's payload bucket, and the message published is the pointer to it
(models/pointer.py) with the ``ExtendedPayloadSize`` marker, when

- the item names an S3 object (``messageObject``): its content is copied in;
- the published message (body and attributes, counted as the extended clients count) would
  pass the offload threshold: 262,144 bytes by default, the extended clients' own rule, or
  0 ("always");
- or the execution input carrying it would pass what Disa leaves of Step Functions' 256 KiB.

It is stored **before** the execution starts, since Step Functions caps an execution's
input at 256 KiB while an item holds up to 400 KB and an S3 body up to 2 GB.

Stored bodies live under ``payloads/<insertId>/<digest>``: every attempt of one insert finds
the same object (a retry reuses it, and the FIFO deduplication id, derived from the insert
id, does not change), while an item whose body was corrected since gets a new one. An
attempt that finds its object older than REFRESH_AFTER_SECONDS copies it onto itself, so
every publish happens within a day of its object's last write; the bucket expires objects
no sooner than 30 days after that write (cft/nested-stacks/payloads.yaml), longer than any
subscriber queue (14 days at most) and then its dead-letter queue (14 more) can keep the
message. Nothing else deletes a stored body: several subscribers read the same object.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

from disa_lambda.logic import attempts
from disa_lambda.logic.ports import PayloadStore, SourceBody
from disa_lambda.models import message, pointer
from disa_lambda.models.exceptions import ItemUnpublishable, PayloadObjectForbidden, PayloadObjectMissing
from disa_lambda.models.pointer import ObjectRef
from disa_lambda.models.settings import SNS_MESSAGE_LIMIT_BYTES, PublishingSettings
from disa_lambda.models.status import Field

STORED_PREFIX = "payloads/"
UPLOAD_PREFIX = "incoming/"
REFRESH_AFTER_SECONDS = 86_400
# SNS takes 10 message attributes; a pointer message spends one on the marker.
SNS_MAX_ATTRIBUTES = 10


@dataclass(frozen=True)
class Staging:
    """Where one insert's body is stored, and where it comes from: the item's own ``message``
    (``body``) or an object the item names (``source``)."""

    key: str
    body: bytes | None = None
    source: ObjectRef | None = None


def plan(
    key: Mapping[str, Any], item: Mapping[str, Any], publish: Mapping[str, Any], settings: PublishingSettings
) -> Staging | None:
    """How the body of ``item`` is to be stored, or None when it is published as it is.

    Pure, so the trigger rejects what it can before it claims anything: a bucket Disa may not
    read, a body above the stack's maximum, too many attributes to add the marker.
    """
    insert_id = publish["MessageAttributes"][message.INSERT_ID]["StringValue"]
    reference = item.get("messageObject")
    if reference is not None:
        staging = _object_staging(insert_id, reference)
        assert staging.source is not None
        readable = {settings.PAYLOAD_BUCKET, *settings.PAYLOAD_SOURCE_BUCKETS}
        if staging.source.bucket not in readable:
            raise ItemUnpublishable(
                f"messageObject: Disa may not read bucket {staging.source.bucket}; upload the body to "
                f"s3://{settings.PAYLOAD_BUCKET}/{UPLOAD_PREFIX} or add the bucket to the stack's PayloadSourceBuckets"
            )
    else:
        if pointer.parse(publish["Message"]) is not None:
            # Published as it is, it would reach consumers as a pointer to another body.
            raise ItemUnpublishable(
                "message: has the shape of an extended-client S3 pointer; send the body itself, "
                "or name its S3 object in messageObject"
            )
        if not must_offload(key, publish, settings):
            return None
        body = publish["Message"].encode("utf-8")
        _check_size(len(body), settings, "message: the body")
        staging = Staging(_stored_key(insert_id, body), body=body)
    _check_room_for_marker(publish)
    _check_pointer_fits(key, publish, staging, settings)
    return staging


def named_object(key: Mapping[str, Any], item: Mapping[str, Any], topic_is_fifo: bool) -> Staging | None:
    """For an item (its attributes besides the key, with acceptedAt) that names its body's S3
    object (``messageObject``): that object, and the key of the copy an attempt stores, the
    one ``plan`` gives. None for any other item; ItemUnpublishable as publish_parameters."""
    reference = item.get("messageObject")
    if reference is None:
        return None
    publish = attempts.publish_parameters(key, item, topic_is_fifo, item[Field.ACCEPTED_AT]["S"])
    return _object_staging(publish["MessageAttributes"][message.INSERT_ID]["StringValue"], reference)


def _object_staging(insert_id: str, reference: Mapping[str, Any]) -> Staging:
    source = ObjectRef(reference["M"]["bucket"]["S"], reference["M"]["key"]["S"])
    return Staging(_stored_key(insert_id, str(source).encode("utf-8")), source=source)


def must_offload(key: Mapping[str, Any], publish: Mapping[str, Any], settings: PublishingSettings) -> bool:
    threshold = settings.PAYLOAD_OFFLOAD_THRESHOLD
    return (
        threshold == 0
        or attempts.sns_size(publish) > threshold
        or attempts.input_size(key, publish) > attempts.INPUT_LIMIT_BYTES
    )


def stage(
    staging: Staging, publish: Mapping[str, Any], store: PayloadStore, settings: PublishingSettings, now: float
) -> dict[str, Any]:
    """Store the body (or find it stored by an earlier attempt) and return the publish
    parameters with the pointer to it.

    Raises ItemUnpublishable for what only the item's owner can fix (a missing object, one
    Disa may not read, one above the maximum) and PayloadUnavailable when S3 failed."""
    stored = store.stored(staging.key)
    if stored is not None:
        size = stored.size
        if now - stored.written_at > REFRESH_AFTER_SECONDS:
            store.restamp(staging.key)
    elif staging.body is not None:
        store.put(staging.key, staging.body)
        size = len(staging.body)
    else:
        assert staging.source is not None
        source = _source(staging.source, store)
        size = source.size
        _check_size(size, settings, f"messageObject: {staging.source}")
        store.copy_in(staging.source, source.etag, staging.key)
    return _with_pointer(publish, ObjectRef(store.bucket, staging.key), size)


def _with_pointer(publish: Mapping[str, Any], where: ObjectRef, size: int) -> dict[str, Any]:
    return {
        **publish,
        "Message": pointer.render(where),
        "MessageAttributes": {**publish["MessageAttributes"], pointer.SIZE_ATTRIBUTE: pointer.size_attribute(size)},
    }


def _check_pointer_fits(
    key: Mapping[str, Any], publish: Mapping[str, Any], staging: Staging, settings: PublishingSettings
) -> None:
    """Before the claim: the pointer message (with the largest size marker) must itself fit
    SNS and the execution input, which only very long attribute values prevent."""
    widest = _with_pointer(publish, ObjectRef(settings.PAYLOAD_BUCKET, staging.key), settings.PAYLOAD_MAX_BYTES)
    if (
        attempts.sns_size(widest) > SNS_MESSAGE_LIMIT_BYTES
        or attempts.input_size(key, widest) > attempts.INPUT_LIMIT_BYTES
    ):
        raise ItemUnpublishable(
            f"attributes: {attempts.sns_size(widest)} bytes with the S3 pointer, too large for SNS "
            f"({SNS_MESSAGE_LIMIT_BYTES}) or Step Functions ({attempts.INPUT_LIMIT_BYTES}); "
            "shorten the attribute values"
        )


def _stored_key(insert_id: str, origin: bytes) -> str:
    return f"{STORED_PREFIX}{insert_id}/{hashlib.sha256(origin).hexdigest()[:16]}"


def _check_size(size: int, settings: PublishingSettings, what: str) -> None:
    if size == 0:
        raise ItemUnpublishable(f"{what} is empty; SNS cannot publish an empty message")
    if size > settings.PAYLOAD_MAX_BYTES:
        raise ItemUnpublishable(
            f"{what} is {size} bytes, above this stack's maximum of {settings.PAYLOAD_MAX_BYTES} "
            "(parameter PayloadMaxBytes); send a smaller body"
        )


def _check_room_for_marker(publish: Mapping[str, Any]) -> None:
    own = len(publish["MessageAttributes"]) - 2  # less disa.insertId and disa.acceptedAt
    if len(publish["MessageAttributes"]) + 1 > SNS_MAX_ATTRIBUTES:
        raise ItemUnpublishable(
            f"attributes: {own} message attributes, but a body stored in S3 allows at most "
            f"{SNS_MAX_ATTRIBUTES - 3} (SNS takes 10: Disa's two and the extended clients' "
            f"{pointer.SIZE_ATTRIBUTE}); drop one"
        )


def _source(source: ObjectRef, store: PayloadStore) -> SourceBody:
    try:
        return store.size_of(source)
    except PayloadObjectMissing as missing:
        raise ItemUnpublishable(
            f"messageObject: {source} does not exist; upload the object before inserting the item"
        ) from missing
    except PayloadObjectForbidden as forbidden:
        raise ItemUnpublishable(
            f"messageObject: Disa may not read {source}: S3 or the object's KMS key refuses the stack's "
            "roles; let them s3:GetObject (and kms:Decrypt the object's key), or upload it to the payload bucket"
        ) from forbidden
