"""FIFO topics: each message group published in messageSequence order, one message at a time,
through failures, retries and missed wake-ups. The trigger and retry handlers are fed
AWS-shaped events; executions run the real ASL on moto; the stream mapping is played by
``Pipeline``, which hands the trigger the records its filter lets through (INSERTs, and the
MODIFYs that make an item of a group final)."""

from __future__ import annotations

import json
import time

import pytest
from disa_lambda.handlers import retry, trigger
from disa_lambda.logic import dedup
from disa_lambda.models.status import Field, Status

from tests.support.events import load_event, stream_event, stream_record

pytestmark = pytest.mark.handlers
fifo = pytest.mark.parametrize("moto_stack", ["fifo"], indirect=True)


def fifo_item(key: str, group: str, sequence: int, **attributes) -> dict:
    return {
        "id": {"S": key},
        "message": {"S": f"body of {key}"},
        "messageGroupId": {"S": group},
        "messageSequence": {"N": str(sequence)},
        **attributes,
    }


class Pipeline:
    """The stream mapping on moto: INSERT records as written, then, until nothing changes,
    the MODIFY record of every item that became final (what the mapping's filter passes)."""

    def __init__(self, stack, context) -> None:
        self.stack, self.context = stack, context
        self.keys: list[str] = []
        self.passed_on: set[tuple[str, str]] = set()

    def insert(self, *images: dict) -> dict:
        for image in images:
            self.stack.put(image)
            self.keys.append(image["id"]["S"])
        return trigger.lambda_handler(stream_event(*(stream_record(image) for image in images)), self.context)

    def settle(self, feed_modifies: bool = True) -> None:
        while True:
            self.stack.wait_for_executions()
            if not feed_modifies:
                return
            records = []
            for key in self.keys:
                image = self.stack.item(key)
                status = Status.of(image)
                if isinstance(status, Status) and status.is_final and (key, status) not in self.passed_on:
                    self.passed_on.add((key, status))
                    if "messageSequence" in image:
                        records.append(stream_record(image, event_name="MODIFY"))
            if not records:
                return
            trigger.lambda_handler(stream_event(*records), self.context)

    def retry(self) -> dict:
        return retry.lambda_handler(load_event("scheduled-event"), self.context)


def received_by_group(stack) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for message in stack.received_messages():
        groups.setdefault(message["Attributes"]["MessageGroupId"], []).append(message["Body"])
    return groups


@pytest.fixture
def pipeline(moto_stack, context) -> Pipeline:
    return Pipeline(moto_stack, context)


@fifo
def test_each_group_is_published_in_sequence_order_whatever_order_its_records_arrive(moto_stack, pipeline):
    pipeline.insert(fifo_item("a3", "A", 3), fifo_item("b2", "B", 2), fifo_item("a1", "A", 1), fifo_item("a2", "A", 2))
    assert {key: moto_stack.status(key) for key in ("a2", "a3", "b2")} == dict.fromkeys(
        ("a2", "a3", "b2"), Status.WAITING
    ), "the first of each group is not published yet, or not inserted at all (B's sequence 1)"
    assert "sequence 1 of message group 'B' is not published yet" in moto_stack.item("b2")[Field.STATUS_REASON]["S"]
    pipeline.insert(fifo_item("b1", "B", 1))
    pipeline.settle()

    assert received_by_group(moto_stack) == {
        "A": ["body of a1", "body of a2", "body of a3"],
        "B": ["body of b1", "body of b2"],
    }
    assert all(moto_stack.status(key) is Status.SUCCESSFUL for key in pipeline.keys)


@fifo
def test_a_failed_item_holds_its_group_until_its_retry_succeeds_and_other_groups_go_on(moto_stack, pipeline):
    moto_stack.clients["sns"].delete_topic(TopicArn=moto_stack.topic_arn)  # SNS refuses: NotFound
    pipeline.insert(fifo_item("a1", "A", 1))
    pipeline.settle()
    assert moto_stack.status("a1") is Status.FAILED
    assert Field.AMBIGUOUS_SINCE not in moto_stack.item("a1"), "a publish SNS refused outright leaves no doubt"
    moto_stack.restore_topic()
    pipeline.insert(fifo_item("a2", "A", 2), fifo_item("b1", "B", 1))
    pipeline.settle()
    assert moto_stack.status("a2") is Status.WAITING
    assert received_by_group(moto_stack) == {"B": ["body of b1"]}

    moto_stack.make_due("a1")
    report = pipeline.retry()
    pipeline.settle()
    assert report["started"] >= 1
    assert received_by_group(moto_stack) == {"A": ["body of a1", "body of a2"]}
    assert moto_stack.item("a1")[Field.ATTEMPT]["N"] == "2"


