"""`disa abandoned list|requeue|dismiss`: the ABANDONED items that wait for a person (the
attention index), and the two ways a person lets one go: publish it again, or dismiss it.
The abandoned alarm stays in ALARM until none waits (cft/nested-stacks/alarms.yaml)."""

from __future__ import annotations

import contextlib
import heapq
import time
import uuid
from typing import Any, Iterator

from botocore.exceptions import ClientError
from disa_lambda.dal.groups import GroupLedger
from disa_lambda.dal.payloads import PayloadBucket
from disa_lambda.logic import attempts, clock, payloads
from disa_lambda.models.exceptions import (
    ItemUnpublishable,
    PayloadObjectForbidden,
    PayloadObjectMissing,
    PayloadUnavailable,
)
from disa_lambda.models.group import AbandonedInGroup, GroupPosition, position_of
from disa_lambda.models.pointer import ObjectRef
from disa_lambda.models.status import ATTENTION_INDEX_NAME, DUE_INDEX_SHARDS, Field, Status

from disa.common.aws import Clients
from disa.common.aws_helpers import get_item
from disa.common.errors import UserError
from disa.operate.items import show_key
from disa.operate.stack import StackInfo


def waiting(clients: Clients, info: StackInfo) -> Iterator[dict[str, Any]]:
    """Every ABANDONED item no one has acted on, newest first (each shard's query is
    ordered by abandonedAt; the shards are merged)."""
    shards = [_shard(clients, info, shard) for shard in range(DUE_INDEX_SHARDS)]
    return heapq.merge(*shards, key=lambda entry: entry[Field.ABANDONED_AT]["S"], reverse=True)


def rows(clients: Clients, info: StackInfo, limit: int) -> list[dict[str, str]]:
    found = []
    for entry in waiting(clients, info):
        if len(found) == limit:
            break
        found.append(
            {
                "key": show_key(entry[info.key_name]),
                "abandoned": entry[Field.ABANDONED_AT]["S"],
                "attempts": entry.get(Field.ATTEMPT, {}).get("N", "-"),
                "reason": entry.get(Field.STATUS_REASON, {}).get("S", ""),
            }
        )
    return found


def requeue(clients: Clients, info: StackInfo, key: dict[str, Any]) -> None:
    """FAILED again with no attempt counted, due now: the next retry run claims it and it
    has MaxAttempts attempts once more. A new claimToken, so that no decision taken on the
    item before it was abandoned can apply to it, and no doubt about an earlier publish (a
    person decided to send it again).

    On a FIFO topic only an item that still holds its group's turn (FifoAbandonedItems=hold)
    is requeued, in a transaction conditional on that turn, so it is published in its place;
    a released group has gone on without it. An item whose body is an S3 object
    (messageObject) is refused when neither that object nor Disa's stored copy is left."""
    item = get_item(clients("dynamodb"), info.table, key)
    turn = _requeueable_turn(clients, info, key, item) if info.topic_is_fifo else None
    _check_body_left(clients, info, key, item)
    now = time.time()
    _update(
        clients,
        info,
        key,
        "SET #status = :failed, #attempt = :zero, #due = :now, #shard = :shard, #token = :token, "
        "#reason = :reason, #updated = :iso REMOVE #abandoned, #doubt, #rightAt",
        {
            ":failed": {"S": Status.FAILED},
            ":zero": {"N": "0"},
            ":now": {"N": str(int(now))},
            # The item's own shard (an item abandoned before the attention index has none left).
            ":shard": {"S": attempts.due_shard(key)},
            ":token": {"S": uuid.uuid4().hex},
            ":reason": {"S": f"requeued by a person at {clock.iso(now)}; the retry job publishes it again"},
            ":iso": {"S": clock.iso(now)},
        },
        ("#status", "#attempt", "#due", "#shard", "#token", "#reason", "#updated", "#abandoned", "#doubt", "#rightAt"),
        turn,
    )


