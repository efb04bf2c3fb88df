"""`disa abandoned list|requeue|dismiss`: the ABANDONED items that wait for a person (the
attention index), and the two ways a person lets one go: publish it again, or dismiss it.
The abandoned alarm stays in ALARM until none waits (cft/nested-stacks/alarms.yaml)."""

from __future__ import annotations

import heapq
import random
import time
from typing import Any, Iterator

from botocore.exceptions import ClientError
from disa_lambda.logic import clock
from disa_lambda.models.status import ATTENTION_INDEX_NAME, DUE_INDEX_SHARDS, Field, Status

from disa.common.aws import Clients
from disa.common.errors import UserError
from disa.operate.items import key_value, show_key
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
    has MaxAttempts attempts once more. Standard topics only: on a FIFO topic the item's
    group has moved on (or is held, which `disa group release` decides)."""
    if info.topic_is_fifo:
        raise UserError(
            "requeue would publish out of its group's order on a FIFO topic; insert the message again as a new "
            "item, or let a held group go on with `disa group release GROUP`"
        )
    now = time.time()
    _update(
        clients,
        info,
        key,
        "SET #status = :failed, #attempt = :zero, #due = :now, #shard = if_not_exists(#shard, :shard), "
        "#reason = :reason, #updated = :iso REMOVE #abandoned",
        {
            ":failed": {"S": Status.FAILED},
            ":zero": {"N": "0"},
            ":now": {"N": str(int(now))},
            # An item abandoned before the attention index existed has no shard left.
            ":shard": {"S": str(random.randrange(DUE_INDEX_SHARDS))},
            ":reason": {"S": f"requeued by a person at {clock.iso(now)}; the retry job publishes it again"},
            ":iso": {"S": clock.iso(now)},
        },
        ("#status", "#attempt", "#due", "#shard", "#reason", "#updated", "#abandoned"),
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


def key_of(info: StackInfo, given: str) -> dict[str, Any]:
    return {info.key_name: key_value(info.key_type, given)}


_NAMES = {
    "#status": Field.STATUS,
    "#attempt": Field.ATTEMPT,
    "#due": Field.DUE_AT,
    "#shard": Field.DUE_SHARD,
    "#reason": Field.STATUS_REASON,
    "#updated": Field.UPDATED_AT,
    "#abandoned": Field.ABANDONED_AT,
    "#dismissed": Field.DISMISSED_AT,
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
