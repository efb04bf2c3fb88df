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
from disa_lambda.logic import attempts, clock
from disa_lambda.models.status import ATTENTION_INDEX_NAME, DUE_INDEX_SHARDS, Field, Status

from disa.common.aws import Clients
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
    item before it was abandoned can apply to it. Standard topics only: on a FIFO topic the
    item's group has moved on (or is held, which `disa group release` decides)."""
    if info.topic_is_fifo:
        raise UserError(
            "requeue would publish out of its group's order on a FIFO topic; insert the message again as a new "
            "item (or let a held group go on with `disa group release GROUP`), then `disa abandoned dismiss KEY`"
        )
    now = time.time()
    _update(
        clients,
        info,
        key,
        "SET #status = :failed, #attempt = :zero, #due = :now, #shard = :shard, #token = :token, "
        "#reason = :reason, #updated = :iso REMOVE #abandoned",
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
        ("#status", "#attempt", "#due", "#shard", "#token", "#reason", "#updated", "#abandoned"),
    )


def dismiss(clients: Clients, info: StackInfo, key: dict[str, Any]) -> None:
    """Stays ABANDONED (never published), out of the attention index, marked dismissed; a
    finished item from now on, which expires like the others when the stack sets a retention."""
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
}


def _update(
    clients: Clients, info: StackInfo, key: dict[str, Any], update: str, values: dict[str, Any], names: tuple[str, ...]
) -> None:
    try:
        clients("dynamodb").update_item(
            TableName=info.table,
            Key=key,
            UpdateExpression=update,
            ConditionExpression=(
                "attribute_exists(#key) AND #status = :abandonedStatus AND attribute_not_exists(#dismissed)"
            ),
            ExpressionAttributeNames={
                "#key": info.key_name,
                **{n: _NAMES[n] for n in {*names, "#status", "#dismissed"}},
            },
            ExpressionAttributeValues={**values, ":abandonedStatus": {"S": Status.ABANDONED}},
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
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
