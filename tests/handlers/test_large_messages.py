"""Large messages through S3, end to end on moto: the trigger stores a body too large to
publish (or copies the object an item names) before the execution starts, the real ASL
publishes the extended clients' pointer, and Disa's consumer helper reads the body back
byte-exact. Bad references end REJECTED with their reasons; a retry reuses the stored body."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time

import pytest
from disa_lambda.consumer.message import parse
from disa_lambda.consumer.payloads import PayloadReader, PayloadUnreadable
from disa_lambda.dal.payloads import PayloadBucket
from disa_lambda.handlers import retry, trigger
from disa_lambda.logic.ports import STAGING_RESERVE_MS, TIME_RESERVE_MS
from disa_lambda.models import pointer
from disa_lambda.models.status import Field, Status

from disa.common.aws_helpers import as_consumed
from tests.support.events import load_event, stream_event, stream_record

pytestmark = pytest.mark.handlers
BODY_300K = ("Large order line ✓ " * 16_000)[:300_000]


def take_in(stack, context, *items: dict) -> dict:
    for item in items:
        stack.put(item)
    response = trigger.lambda_handler(stream_event(*(stream_record(i) for i in items)), context)
    stack.wait_for_executions()
    return response


def read_back(stack, message: dict) -> str:
    """What Disa's consumer helper hands a handler for this queued message."""
    reader = PayloadReader(frozenset({stack.payload_bucket}), "123456789012", stack.clients["s3"])
    return as_consumed(reader, message).body


def test_a_300_kb_item_is_stored_then_published_as_a_pointer_and_read_back_byte_exact(moto_stack, context):
    take_in(
        moto_stack,
        context,
        {"id": {"S": "big"}, "message": {"S": BODY_300K}, "attributes": {"M": {"kind": {"S": "order"}}}},
    )

    assert moto_stack.status("big") is Status.SUCCESSFUL
    [message] = moto_stack.received_messages()
    where = pointer.parse(message["Body"], message["MessageAttributes"])
    assert where is not None and where.bucket == moto_stack.payload_bucket and where.key.startswith("payloads/")
    size = len(BODY_300K.encode("utf-8"))
    assert message["MessageAttributes"]["ExtendedPayloadSize"] == {"StringValue": str(size), "DataType": "Number"}
    assert message["MessageAttributes"]["kind"]["StringValue"] == "order"
    assert read_back(moto_stack, message) == BODY_300K


def test_small_messages_are_unchanged(moto_stack, context):
    take_in(moto_stack, context, {"id": {"S": "small"}, "message": {"S": "hello"}})

    [message] = moto_stack.received_messages()
    assert message["Body"] == "hello" and "ExtendedPayloadSize" not in message["MessageAttributes"]
    assert moto_stack.clients["s3"].list_objects_v2(Bucket=moto_stack.payload_bucket)["KeyCount"] == 0