@fifo
def test_an_invalid_item_is_rejected_and_passes_its_turn(moto_stack, pipeline):
    pipeline.insert(fifo_item("a1", "A", 1, message={"N": "7"}), fifo_item("a2", "A", 2))
    pipeline.settle()
    assert moto_stack.status("a1") is Status.REJECTED
    assert received_by_group(moto_stack) == {"A": ["body of a2"]}


@fifo
def test_a_sequence_number_taken_twice_rejects_the_second_item(moto_stack, pipeline):
    pipeline.insert(fifo_item("first", "A", 1))
    pipeline.insert(fifo_item("second", "A", 1))
    pipeline.settle()
    reason = moto_stack.item("second")[Field.STATUS_REASON]["S"]
    assert reason.startswith("messageSequence: 1 is already held by another item of message group 'A'")
    assert received_by_group(moto_stack) == {"A": ["body of first"]}


@fifo
def test_a_redelivered_record_starts_nothing_again(moto_stack, pipeline, context):
    image = fifo_item("a1", "A", 1)
    pipeline.insert(image)
    trigger.lambda_handler(stream_event(stream_record(image)), context)
    pipeline.settle()
    assert received_by_group(moto_stack) == {"A": ["body of a1"]}


@fifo
def test_a_missed_wake_up_is_mended_by_the_retry_job(moto_stack, pipeline):
    pipeline.insert(fifo_item("a1", "A", 1), fifo_item("a2", "A", 2))
    pipeline.settle(feed_modifies=False)  # the MODIFY of a1's SUCCESSFUL never reaches the trigger
    assert (moto_stack.status("a1"), moto_stack.status("a2")) == (Status.SUCCESSFUL, Status.WAITING)

    moto_stack.make_due("a2")
    pipeline.retry()
    pipeline.settle()
    assert received_by_group(moto_stack) == {"A": ["body of a1", "body of a2"]}


@fifo
def test_a_waiting_item_checked_before_its_turn_waits_on_with_a_later_check(moto_stack, pipeline):
    pipeline.insert(fifo_item("a2", "A", 2))
    moto_stack.make_due("a2")
    report = pipeline.retry()
    item = moto_stack.item("a2")
    assert report["still_waiting"] == 1 and Status.of(item) is Status.WAITING
    assert int(item[Field.DUE_AT]["N"]) > time.time(), "checked again later, not every run"
    assert "sequence 1 of message group 'A' has not been inserted yet" in item[Field.STATUS_REASON]["S"]


@pytest.mark.parametrize(("moto_stack", "next_goes"), [("fifo", True), ("fifo-hold", False)], indirect=["moto_stack"])
def test_an_abandoned_item_releases_or_holds_its_group_by_parameter(moto_stack, pipeline, next_goes):
    moto_stack.clients["sns"].delete_topic(TopicArn=moto_stack.topic_arn)
    pipeline.insert(fifo_item("a1", "A", 1))
    pipeline.settle()
    pipeline.insert(fifo_item("a2", "A", 2))
    for _ in range(moto_stack.max_attempts):  # every retry fails until the attempt cap
        moto_stack.make_due("a1")
        pipeline.retry()
        pipeline.settle()
    assert moto_stack.status("a1") is Status.ABANDONED
    moto_stack.restore_topic()
    moto_stack.make_due("a2")
    pipeline.retry()
    pipeline.settle()
    if next_goes:
        assert received_by_group(moto_stack) == {"A": ["body of a2"]}
    else:
        assert moto_stack.status("a2") is Status.WAITING
        assert "is ABANDONED" in moto_stack.item("a2")[Field.STATUS_REASON]["S"]
        assert received_by_group(moto_stack) == {}


def _as_if_lost_after_its_publish_right(stack, key: str, doubt_began: float) -> None:
    """The execution took its publish right (maybe published) and was lost; its lease ended."""
    stack.clients["dynamodb"].update_item(
        TableName=stack.table,
        Key=stack.key(key),
        UpdateExpression=(
            "SET #status = :pending, ambiguousSince = :since, publishRightAt = :since, dueShard = :shard, "
            "dueAt = :due "
            "REMOVE messageId, publishRight"
        ),
        ExpressionAttributeNames={"#status": Field.STATUS},
        ExpressionAttributeValues={
            ":pending": {"S": Status.PENDING},
            ":since": {"S": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(doubt_began))},
            ":shard": {"S": stack.plan_claim(key).shard},
            ":due": {"N": "1"},
        },
    )