def dismiss(clients: Clients, info: StackInfo, key: dict[str, Any]) -> None:
    """Stays ABANDONED (never published), out of the attention index, marked dismissed; a
    finished item from now on, which expires like the others when the stack sets a retention.
    Refused for an item that holds its group's turn (FifoAbandonedItems=hold): the alarm
    would clear while the group waits forever."""
    if info.topic_is_fifo and info.fifo_abandoned_items == AbandonedInGroup.HOLD:
        position = _held_turn(clients, info, key, get_item(clients("dynamodb"), info.table, key))
        if position is not None:
            raise UserError(
                f"item {show_key(key[info.key_name])} holds the turn of message group {position.group!r} "
                f"(FifoAbandonedItems=hold), which would wait forever: run `disa group release {position.group}` "
                "first, then dismiss it (or requeue it to publish it in its place)"
            )
    now = time.time()
    update, values = "SET #dismissed = :iso, #updated = :iso", {":iso": {"S": clock.iso(now)}}
    if info.finished_item_retention_days:
        update += ", #expires = :expires"
        values[":expires"] = {"N": str(int(now) + info.finished_item_retention_days * 86_400)}
    _update(
        clients,
        info,
        key,
        f"{update} REMOVE #abandoned, #shard",
        values,
        ("#dismissed", "#updated", "#abandoned", "#shard", *(("#expires",) if ":expires" in values else ())),
    )


def _held_turn(clients: Clients, info: StackInfo, key: dict[str, Any], item: dict[str, Any]) -> GroupPosition | None:
    """The item's place when it is ABANDONED and its group's turn is its own (so the group
    waits for it), else None. The turn is read as `disa group show` reads it."""
    position = position_of(item)
    if Status.of(item) is not Status.ABANDONED or position is None:
        return None
    ledger = GroupLedger(info.groups_table, clients("dynamodb"))
    if ledger.next_sequence(position.group) != position.sequence:
        return None
    return position if ledger.holder(position.group, position.sequence) == key else None


def _requeueable_turn(
    clients: Clients, info: StackInfo, key: dict[str, Any], item: dict[str, Any]
) -> GroupPosition | None:
    """The turn a FIFO requeue is conditional on; refuses (UserError) where a requeue would
    publish the item out of its group's order. None for an item that is not ABANDONED (the
    update then says so)."""
    if Status.of(item) is not Status.ABANDONED:
        return None
    shown = show_key(key[info.key_name])
    held = _held_turn(clients, info, key, item) if info.fifo_abandoned_items == AbandonedInGroup.HOLD else None
    if held is not None:
        return held
    position = position_of(item)
    group = f"message group {position.group!r}" if position else "its message group"
    why = (
        "was released past it"
        if info.fifo_abandoned_items == AbandonedInGroup.HOLD
        else "went on without it (FifoAbandonedItems=release)"
    )
    raise UserError(
        f"item {shown}: {group} {why}, so a requeue would publish it out of order; insert the message again "
        f"as a new item with the group's next messageSequence (it then comes after the later ones), then "
        f"`disa abandoned dismiss {shown}`"
    )


def _check_body_left(clients: Clients, info: StackInfo, key: dict[str, Any], item: dict[str, Any]) -> None:
    """An item whose body is an S3 object is published from Disa's stored copy or, failing
    that, from the object: refuses (UserError) when neither is left, rather than end the item
    REJECTED with "does not exist; upload the object before inserting"."""
    if Status.of(item) is not Status.ABANDONED:
        return
    body = {name: value for name, value in item.items() if name not in key}
    try:
        named = payloads.named_object(key, body, info.topic_is_fifo)
    except ItemUnpublishable:
        return  # the retry job rejects it with its reason
    if named is None or named.source is None:
        return
    s3 = clients("s3")
    if not _gone(PayloadBucket(info.payload_bucket, info.account, client=s3, copy_client=s3), named.key, named.source):
        return
    shown = show_key(key[info.key_name])
    raise UserError(
        f"item {shown}: its body {named.source} and Disa's copy s3://{info.payload_bucket}/{named.key} are both gone "
        f"(stored bodies expire {info.payload_retention_days} days after their last write, PayloadRetentionDays); "
        f"upload the body to {named.source} again and requeue it, or insert the message anew and "
        f"`disa abandoned dismiss {shown}`"
    )


def _gone(bucket: PayloadBucket, stored_key: str, source: ObjectRef) -> bool:
    """Whether both Disa's stored copy and the object it was taken from are gone. One the
    operator may not read (403, an S3 fault) counts as there: the retry job, with the
    stack's roles, finds out."""
    with contextlib.suppress(PayloadUnavailable):
        if bucket.stored(stored_key) is not None:
            return False
    try:
        bucket.size_of(source)
    except PayloadObjectMissing:
        return True
    except (PayloadObjectForbidden, PayloadUnavailable):
        pass
    return False


