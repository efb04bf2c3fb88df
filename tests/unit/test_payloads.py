"""Large messages: when a body is stored in S3, the pointer published for it, and what a
retry, a corrected item and bad references become (logic/payloads.py, models/pointer.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from disa_lambda.logic import attempts, payloads
from disa_lambda.models import pointer
from disa_lambda.models.exceptions import ItemUnpublishable, PayloadObjectForbidden
from disa_lambda.models.pointer import ObjectRef

from tests.support.fuzzing import MemoryPayloads
from tests.support.settings import PUBLISHING

pytestmark = pytest.mark.unit
KEY = {"id": {"S": "order-1"}}
T0 = "2026-11-23T10:00:00.000Z"
DAY = 86_400


def publish_of(item, settings=PUBLISHING):
    params = attempts.publish_parameters(KEY, item, False, T0)
    return params, payloads.plan(KEY, item, params, settings)


def own_attribute_bytes() -> int:
    return attempts.sns_size(attempts.publish_parameters(KEY, {"message": {"S": "x"}}, False, T0)) - 1


def test_a_message_at_the_threshold_is_published_as_it_is_and_one_byte_more_is_stored():
    threshold = 100_000
    settings = dataclasses.replace(PUBLISHING, PAYLOAD_OFFLOAD_THRESHOLD=threshold)
    longest = threshold - own_attribute_bytes()  # body and attributes counted as the extended clients count

    _, at_threshold = publish_of({"message": {"S": "x" * longest}}, settings)
    _, above = publish_of({"message": {"S": "x" * (longest + 1)}}, settings)

    assert at_threshold is None
    assert above is not None and above.body == b"x" * (longest + 1)


def test_always_stores_every_body_and_the_step_functions_limit_stores_what_the_threshold_lets_through():
    always = dataclasses.replace(PUBLISHING, PAYLOAD_OFFLOAD_THRESHOLD=0)
    assert publish_of({"message": {"S": "tiny"}}, always)[1] is not None
    # Below SNS's 256 KiB but, escaped in JSON, beyond what Step Functions takes.
    quotes = '"' * (attempts.INPUT_LIMIT_BYTES - 1000)
    params, staging = publish_of({"message": {"S": quotes}})
    assert attempts.sns_size(params) < PUBLISHING.PAYLOAD_OFFLOAD_THRESHOLD and staging is not None


def test_the_stored_body_is_published_as_the_extended_clients_pointer_with_its_size():
    body = "é" * 200_000  # 400,000 bytes: counted in bytes, not characters
    params, staging = publish_of({"message": {"S": body}, "attributes": {"M": {"kind": {"S": "order"}}}})
    store = MemoryPayloads()

    published = payloads.stage(staging, params, store, PUBLISHING, now=store.clock)

    where = ObjectRef("disa-payloads", staging.key)
    assert published["Message"] == (
        '["software.amazon.payloadoffloading.PayloadS3Pointer",'
        f'{{"s3BucketName":"disa-payloads","s3Key":"{staging.key}"}}]'
    )
    assert pointer.parse(published["Message"], published["MessageAttributes"]) == where
    assert published["MessageAttributes"]["ExtendedPayloadSize"] == {"DataType": "Number", "StringValue": "400000"}
    assert published["MessageAttributes"]["kind"] == params["MessageAttributes"]["kind"]
    assert store.objects[staging.key][0] == body.encode("utf-8")
    assert staging.key.startswith(f"payloads/{params['MessageAttributes']['disa.insertId']['StringValue']}/")


def test_a_retry_reuses_the_stored_body_and_a_corrected_body_gets_an_object_of_its_own():
    params, staging = publish_of({"message": {"S": "a" * 300_000}})
    store = MemoryPayloads()
    first = payloads.stage(staging, params, store, PUBLISHING, now=store.clock)

    again = payloads.stage(staging, params, store, PUBLISHING, now=store.clock + 600)
    corrected_params, corrected = publish_of({"message": {"S": "b" * 300_000}})

    assert again == first and store.calls == ["put"]
    assert corrected.key != staging.key
    assert corrected_params["MessageAttributes"]["disa.insertId"] == params["MessageAttributes"]["disa.insertId"]


def test_a_retry_more_than_a_day_later_restamps_the_stored_body_so_it_outlives_every_queue():
    params, staging = publish_of({"message": {"S": "a" * 300_000}})
    store = MemoryPayloads()
    payloads.stage(staging, params, store, PUBLISHING, now=store.clock)

    store.clock += 2 * DAY
    payloads.stage(staging, params, store, PUBLISHING, now=store.clock)

    assert store.calls == ["put", "restamp"] and store.objects[staging.key][1] == store.clock


def test_a_referenced_object_is_copied_in_and_published_like_a_stored_body():
    item = {"messageObject": {"M": {"bucket": {"S": "producer-uploads"}, "key": {"S": "orders/42.json"}}}}
    params, staging = publish_of(item)
    store = MemoryPayloads(sources={("producer-uploads", "orders/42.json"): b"{}" * 3_000_000})

    published = payloads.stage(staging, params, store, PUBLISHING, now=store.clock)

    assert staging.source == ObjectRef("producer-uploads", "orders/42.json")
    assert store.calls == ["copy"] and store.objects[staging.key][0] == b"{}" * 3_000_000
    assert published["MessageAttributes"]["ExtendedPayloadSize"]["StringValue"] == "6000000"


@pytest.mark.parametrize(
    ("bucket", "sources", "reason"),
    [
        (
            "someone-elses-bucket",
            {},
            r"^messageObject: Disa may not read bucket someone-elses-bucket; .*PayloadSourceBuckets",
        ),
        ("producer-uploads", {}, r"^messageObject: s3://producer-uploads/k does not exist; upload the object before"),
        ("producer-uploads", {("producer-uploads", "k"): b""}, r"^messageObject: s3://producer-uploads/k is empty"),
        (
            "producer-uploads",
            {("producer-uploads", "k"): b"x" * 1001},
            r"^messageObject: s3://producer-uploads/k is 1001 bytes, above this stack's maximum of 1000 "
            r"\(parameter PayloadMaxBytes\)",
        ),
    ],
)
def test_bad_references_are_unpublishable_with_a_reason_naming_the_problem(bucket, sources, reason):
    settings = dataclasses.replace(PUBLISHING, PAYLOAD_MAX_BYTES=1000)
    item = {"messageObject": {"M": {"bucket": {"S": bucket}, "key": {"S": "k"}}}}
    store = MemoryPayloads(sources=sources)

    with pytest.raises(ItemUnpublishable, match=reason):
        params, staging = publish_of(item, settings)
        payloads.stage(staging, params, store, settings, now=store.clock)
    assert store.objects == {}


def test_an_object_disa_may_not_read_is_unpublishable_and_says_what_to_grant():
    item = {"messageObject": {"M": {"bucket": {"S": "producer-uploads"}, "key": {"S": "k"}}}}
    params, staging = publish_of(item)
    store = MemoryPayloads()

    def refuse(source):
        raise PayloadObjectForbidden(f"{source}: AccessDenied")

    store.size_of = refuse
    with pytest.raises(
        ItemUnpublishable, match=r"^messageObject: Disa may not read s3://producer-uploads/k: .*kms:Decrypt"
    ):
        payloads.stage(staging, params, store, PUBLISHING, now=store.clock)


def test_a_stored_body_leaves_room_for_seven_attributes_only():
    seven = {"attributes": {"M": {f"a{n}": {"S": "v"} for n in range(7)}}}
    eight = {"attributes": {"M": {f"a{n}": {"S": "v"} for n in range(8)}}}
    assert publish_of({"message": {"S": "x" * 300_000}, **seven})[1] is not None
    with pytest.raises(
        ItemUnpublishable, match=r"^attributes: 8 message attributes, but a body stored in S3 allows at most 7"
    ):
        publish_of({"message": {"S": "x" * 300_000}, **eight})
    # A small message keeps all eight.
    assert publish_of({"message": {"S": "x"}, **eight})[1] is None


@pytest.mark.parametrize(
    "body",
    [
        '["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": "b", "s3Key": "k"}]',  # Python's
        '["com.amazon.sqs.javamessaging.MessageS3Pointer",{"s3BucketName":"b","s3Key":"k"}]',  # legacy Java
    ],
)
def test_a_pointer_is_recognised_with_or_without_its_marker(body):
    assert pointer.parse(body, {"ExtendedPayloadSize": "1"}) == ObjectRef("b", "k")
    assert pointer.parse(body, {}) == ObjectRef("b", "k")


@pytest.mark.parametrize(
    "body",
    ['["just", "a list"]', '["x", {"s3BucketName": "b", "s3Key": "k"}]', "not json", '{"s3BucketName": "b"}', "[1,2"],
)
def test_a_body_that_only_resembles_a_pointer_is_a_body(body):
    assert pointer.parse(body, {}) is None


def test_with_the_marker_any_two_element_pointer_shape_is_read():
    body = json.dumps(["some.other.PointerClass", {"s3BucketName": "b", "s3Key": "k"}])
    assert pointer.parse(body, {"SQSLargePayloadSize": "9"}) == ObjectRef("b", "k")


def test_a_message_shaped_like_a_pointer_is_unpublishable_so_no_consumer_follows_it_elsewhere():
    spoof = (
        '["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"disa-payloads","s3Key":"payloads/x"}]'
    )
    with pytest.raises(ItemUnpublishable, match=r"^message: has the shape of an extended-client S3 pointer"):
        publish_of({"message": {"S": spoof}})
