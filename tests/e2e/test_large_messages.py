"""Large messages on the local cloud: bodies of 300 KB (in the item) and of 300 KB and 5 MB
(S3 objects the items name) reach two subscriber queues byte-exact, read by the official SQS
extended client and by Disa's consumer helper; a pointer the official SNS extended client
wrote, its body in a bucket of its own (no producer may write elsewhere in Disa's payload
bucket than incoming/ on AWS), is resolved by the helper of a subscriber deployed with
`--payload-bucket` for that bucket; bad references are REJECTED with their reasons; a small
message is unchanged."""

from __future__ import annotations

import hashlib
import re
import uuid

import pytest
from disa_lambda.consumer.payloads import PayloadReader
from disa_lambda.models.settings import names_in
from disa_lambda.models.status import Field, Status

from disa.common import paths
from disa.common.aws_helpers import as_consumed, received_messages, subscribe_queue, wait_until
from disa.deploy.subscribers import Subscription, subscribe, unsubscribe
from disa.operate.subscribers import SubscriberInfo
from tests.e2e.conftest import ARTIFACT_BUCKET, quiet
from tests.support import extended_clients

pytestmark = pytest.mark.e2e
MAX_BYTES = 6_000_000  # the e2e stack's PayloadMaxBytes (tests/e2e/conftest.py)