def test_a_5_mb_object_the_item_names_is_copied_in_and_read_back_byte_exact(moto_stack, context):
    body = bytes(range(32, 127)) * 55_189  # 5,222,955 bytes of text
    s3 = moto_stack.clients["s3"]
    s3.put_object(Bucket=moto_stack.upload_bucket, Key="orders/5mb.json", Body=body)
    reference = {"M": {"bucket": {"S": moto_stack.upload_bucket}, "key": {"S": "orders/5mb.json"}}}

    take_in(moto_stack, context, {"id": {"S": "ref"}, "messageObject": reference})

    assert moto_stack.status("ref") is Status.SUCCESSFUL
    [message] = moto_stack.received_messages()
    where = pointer.parse(message["Body"], message["MessageAttributes"])
    assert where.bucket == moto_stack.payload_bucket, "the pointer names Disa's copy, not the producer's object"
    assert message["MessageAttributes"]["ExtendedPayloadSize"]["StringValue"] == str(len(body))
    assert hashlib.sha256(read_back(moto_stack, message).encode()).digest() == hashlib.sha256(body).digest()


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        (("uploads", "missing.json"), r"^messageObject: s3://disa-test-uploads/missing.json does not exist"),
        (("elsewhere", "x.json"), r"^messageObject: Disa may not read bucket someone-elses-bucket; upload the body"),
        (("uploads", "big.json"), r"^messageObject: s3://disa-test-uploads/big.json is 2048 bytes, above this stack's"),
    ],
)
def test_bad_references_end_rejected_with_the_reason_and_publish_nothing(
    moto_stack, context, monkeypatch, reference, reason
):
    monkeypatch.setenv("PAYLOAD_MAX_BYTES", "1024")
    trigger.dependencies.cache_clear()
    moto_stack.clients["s3"].put_object(Bucket=moto_stack.upload_bucket, Key="big.json", Body=b"x" * 2048)
    bucket = {"uploads": moto_stack.upload_bucket, "elsewhere": "someone-elses-bucket"}[reference[0]]
    item = {"id": {"S": "bad"}, "messageObject": {"M": {"bucket": {"S": bucket}, "key": {"S": reference[1]}}}}

    response = take_in(moto_stack, context, item)

    assert response == {"batchItemFailures": []}
    stored = moto_stack.item("bad")
    assert Status.of(stored) is Status.REJECTED
    assert re.match(reason, stored[Field.STATUS_REASON]["S"]), stored[Field.STATUS_REASON]["S"]
    assert Field.DUE_AT not in stored
    assert moto_stack.received_messages() == []


@pytest.mark.parametrize("moto_stack", ["fifo"], indirect=True)
def test_a_retry_reuses_the_stored_body_and_keeps_the_fifo_deduplication_id(moto_stack, context):
    big = {
        "id": {"S": "fifo-big"},
        "message": {"S": BODY_300K},
        "messageGroupId": {"S": "g"},
        "messageSequence": {"N": "1"},
    }
    moto_stack.clients["sns"].delete_topic(TopicArn=moto_stack.topic_arn)  # the first attempt fails
    take_in(moto_stack, context, big)
    assert moto_stack.status("fifo-big") is Status.FAILED
    s3 = moto_stack.clients["s3"]
    [stored] = s3.list_objects_v2(Bucket=moto_stack.payload_bucket)["Contents"]

    moto_stack.restore_topic()
    moto_stack.make_due("fifo-big")
    retry.lambda_handler(load_event("scheduled-event"), context)
    moto_stack.wait_for_executions()

    assert moto_stack.status("fifo-big") is Status.SUCCESSFUL
    [again] = s3.list_objects_v2(Bucket=moto_stack.payload_bucket)["Contents"]
    assert (again["Key"], again["LastModified"]) == (stored["Key"], stored["LastModified"]), "reused, not rewritten"
    [message] = moto_stack.received_messages()
    insert_id = message["MessageAttributes"]["disa.insertId"]["StringValue"]
    assert message["Attributes"]["MessageDeduplicationId"] == insert_id
    assert pointer.parse(message["Body"], message["MessageAttributes"]).key == stored["Key"]


def test_too_little_time_to_store_a_body_defers_the_attempt_without_counting_it(moto_stack, context):
    context.remaining_ms = STAGING_RESERVE_MS - 1
    assert context.remaining_ms > TIME_RESERVE_MS, "enough for a small item, not for storing a large one"

    take_in(moto_stack, context, {"id": {"S": "late"}, "message": {"S": BODY_300K}})

    late = moto_stack.item("late")
    assert Status.of(late) is Status.PENDING and late[Field.ATTEMPT]["N"] == "0"
    assert "too little of this invocation was left to store the body in S3" in late[Field.STATUS_REASON]["S"]
    context.remaining_ms = 300_000
    retry.lambda_handler(load_event("scheduled-event"), context)
    moto_stack.wait_for_executions()
    assert (
        Status.of(moto_stack.item("late")) is Status.SUCCESSFUL and moto_stack.item("late")[Field.ATTEMPT]["N"] == "1"
    )


