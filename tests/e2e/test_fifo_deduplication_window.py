"""The publisher's deduplication-window check on a real engine (moto's Step Functions cannot
parse $$.State.EnteredTime as a timestamp, so it never takes the branch; docs/engine-
differences.md). An execution whose earlier publish may have reached SNS publishes again only
before ``republishBy``; after it, it takes its publish right and stops, and the retry job
ends the item ABANDONED (tests/handlers/test_fifo_order.py)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from disa_lambda.logic import clock
from disa_lambda.models.status import Field, Status

from disa.common.aws_helpers import wait_until

pytestmark = pytest.mark.e2e


def _claimed(local_stack, key: str) -> str:
    """An item published once, then claimed again (PENDING, a fresh token and its publish
    right), as the retry job claims a FIFO item whose earlier attempt is in doubt."""
    local_stack.put(key, message={"S": f"window {key}"})
    local_stack.wait_status(key, Status.SUCCESSFUL)
    local_stack.received_messages()
    token = uuid.uuid4().hex
    local_stack.clients("dynamodb").update_item(
        TableName=local_stack.info.table,
        Key={"id": {"S": key}},
        UpdateExpression="SET #status = :pending, claimToken = :token, publishRight = :token",
        ExpressionAttributeNames={"#status": Field.STATUS},
        ExpressionAttributeValues={":pending": {"S": Status.PENDING}, ":token": {"S": token}},
    )
    return token


def _start(local_stack, key: str, token: str, republish_by: float) -> None:
    now = time.time()
    document = {
        "key": {"id": {"S": key}},
        "claimToken": token,
        "attempt": 2,
        "publish": {
            "Message": f"window {key}",
            "MessageAttributes": {"disa.insertId": {"DataType": "String", "StringValue": key}},
            "MessageGroupId": "g",
            "MessageDeduplicationId": key,
        },
        "onFailure": {"abandon": False, "retryAt": str(int(now) + 600)},
        "publishLeaseUntil": str(int(now) + 60),
        "republishBy": clock.iso(republish_by),
    }
    sfn = local_stack.clients("stepfunctions")
    [arn] = [
        machine["stateMachineArn"]
        for machine in sfn.list_state_machines()["stateMachines"]
        if machine["name"] == f"{local_stack.info.name_prefix}-publisher"
    ]
    sfn.start_execution(stateMachineArn=arn, name=f"window-{key}", input=json.dumps(document))


def test_an_execution_past_its_republish_deadline_takes_its_right_and_publishes_nothing(local_stack):
    late, in_time = f"late-{uuid.uuid4().hex[:6]}", f"in-time-{uuid.uuid4().hex[:6]}"
    _start(local_stack, late, _claimed(local_stack, late), republish_by=time.time() - 1)
    _start(local_stack, in_time, _claimed(local_stack, in_time), republish_by=time.time() + 3600)

    taken = wait_until(
        lambda: local_stack.item(late), lambda item: Field.PUBLISH_RIGHT not in item, timeout=30, interval=0.3
    )
    assert Field.PUBLISH_RIGHT_AT in taken and taken[Field.AMBIGUOUS_SINCE] == taken[Field.PUBLISH_RIGHT_AT]
    # Inside its deadline the other execution goes on to publish and records an outcome.
    outcome = wait_until(
        lambda: Status.of(local_stack.item(in_time)),
        lambda status: status is not Status.PENDING,
        timeout=30,
        interval=0.3,
    )
    assert outcome in (Status.SUCCESSFUL, Status.FAILED)
    time.sleep(2)
    assert Status.of(local_stack.item(late)) is Status.PENDING, "no outcome: it stopped before publishing"
    assert int(local_stack.item(late)[Field.DUE_AT]["N"]) <= time.time() + 60, "held only for the short lease"
    bodies = [m["Body"] for m in local_stack.received_messages()]
    assert f"window {late}" not in bodies