def text_of(size: int, seed: str) -> bytes:
    return (f"{seed} ✓ large body " * (size // 20 + 1)).encode("utf-8")[:size].decode("utf-8", "ignore").encode()


def digest(body: bytes) -> tuple[str, int]:
    return hashlib.sha256(body).hexdigest(), len(body)


@pytest.fixture(scope="module")
def delivered(local_stack, local_cloud):
    clients, info, run = local_stack.clients, local_stack.info, uuid.uuid4().hex[:8]
    sqs, sns, s3 = clients("sqs"), clients("sns"), clients("s3")
    # The bucket a producer's own SNS extended client stores its bodies in, at the root.
    own_bucket = f"{info.name}-sns-extended-{run}"
    s3.create_bucket(Bucket=own_bucket)
    # The helper's queue is a subscriber's, deployed as a team would, the consumer reading
    # that bucket too; its mapping is off, so the test reads the queue with the same reader.
    helper = Subscription(
        name=f"large-{run}",
        handler="orders.handler",
        code=paths.SAMPLE_CONSUMER,
        parameters={"ConsumerActive": "false"},
        payload_buckets=(own_bucket,),
    )
    subscribe(clients, info, helper, ARTIFACT_BUCKET, log=quiet)
    subscriber = SubscriberInfo.of(clients, info.name, helper.name)
    consumer = clients("lambda").get_function_configuration(FunctionName=subscriber.consumer_function)
    queues = {
        "official": subscribe_queue(sqs, sns, info.topic_arn, f"{info.name}-large-official-{run}"),
        "helper": subscriber.queue.url,
    }
    bodies = {
        "body-300k": text_of(300_000, "inline"),
        "small": b"a small message",
        "ref-300k": text_of(300_000, "object"),
        "ref-5m": text_of(5 * 1024 * 1024, "object"),
    }
    uploads = {"ref-300k": bodies["ref-300k"], "ref-5m": bodies["ref-5m"], "too-big": b"x" * (MAX_BYTES + 1)}
    for name, body in uploads.items():
        s3.put_object(Bucket=info.payload_bucket, Key=f"incoming/{run}/{name}", Body=body)

    def reference(bucket: str, name: str) -> dict:
        return {"messageObject": {"M": {"bucket": {"S": bucket}, "key": {"S": f"incoming/{run}/{name}"}}}}

    items = {
        "body-300k": {"message": {"S": bodies["body-300k"].decode()}},
        "small": {"message": {"S": bodies["small"].decode()}},
        "ref-300k": reference(info.payload_bucket, "ref-300k"),
        "ref-5m": reference(info.payload_bucket, "ref-5m"),
        "missing": reference(info.payload_bucket, "never-uploaded"),
        "not-allowed": reference("someone-elses-bucket", "x"),
        "too-big": reference(info.payload_bucket, "too-big"),
    }
    for name, item in items.items():
        local_stack.put(f"{run}-{name}", **item)
    settled = {
        name: wait_until(
            lambda name=name: local_stack.item(f"{run}-{name}"),
            lambda item: isinstance(Status.of(item), Status) and Status.of(item).is_final,
            timeout=90,
        )
        for name in items
    }
    published_by_sns_client = extended_clients.run(
        local_cloud.environment(), "publish", info.topic_arn, own_bucket, "300000"
    )
    expected = {digest(body) for body in bodies.values()} | {
        (m["sha256"], m["length"]) for m in published_by_sns_client
    }
    wait_until(
        lambda: {
            q: sqs.get_queue_attributes(QueueUrl=u, AttributeNames=["ApproximateNumberOfMessages"])
            for q, u in queues.items()
        },
        lambda depth: all(int(d["Attributes"]["ApproximateNumberOfMessages"]) >= len(expected) for d in depth.values()),
        timeout=30,
    )
    official = extended_clients.run(local_cloud.environment(), "receive", queues["official"], info.payload_bucket)
    raw = received_messages(sqs, queues["helper"], wait_seconds=2)
    yield {
        "run": run,
        "settled": settled,
        "expected": expected,
        "official": official,
        "raw": raw,
        "info": info,
        "own_bucket": own_bucket,
        "consumer_environment": consumer["Environment"]["Variables"],
    }
    sqs.delete_queue(QueueUrl=queues["official"])
    unsubscribe(clients, info.name, helper.name, discard=True, log=quiet)
    for stored in s3.list_objects_v2(Bucket=own_bucket).get("Contents", []):
        s3.delete_object(Bucket=own_bucket, Key=stored["Key"])
    s3.delete_bucket(Bucket=own_bucket)
    # The session's own subscriber queue got these messages too; later tests count theirs.
    local_stack.received_messages(wait_seconds=2)


def test_large_and_small_messages_are_delivered_and_every_item_ends_in_a_clear_state(delivered):
    statuses = {name: Status.of(item) for name, item in delivered["settled"].items()}
    assert statuses == {
        "body-300k": Status.SUCCESSFUL,
        "small": Status.SUCCESSFUL,
        "ref-300k": Status.SUCCESSFUL,
        "ref-5m": Status.SUCCESSFUL,
        "missing": Status.REJECTED,
        "not-allowed": Status.REJECTED,
        "too-big": Status.REJECTED,
    }


def test_the_official_sqs_extended_client_reads_every_body_byte_exact(delivered):
    assert {(m["sha256"], m["length"]) for m in delivered["official"]} == delivered["expected"]
    assert len(delivered["official"]) == len(delivered["expected"]), "each once"
    assert all("ExtendedPayloadSize" not in m["attributes"] for m in delivered["official"])


def test_disas_consumer_helper_reads_every_body_byte_exact_the_sns_extended_clients_too(delivered, local_stack):
    # The reader the deployed consumer builds: the buckets and owner its stack set.
    environment = delivered["consumer_environment"]
    buckets = names_in(environment["PAYLOAD_BUCKETS"])
    assert buckets == {delivered["info"].payload_bucket, delivered["own_bucket"]}
    reader = PayloadReader(buckets, environment["PAYLOAD_BUCKET_OWNER"], local_stack.clients("s3"))
    bodies = []
    for message in delivered["raw"]:
        bodies.append(as_consumed(reader, message).body.encode("utf-8"))
    assert {digest(body) for body in bodies} == delivered["expected"] and len(bodies) == len(delivered["expected"])


def test_the_sns_extended_client_stored_its_body_in_its_own_bucket_not_in_disas(delivered, local_stack):
    s3 = local_stack.clients("s3")
    [stored] = s3.list_objects_v2(Bucket=delivered["own_bucket"])["Contents"]
    assert "/" not in stored["Key"], "at the root of its bucket, as the client writes it"
    in_disas = s3.list_objects_v2(Bucket=delivered["info"].payload_bucket, Delimiter="/")
    assert not in_disas.get("Contents"), "nothing outside incoming/ and payloads/ in Disa's bucket"


def test_a_small_message_is_published_as_it_is(delivered):
    [small] = [m for m in delivered["raw"] if m["Body"] == "a small message"]
    assert "ExtendedPayloadSize" not in small.get("MessageAttributes", {})


def test_bad_references_are_rejected_with_a_reason_that_names_the_problem(delivered):
    run, settled, bucket = delivered["run"], delivered["settled"], delivered["info"].payload_bucket
    reasons = {name: settled[name][Field.STATUS_REASON]["S"] for name in ("missing", "not-allowed", "too-big")}
    assert reasons["missing"].startswith(f"messageObject: s3://{bucket}/incoming/{run}/never-uploaded does not exist")
    assert reasons["not-allowed"].startswith("messageObject: Disa may not read bucket someone-elses-bucket")
    assert re.match(
        rf"messageObject: s3://{bucket}/incoming/{run}/too-big is {MAX_BYTES + 1} bytes, above this stack's maximum",
        reasons["too-big"],
    )