def test_the_helper_reads_only_buckets_it_is_set_to_read_and_says_when_a_body_is_gone(moto_stack):
    record = {
        "messageId": "m",
        "body": pointer.render(pointer.ObjectRef(moto_stack.payload_bucket, "payloads/gone")),
        "attributes": {"SentTimestamp": "1"},
        "messageAttributes": {"ExtendedPayloadSize": {"stringValue": "5", "dataType": "Number"}},
    }
    s3 = moto_stack.clients["s3"]
    with pytest.raises(
        PayloadUnreadable, match="is gone: Disa's payload bucket expires bodies after PayloadRetentionDays"
    ):
        PayloadReader(frozenset({moto_stack.payload_bucket}), None, s3).resolve(parse(record))
    with pytest.raises(PayloadUnreadable, match="in a bucket this consumer is not set to read"):
        PayloadReader(frozenset({"another"}), None, s3).resolve(parse(record))
    assert (
        dataclasses.asdict(parse({**record, "body": json.dumps({"plain": True}), "messageAttributes": {}}))["stored_at"]
        is None
    )


def test_every_s3_call_names_the_account_expected_to_own_the_bucket(moto_stack):
    """moto and the local engine ignore ExpectedBucketOwner; AWS refuses a bucket another
    account owns. So the calls themselves are checked for it."""
    s3 = moto_stack.clients["s3"]
    seen: list[tuple[str, dict]] = []
    s3.meta.events.register("provide-client-params.s3.*", lambda params, model, **_: seen.append((model.name, params)))
    s3.put_object(Bucket=moto_stack.upload_bucket, Key="k", Body=b"body")
    seen.clear()
    store = PayloadBucket(moto_stack.payload_bucket, "123456789012", client=s3, copy_client=s3)
    source = pointer.ObjectRef(moto_stack.upload_bucket, "k")

    store.put("payloads/a", b"body")
    store.stored("payloads/a")
    store.restamp("payloads/a")
    measured = store.size_of(source)
    store.copy_in(source, measured.etag, "payloads/b")

    assert measured.size == 4
    assert [name for name, _ in seen] == ["PutObject", "HeadObject", "CopyObject", "GetObject", "CopyObject"]
    assert all(params.get("ExpectedBucketOwner") == "123456789012" for _, params in seen)
    copies = [params for name, params in seen if name == "CopyObject"]
    assert all(params["ExpectedSourceBucketOwner"] == "123456789012" for params in copies)


def test_s3_failing_counts_as_an_attempt_so_a_lasting_fault_ends_abandoned_not_pending(moto_stack, context):
    moto_stack.clients["s3"].delete_bucket(Bucket=moto_stack.payload_bucket)  # every write to it now fails

    take_in(moto_stack, context, {"id": {"S": "s3-down"}, "message": {"S": BODY_300K}})

    item = moto_stack.item("s3-down")
    assert Status.of(item) is Status.PENDING and item[Field.ATTEMPT]["N"] == "1", "counted"
    assert item[Field.STATUS_REASON]["S"].startswith("attempt 1 failed: HeadObject s3://disa-test-payloads/")
    assert int(item[Field.DUE_AT]["N"]) > time.time() + 20, "due at its backoff time, not at once"
    assert moto_stack.received_messages() == []


def test_the_helper_refuses_a_body_whose_length_is_not_the_one_the_message_gives(moto_stack):
    s3 = moto_stack.clients["s3"]
    s3.put_object(Bucket=moto_stack.payload_bucket, Key="payloads/k", Body=b"12345")
    record = {
        "messageId": "m",
        "body": pointer.render(pointer.ObjectRef(moto_stack.payload_bucket, "payloads/k")),
        "attributes": {"SentTimestamp": "1"},
        "messageAttributes": {"ExtendedPayloadSize": {"stringValue": "6", "dataType": "Number"}},
    }
    reader = PayloadReader(frozenset({moto_stack.payload_bucket}), None, s3)
    with pytest.raises(PayloadUnreadable, match="is 5 bytes, the message says 6"):
        reader.resolve(parse(record))
    record["messageAttributes"]["ExtendedPayloadSize"]["stringValue"] = "5"
    assert reader.resolve(parse(record)).body == "12345"
