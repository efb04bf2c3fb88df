"""The consumer helper fed SQS events in AWS's shapes (raw delivery and SNS's envelope),
with Powertools idempotency on a moto DynamoDB processed-ids table, and in two regions the
ownership record on a moto table built from the Disa stack's template."""

from __future__ import annotations

import copy
import json
import logging
import time
from typing import Any

import boto3
import pytest
from disa_lambda.consumer import stages
from disa_lambda.consumer.consumer import Consumer, Settings
from disa_lambda.models.exceptions import SettingsError
from disa_lambda.models.ownership import OwnershipRecord

from tests.support.events import load_event
from tests.support.moto_stack import REGION, SECONDARY_REGION, resolve
from tests.support.templates import resources

pytestmark = pytest.mark.handlers
TABLE = "disa-orders-processed-ids"
NOW_MS = 1_795_428_001_000  # the fixed clock: 400 ms after the sample's first receive


@pytest.fixture
def processed_ids(moto_engine):
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return ddb


def make_consumer(ddb: Any, fifo: bool = False, retention: int = 3600, **two_regions: str) -> Consumer:
    settings = Settings("disa-orders", TABLE, fifo, retention, region=REGION, **two_regions)
    return Consumer(settings, dynamodb=ddb, clock=lambda: NOW_MS / 1000)


@pytest.fixture
def ownership(processed_ids) -> str:
    """The Disa stack's ownership table (its template's key schema), no record written yet."""
    params = {"NamePrefix": "disa", "KeyArn": "unused", "DeletionProtection": "false"}
    props = resolve(resources("table", "AWS::DynamoDB::Table")["OwnershipTable"]["Properties"], params)
    processed_ids.create_table(
        TableName=props["TableName"],
        BillingMode=props["BillingMode"],
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
    )
    return props["TableName"]


def own(ddb: Any, table: str, owner: str, epoch: int = 1) -> None:
    """The record as `disa failover` leaves it: ``owner`` publishes and consumes."""
    ddb.put_item(TableName=table, Item=OwnershipRecord(owner=owner, epoch=epoch).to_item())


def warnings_logged(caplog) -> list[logging.LogRecord]:
    # caplog, not capsys: Powertools' Logger keeps the stream of the first test that made it.
    return [r for r in caplog.records if r.levelno == logging.WARNING]


def record(n: int, insert_id: str | None = None, group: str | None = None, body: dict | None = None) -> dict[str, Any]:
    """The raw-delivery sample as message ``n`` of a batch, one insert each unless told."""
    sample = copy.deepcopy(load_event("sqs-raw-delivery")["Records"][0])
    sample["messageId"] = f"sqs-{n}"
    sample["body"] = json.dumps(body if body is not None else {"order_id": f"o-{n}", "store_id": "s"})
    sample["messageAttributes"]["disa.insertId"]["stringValue"] = insert_id or f"{n:064x}"
    if group:
        sample["attributes"]["MessageGroupId"] = group
    return sample


def one(line: dict[str, Any], metric: str) -> float:
    """The single value of ``metric`` in an EMF line (Powertools writes values as lists)."""
    [value] = line[metric]
    return value


def emf_lines(capsys) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line]


