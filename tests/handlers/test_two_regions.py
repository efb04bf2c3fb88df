"""Two regions: the trigger and the retry job of a region that the ownership record does not
name write nothing, and the failover's takeover sweep takes in what the old owner left."""

from __future__ import annotations

import pytest
from disa_lambda.dal import ownership as ownership_reader
from disa_lambda.handlers import retry, trigger
from disa_lambda.models.metrics import Count
from disa_lambda.models.ownership import NO_OWNER, OwnershipRecord
from disa_lambda.models.status import Field, Status

from tests.support.events import load_event, stream_event, stream_record
from tests.support.moto_stack import REGION, SECONDARY_REGION

pytestmark = [pytest.mark.handlers, pytest.mark.parametrize("moto_stack", ["two-regions"], indirect=True)]


@pytest.fixture(autouse=True)
def no_ownership_cache(monkeypatch):
    # Each test moves the record and reads it at once; warm functions wait CACHE_SECONDS.
    monkeypatch.setattr(ownership_reader, "CACHE_SECONDS", 0.0)


def own(stack, region: str, epoch: int) -> None:
    record = OwnershipRecord(owner=region, epoch=epoch, since="2026-12-02T00:00:00Z")
    stack.clients["dynamodb"].put_item(TableName=stack.ownership_table, Item=record.to_item())


def insert(stack, key: str, message: str) -> dict:
    image = {"id": {"S": key}, "message": {"S": message}}
    stack.put(image)
    return stream_record(image)


def test_a_region_the_record_does_not_name_leaves_every_insert_untouched(moto_stack, context):
    own(moto_stack, SECONDARY_REGION, epoch=2)
    event = stream_event(insert(moto_stack, "p1", "one"), insert(moto_stack, "p2", "two"))

    assert trigger.lambda_handler(event, context) == {"batchItemFailures": []}

    assert [moto_stack.status("p1"), moto_stack.status("p2")] == [None, None]
    assert set(moto_stack.item("p1")) == {"id", "message"}  # not even a mark: a passive region writes nothing
    assert moto_stack.received_messages() == []


def test_the_owner_takes_inserts_in_and_no_record_means_the_primary_owns(moto_stack, context):
    event = stream_event(insert(moto_stack, "o1", "before any failover"))
    trigger.lambda_handler(event, context)  # no record yet: the primary (this region) owns
    own(moto_stack, REGION, epoch=3)
    trigger.lambda_handler(stream_event(insert(moto_stack, "o2", "after a failback")), context)
    moto_stack.wait_for_executions()

    assert [moto_stack.status("o1"), moto_stack.status("o2")] == [Status.SUCCESSFUL, Status.SUCCESSFUL]


def test_the_retry_job_of_a_region_that_does_not_own_retries_nothing(moto_stack, context):
    failed = {"id": {"S": "f1"}, "message": {"S": "x"}}
    moto_stack.put(failed)
    own(moto_stack, SECONDARY_REGION, epoch=2)

    result = retry.lambda_handler(load_event("scheduled-event"), context)

    assert result == {"skipped": True, "owner": SECONDARY_REGION}
    assert moto_stack.status("f1") is None


def test_the_passive_retry_job_beats_but_while_nobody_owns_neither_region_does(moto_stack, context):
    own(moto_stack, SECONDARY_REGION, epoch=2)
    retry.lambda_handler(load_event("scheduled-event"), context)
    assert moto_stack.metric_sum(Count.RETRY_JOB_RUNS) == 1  # passive, and its job works

    released = OwnershipRecord(owner=SECONDARY_REGION, epoch=2).released("2026-12-02T00:00:01Z")
    moto_stack.clients["dynamodb"].put_item(TableName=moto_stack.ownership_table, Item=released.to_item())
    moto_stack.put({"id": {"S": "n1"}, "message": {"S": "inserted while nobody owns"}})

    assert retry.lambda_handler(load_event("scheduled-event"), context) == {"skipped": True, "owner": NO_OWNER}
    assert trigger.lambda_handler(stream_event(stream_record(moto_stack.item("n1"))), context) == {
        "batchItemFailures": []
    }
    # No heartbeat: the retry-job-stopped alarm says that nothing retries, in both regions.
    assert moto_stack.metric_sum(Count.RETRY_JOB_RUNS) == 1
    assert moto_stack.status("n1") is None  # left for the new owner's takeover sweep


def test_the_takeover_sweep_takes_in_every_item_without_a_status_at_once(moto_stack, context):
    own(moto_stack, SECONDARY_REGION, epoch=2)
    for n in range(5):
        insert(moto_stack, f"left-{n}", f"left by the old owner {n}")  # its trigger passed over them
    moto_stack.put({"id": {"S": "bad"}, "message": {"N": "1"}})
    moto_stack.put({"id": {"S": "done"}, "message": {"S": "x"}, Field.STATUS: {"S": "SUCCESSFUL"}})
    own(moto_stack, REGION, epoch=3)  # the failover to this region

    reports = [
        retry.lambda_handler({"takeover": {"segment": segment, "segments": 2, "startKey": None}}, context)
        for segment in range(2)
    ]
    moto_stack.wait_for_executions()

    assert sum(r["taken_in"] for r in reports) == 5 and sum(r["rejected"] for r in reports) == 1
    assert all(r["done"] for r in reports)
    assert {moto_stack.status(f"left-{n}") for n in range(5)} == {Status.SUCCESSFUL}
    assert moto_stack.status("bad") is Status.REJECTED
    assert sorted(m["Body"] for m in moto_stack.received_messages()) == [f"left by the old owner {n}" for n in range(5)]


def test_a_takeover_sent_to_a_region_that_does_not_own_yet_is_refused(moto_stack, context):
    own(moto_stack, SECONDARY_REGION, epoch=2)
    insert(moto_stack, "early", "x")

    result = retry.lambda_handler({"takeover": {"segment": 0, "segments": 1, "startKey": None}}, context)

    assert result["skipped"] is True and moto_stack.status("early") is None