@fifo
def test_a_lost_execution_is_published_again_only_inside_the_deduplication_window(moto_stack, pipeline):
    pipeline.insert(fifo_item("soon", "A", 1), fifo_item("late", "B", 1))
    pipeline.settle(feed_modifies=False)
    _as_if_lost_after_its_publish_right(moto_stack, "soon", time.time() - dedup.TAKEOVER_AFTER_SECONDS)
    _as_if_lost_after_its_publish_right(moto_stack, "late", time.time() - dedup.REPUBLISH_WITHIN_SECONDS)

    report = pipeline.retry()
    pipeline.settle(feed_modifies=False)
    assert (report["started"], report["abandoned"]) == (1, 1)
    assert moto_stack.status("soon") is Status.SUCCESSFUL
    bodies = sorted(m["Body"] for m in moto_stack.received_messages())
    assert bodies == ["body of late", "body of soon"], "the copy is dropped: the same deduplication id within 5 minutes"
    [execution] = [
        e
        for e in moto_stack.clients["stepfunctions"].list_executions(stateMachineArn=moto_stack.state_machine_arn)[
            "executions"
        ]
        if "-a2-" in e["name"]
    ]
    document = json.loads(
        moto_stack.clients["stepfunctions"].describe_execution(executionArn=execution["executionArn"])["input"]
    )
    assert "republishBy" in document, "the state machine checks the deadline again right before it publishes"
    late = moto_stack.item("late")
    assert Status.of(late) is Status.ABANDONED
    assert late[Field.STATUS_REASON]["S"].startswith("a publish of this message may have reached SNS at ")


@fifo
def test_an_item_past_its_short_lease_is_not_taken_over_while_its_execution_may_still_publish(moto_stack, pipeline):
    pipeline.insert(fifo_item("a1", "A", 1), fifo_item("a2", "A", 2))
    pipeline.settle(feed_modifies=False)
    _as_if_lost_after_its_publish_right(moto_stack, "a1", time.time() - 30)
    before = moto_stack.item("a1")

    report = pipeline.retry()
    assert report["still_publishing"] == 1 and report["started"] == 0
    assert moto_stack.item("a1") == before, "neither claimed again nor ABANDONED, so a2 cannot overtake it"


def _claimed_and_lost_before_its_publish_right(stack, key: str) -> None:
    """Claimed (its right granted, not taken yet) and its lease past: an execution may yet begin."""
    token = stack.item(key)[Field.CLAIM_TOKEN]["S"]
    stack.clients["dynamodb"].update_item(
        TableName=stack.table,
        Key=stack.key(key),
        UpdateExpression="SET #status = :pending, publishRight = :token, dueShard = :shard, dueAt = :due "
        "REMOVE messageId, publishRightAt, ambiguousSince",
        ExpressionAttributeNames={"#status": Field.STATUS},
        ExpressionAttributeValues={
            ":pending": {"S": Status.PENDING},
            ":token": {"S": token},
            ":shard": {"S": stack.plan_claim(key).shard},
            ":due": {"N": "1"},
        },
    )


@pytest.mark.parametrize(("moto_stack", "attempts_left"), [("fifo", True), ("fifo", False)], indirect=["moto_stack"])
def test_a_publish_right_taken_between_the_takeover_check_and_the_claim_keeps_the_item_its_executions(
    moto_stack, pipeline, monkeypatch, attempts_left
):
    # Given a FIFO head past its lease whose execution has not taken its publish right
    pipeline.insert(fifo_item("a1", "A", 1), fifo_item("a2", "A", 2))
    pipeline.settle(feed_modifies=False)
    _claimed_and_lost_before_its_publish_right(moto_stack, "a1")
    if not attempts_left:  # at the attempt cap the takeover would end it ABANDONED
        moto_stack.clients["dynamodb"].update_item(
            TableName=moto_stack.table,
            Key=moto_stack.key("a1"),
            UpdateExpression="SET attempt = :cap",
            ExpressionAttributeValues={":cap": {"N": str(moto_stack.max_attempts)}},
        )
    store = retry.dependencies().store
    read = store.read

    def read_then_the_execution_takes_its_right(key):
        item = read(key)
        if key == moto_stack.key("a1"):
            # When the execution takes its right right after the retry job read the item
            moto_stack.clients["dynamodb"].update_item(
                TableName=moto_stack.table,
                Key=key,
                UpdateExpression="SET publishRightAt = :now, ambiguousSince = :now REMOVE publishRight",
                ExpressionAttributeValues={":now": {"S": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}},
            )
        return item

    monkeypatch.setattr(store, "read", read_then_the_execution_takes_its_right)
    executions = len(
        moto_stack.clients["stepfunctions"].list_executions(stateMachineArn=moto_stack.state_machine_arn)["executions"]
    )
    report = pipeline.retry()

    # Then the takeover loses the race: neither restarted nor ABANDONED, so a2 cannot overtake it
    assert (report["lost_races"], report["started"], report["abandoned"]) == (1, 0, 0)
    item = moto_stack.item("a1")
    assert Status.of(item) is Status.PENDING and Field.PUBLISH_RIGHT_AT in item
    assert (
        len(
            moto_stack.clients["stepfunctions"].list_executions(stateMachineArn=moto_stack.state_machine_arn)[
                "executions"
            ]
        )
        == executions
    )