def backfill(clients: Clients, info: StackInfo) -> int:
    """Once, after upgrading a stack deployed before the attention index: every ABANDONED item
    no one dismissed gets its abandonedAt (its updatedAt, when it was abandoned) and its
    shard, so that the alarm counts it and `list` shows it. A paginated Scan of the whole
    table (its read cost follows the table's size); safe to run again."""
    done = 0
    for page in (
        clients("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=info.table,
            ProjectionExpression="#key, #updated",
            FilterExpression="#status = :abandonedStatus AND attribute_not_exists(#abandoned) "
            "AND attribute_not_exists(#dismissed)",
            ExpressionAttributeNames={"#key": info.key_name, **{n: _NAMES[n] for n in _BACKFILL_NAMES}},
            ExpressionAttributeValues={":abandonedStatus": {"S": Status.ABANDONED}},
        )
    ):
        for item in page.get("Items", []):
            key = {info.key_name: item[info.key_name]}
            since = item.get(Field.UPDATED_AT, {"S": clock.iso(time.time())})
            with contextlib.suppress(UserError):  # requeued or dismissed meanwhile
                _update(
                    clients,
                    info,
                    key,
                    "SET #abandoned = if_not_exists(#abandoned, :since), #shard = :shard",
                    {":since": since, ":shard": {"S": attempts.due_shard(key)}},
                    ("#abandoned", "#shard"),
                )
                done += 1
    return done


_BACKFILL_NAMES = ("#status", "#updated", "#abandoned", "#dismissed")


_NAMES = {
    "#status": Field.STATUS,
    "#attempt": Field.ATTEMPT,
    "#due": Field.DUE_AT,
    "#shard": Field.DUE_SHARD,
    "#reason": Field.STATUS_REASON,
    "#updated": Field.UPDATED_AT,
    "#abandoned": Field.ABANDONED_AT,
    "#dismissed": Field.DISMISSED_AT,
    "#token": Field.CLAIM_TOKEN,
    "#expires": Field.EXPIRES_AT,
    "#doubt": Field.AMBIGUOUS_SINCE,
    "#rightAt": Field.PUBLISH_RIGHT_AT,
}


def _update(
    clients: Clients,
    info: StackInfo,
    key: dict[str, Any],
    update: str,
    values: dict[str, Any],
    names: tuple[str, ...],
    turn: GroupPosition | None = None,
) -> None:
    """The item's update, conditional on its waiting for a person; with ``turn``, in one
    transaction with a check that its group's turn is still there (`disa group release`
    may move it meanwhile)."""
    write = {
        "TableName": info.table,
        "Key": key,
        "UpdateExpression": update,
        "ConditionExpression": (
            "attribute_exists(#key) AND #status = :abandonedStatus AND attribute_not_exists(#dismissed)"
        ),
        "ExpressionAttributeNames": {
            "#key": info.key_name,
            **{n: _NAMES[n] for n in {*names, "#status", "#dismissed"}},
        },
        "ExpressionAttributeValues": {**values, ":abandonedStatus": {"S": Status.ABANDONED}},
    }
    ddb = clients("dynamodb")
    try:
        if turn is None:
            ddb.update_item(**write)
        else:
            check = GroupLedger(info.groups_table, ddb).turn_condition(turn.group, turn.sequence)
            ddb.transact_write_items(TransactItems=[{"ConditionCheck": check}, {"Update": write}])
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
        if code == "TransactionCanceledException" and reasons[:1] == ["ConditionalCheckFailed"] and turn:
            raise UserError(
                f"the turn of message group {turn.group!r} moved past item {show_key(key[info.key_name])} meanwhile "
                "(`disa group release`?): see `disa group show GROUP`"
            ) from error
        if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
            raise UserError(
                f"item {show_key(key[info.key_name])} is not an ABANDONED item waiting for a person "
                "(see `disa abandoned list`, or `disa show KEY`)"
            ) from error
        raise


def _shard(clients: Clients, info: StackInfo, shard: int) -> Iterator[dict[str, Any]]:
    paginator = clients("dynamodb").get_paginator("query")
    for page in paginator.paginate(
        TableName=info.table,
        IndexName=ATTENTION_INDEX_NAME,
        KeyConditionExpression="#shard = :shard",
        ExpressionAttributeNames={"#shard": Field.DUE_SHARD},
        ExpressionAttributeValues={":shard": {"S": str(shard)}},
        ScanIndexForward=False,
    ):
        yield from page.get("Items", [])