def test_only_failing_messages_return_to_the_queue(processed_ids, context):
    seen = []

    def handle(message):
        seen.append(message.body)
        if "store_id" not in json.loads(message.body):
            raise ValueError("no store_id")

    response = make_consumer(processed_ids).handler(handle)(
        {"Records": [record(1), record(2, body={"order_id": "o-2"}), record(3)]}, context
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-2"}]}
    assert len(seen) == 3


def test_a_failing_fifo_message_holds_its_groups_later_messages_and_no_other_group(processed_ids, context):
    processed = []

    def handle(message):
        if message.body == json.dumps({"order_id": "poison"}):
            raise ValueError("poison")
        processed.append(json.loads(message.body)["order_id"])

    batch = [
        record(1, group="a"),
        record(2, group="a", body={"order_id": "poison"}),
        record(3, group="b"),
        record(4, group="a"),
        record(5, group="b"),
    ]
    response = make_consumer(processed_ids, fifo=True).handler(handle)({"Records": batch}, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-2"}, {"itemIdentifier": "sqs-4"}]}
    assert processed == ["o-1", "o-3", "o-5"]


def test_every_copy_of_one_insert_is_processed_once_and_counted_as_a_duplicate(processed_ids, context, capsys):
    calls = []
    handler = make_consumer(processed_ids).handler(lambda message: calls.append(message.sqs_message_id))
    same_insert = "ab" * 32
    # an SNS duplicate in the same batch, then an SQS redelivery and a second publish later
    assert handler({"Records": [record(1, same_insert), record(2, same_insert)]}, context) == {"batchItemFailures": []}
    assert handler({"Records": [record(3, same_insert)]}, context) == {"batchItemFailures": []}
    assert calls == ["sqs-1"]
    counts = {}
    for line in emf_lines(capsys):
        for name in (stages.PROCESSED, stages.DUPLICATES):
            value = line.get(name, 0)
            counts[name] = counts.get(name, 0) + (sum(value) if isinstance(value, list) else value)
    assert counts == {stages.PROCESSED: 1, stages.DUPLICATES: 2}


def test_a_failed_message_is_not_remembered_so_its_redelivery_is_processed(processed_ids, context):
    attempts = []

    def flaky(message):
        attempts.append(message.sqs_message_id)
        if len(attempts) == 1:
            raise RuntimeError("downstream unavailable")

    handler = make_consumer(processed_ids).handler(flaky)
    assert handler({"Records": [record(1, "cd" * 32)]}, context) == {"batchItemFailures": [{"itemIdentifier": "sqs-1"}]}
    assert handler({"Records": [record(1, "cd" * 32)]}, context) == {"batchItemFailures": []}
    assert attempts == ["sqs-1", "sqs-1"]


def test_an_in_progress_record_left_by_a_crashed_invocation_expires(processed_ids, context):
    insert_id = "ef" * 32
    handler = make_consumer(processed_ids).handler(lambda message: None)
    handler({"Records": [record(1, insert_id)]}, context)
    [stored] = processed_ids.scan(TableName=TABLE)["Items"]
    # As a crash mid-processing leaves it: INPROGRESS, its invocation's time long over.
    stored["status"] = {"S": "INPROGRESS"}
    stored["in_progress_expiration"] = {"N": str(int(time.time() * 1000) - 1000)}
    stored.pop("data", None)
    processed_ids.put_item(TableName=TABLE, Item=stored)
    calls = []
    again = make_consumer(processed_ids).handler(lambda message: calls.append(1))
    assert again({"Records": [record(2, insert_id)]}, context) == {"batchItemFailures": []}
    assert calls == [1]


def test_a_fresh_in_progress_record_fails_the_copy_so_it_is_retried_later(processed_ids, context):
    insert_id = "aa" * 32
    make_consumer(processed_ids).handler(lambda message: None)({"Records": [record(1, insert_id)]}, context)
    [stored] = processed_ids.scan(TableName=TABLE)["Items"]
    stored["status"] = {"S": "INPROGRESS"}
    stored["in_progress_expiration"] = {"N": str(int(time.time() * 1000) + 60_000)}
    stored.pop("data", None)
    processed_ids.put_item(TableName=TABLE, Item=stored)
    calls = []
    response = make_consumer(processed_ids).handler(lambda m: calls.append(1))(
        {"Records": [record(2, insert_id)]}, context
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-2"}]} and calls == []


def test_raw_delivery_reports_every_stage_but_the_envelope_ones_in_exact_milliseconds(processed_ids, context, capsys):
    make_consumer(processed_ids).handler(lambda message: None)(load_event("sqs-raw-delivery"), context)
    [line] = emf_lines(capsys)
    [directive] = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == stages.NAMESPACE
    assert directive["Dimensions"] == [[stages.DIMENSION]] and line[stages.DIMENSION] == "disa-orders"
    measured = {s.metric: one(line, s.metric) for s in stages.STAGES if s.metric in line}
    assert measured == {
        "AcceptedToQueue": 500,
        "QueueWait": 100,
        "ReceiveToStart": 400,
        "Processing": 0,
        "EndToEnd": 1000,
    }


def test_envelope_delivery_splits_accepted_to_queue_at_snss_timestamp(processed_ids, context, capsys):
    bodies = []
    make_consumer(processed_ids).handler(lambda message: bodies.append((message.body, message.attributes)))(
        load_event("sqs-envelope-delivery"), context
    )
    assert bodies == [(json.dumps({"order_id": "o-1", "store_id": "store-1"}), {"kind": "order"})]
    [line] = emf_lines(capsys)
    assert [one(line, m) for m in ("AcceptedToSns", "SnsToQueue", "AcceptedToQueue")] == [200, 300, 500]


def test_a_message_disa_did_not_publish_is_processed_once_by_its_sqs_message_id(processed_ids, context, capsys):
    foreign = record(1)
    foreign["messageAttributes"] = {}
    calls = []
    handler = make_consumer(processed_ids).handler(lambda message: calls.append(message.insert_id))
    handler({"Records": [foreign]}, context)
    handler({"Records": [foreign]}, context)
    assert calls == [None]
    [line] = [line for line in emf_lines(capsys) if stages.PROCESSED in line]
    assert "EndToEnd" not in line and one(line, "QueueWait") == 100


@pytest.mark.parametrize("fifo", [False, True])
def test_a_region_that_does_not_own_processes_nothing_and_returns_every_message(
    processed_ids, ownership, context, caplog, fifo
):
    own(processed_ids, ownership, SECONDARY_REGION)
    calls = []
    batch = [record(1, group="a" if fifo else None), record(2, group="b" if fifo else None), record(3)]
    consumer = make_consumer(processed_ids, fifo=fifo, ownership_table=ownership, primary_region=REGION)
    response = consumer.handler(lambda message: calls.append(message.sqs_message_id))({"Records": batch}, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": f"sqs-{n}"} for n in (1, 2, 3)]}
    assert calls == []
    # Nothing remembered either: the owner's consumer, or this one after a failover, processes them.
    assert processed_ids.scan(TableName=TABLE)["Items"] == []
    [warning] = warnings_logged(caplog)
    assert (warning.owner, warning.region) == (SECONDARY_REGION, REGION)
    assert "disa failover" in warning.getMessage()


def test_the_owning_region_processes(processed_ids, ownership, context):
    own(processed_ids, ownership, REGION, epoch=2)  # back after a failover and a failback
    calls = []
    consumer = make_consumer(processed_ids, ownership_table=ownership, primary_region=SECONDARY_REGION)
    response = consumer.handler(lambda message: calls.append(message.sqs_message_id))(
        {"Records": [record(1), record(2)]}, context
    )
    assert response == {"batchItemFailures": []} and calls == ["sqs-1", "sqs-2"]


@pytest.mark.parametrize(("primary", "processed"), [(REGION, True), (SECONDARY_REGION, False)])
def test_before_any_failover_the_primary_region_owns(processed_ids, ownership, context, primary, processed):
    # No record yet (between the deploy and the first failover): it names the primary.
    calls = []
    consumer = make_consumer(processed_ids, ownership_table=ownership, primary_region=primary)
    response = consumer.handler(lambda message: calls.append(1))({"Records": [record(1)]}, context)
    assert (calls == [1]) is processed
    assert response == {"batchItemFailures": [] if processed else [{"itemIdentifier": "sqs-1"}]}


def test_one_region_has_no_ownership_table_and_always_processes(processed_ids, context):
    calls = []
    handler = make_consumer(processed_ids).handler(lambda message: calls.append(message.sqs_message_id))
    assert handler({"Records": [record(1)]}, context) == {"batchItemFailures": []}
    assert calls == ["sqs-1"]


def test_an_unreadable_ownership_record_processes_nothing(processed_ids, context, caplog):
    calls = []
    # The table is not there (a replica still being added, a region cut off): owner unknown.
    consumer = make_consumer(processed_ids, ownership_table="disa-ownership", primary_region=REGION)
    response = consumer.handler(lambda message: calls.append(1))({"Records": [record(1), record(2)]}, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-1"}, {"itemIdentifier": "sqs-2"}]}
    assert calls == []
    [warning] = warnings_logged(caplog)
    assert "ownership record could not be read" in warning.getMessage() and "disa-ownership" in warning.reason


def test_settings_read_the_two_region_environment_and_refuse_half_of_it(monkeypatch):
    for name, value in {"SUBSCRIBER_NAME": "disa-orders", "PROCESSED_IDS_TABLE_NAME": TABLE}.items():
        monkeypatch.setenv(name, value)
    one_region = Settings.from_environment()
    assert (one_region.ownership_table, one_region.primary_region, one_region.region) == ("", "", REGION)
    monkeypatch.setenv("OWNERSHIP_TABLE_NAME", "disa-ownership")
    with pytest.raises(SettingsError, match="PRIMARY_REGION"):
        Settings.from_environment()
    monkeypatch.setenv("PRIMARY_REGION", SECONDARY_REGION)
    two = Settings.from_environment()
    assert (two.ownership_table, two.primary_region, two.region) == ("disa-ownership", SECONDARY_REGION, REGION)
