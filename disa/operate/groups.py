"""`disa group show|release GROUP`: a FIFO message group's turn, and letting a group held by
an ABANDONED item (FifoAbandonedItems=hold) go on, once a person has looked at it."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from disa_lambda.dal.groups import GroupLedger
from disa_lambda.models.status import NO_STATUS, Field, Status

from disa.common.aws import Clients
from disa.common.aws_helpers import get_item
from disa.common.errors import UserError
from disa.operate.items import show_key
from disa.operate.stack import StackInfo


def _ledger(clients: Clients, info: StackInfo) -> GroupLedger:
    if not info.topic_is_fifo:
        raise UserError(f"stack {info.name} publishes to a standard topic: it has no message groups")
    return GroupLedger(info.groups_table, clients("dynamodb"))


def show(clients: Clients, info: StackInfo, group: str) -> dict[str, Any]:
    """Whose turn it is in ``group``, and that item's status and reason."""
    ledger = _ledger(clients, info)
    turn = ledger.next_sequence(group)
    holder = ledger.holder(group, turn)
    item = get_item(clients("dynamodb"), info.table, holder) if holder else {}
    return {
        "group": group,
        "turn": turn,
        "key": show_key(holder[info.key_name]) if holder else "-",
        "status": str(Status.of(item) or NO_STATUS) if holder else "not inserted yet",
        "reason": item.get(Field.STATUS_REASON, {}).get("S", ""),
    }


def release(clients: Clients, info: StackInfo, group: str) -> str:
    """Pass the turn of a group held by an ABANDONED item, and make its next item due now so
    that the next retry run claims it. Refuses anything else: a turn held by an item still
    being published, or one waiting for a sequence number not inserted, is not a person's to
    skip."""
    ledger = _ledger(clients, info)
    turn = ledger.next_sequence(group)
    holder = ledger.holder(group, turn)
    if holder is None:
        raise UserError(f"message group {group!r} waits for sequence {turn}, which no item holds: insert it")
    status = Status.of(get_item(clients("dynamodb"), info.table, holder))
    if status is not Status.ABANDONED:
        raise UserError(
            f"sequence {turn} of message group {group!r} is {status or NO_STATUS}, not ABANDONED: "
            "only a group held by an ABANDONED item can be released"
        )
    ledger.advance(group, turn)
    successor = ledger.holder(group, turn + 1)
    if successor is not None:
        _due_now(clients, info, successor)
    return (
        f"message group {group!r} released past sequence {turn} (item {show_key(holder[info.key_name])}, ABANDONED); "
        f"its next item is claimed by the next retry run (`disa retry` runs it now)"
    )


def _due_now(clients: Clients, info: StackInfo, key: dict[str, Any]) -> None:
    ddb = clients("dynamodb")
    # Not WAITING (yet, or any more): its own intake, or the stream, takes it on.
    with contextlib.suppress(ddb.exceptions.ConditionalCheckFailedException):
        ddb.update_item(
            TableName=info.table,
            Key=key,
            UpdateExpression="SET #due = :now",
            ConditionExpression="#status = :waiting",
            ExpressionAttributeNames={"#due": Field.DUE_AT, "#status": Field.STATUS},
            ExpressionAttributeValues={":now": {"N": str(int(time.time()))}, ":waiting": {"S": Status.WAITING}},
        )
