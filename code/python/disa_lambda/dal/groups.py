"""The group ledger (``<prefix>-groups``): for each FIFO message group, which item holds each
sequence number, and the next sequence the group may publish. Every read is strongly
consistent and every write conditional, because publishing in order rests on it.

Rows: (``group``, ``position`` 0) is the group's cursor, ``next`` the sequence whose turn it
is; (``group``, ``position`` n) is slot n, ``item`` the key of the item that took it."""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from botocore.exceptions import ClientError

from disa_lambda.dal import clients
from disa_lambda.models.exceptions import StoreUnavailable
from disa_lambda.models.group import FIRST_SEQUENCE, GroupPosition

CURSOR_POSITION = 0


class GroupLedger:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._client = client or clients.client("dynamodb")

    def take_slot(self, position: GroupPosition, key: Mapping[str, Any]) -> bool:
        """Record ``key`` as the holder of its sequence number. True if the slot is this
        item's (now, or already: a redelivered record); False if another item holds it."""
        return self._conditionally(
            lambda: self._client.put_item(
                TableName=self._table,
                Item={
                    **self._row(position.group, position.sequence),
                    "item": {"M": dict(key)},
                    "holder": {"S": _canonical(key)},
                },
                # Compared as canonical JSON: the key's attribute order must not matter.
                ConditionExpression="attribute_not_exists(#holder) OR #holder = :holder",
                ExpressionAttributeNames={"#holder": "holder"},
                ExpressionAttributeValues={":holder": {"S": _canonical(key)}},
            ),
            f"taking {position.describe()}",
        )

    def holder(self, group: str, sequence: int) -> dict[str, Any] | None:
        """The key of the item holding a slot, or None while no item took it."""
        row = self._get(group, sequence)
        return None if row is None else row["item"]["M"]

    def next_sequence(self, group: str) -> int:
        """The sequence whose turn it is in ``group``."""
        row = self._get(group, CURSOR_POSITION)
        return FIRST_SEQUENCE if row is None else int(row["next"]["N"])

    def advance(self, group: str, past: int) -> bool:
        """Move the group's turn from ``past`` to the sequence after it. False if the turn
        was not at ``past`` (another caller moved it already)."""
        at_past = self.turn_condition(group, past)
        return self._conditionally(
            lambda: self._client.update_item(
                **{
                    **at_past,
                    "UpdateExpression": "SET #next = :after",
                    "ExpressionAttributeValues": {
                        **at_past["ExpressionAttributeValues"],
                        ":after": {"N": str(past + 1)},
                    },
                }
            ),
            f"moving the turn of message group {group!r}",
        )

    def turn_condition(self, group: str, sequence: int) -> dict[str, Any]:
        """That the group's turn is ``sequence`` (row 0's ``next``, absent until the first
        message moved it), as a condition on that row: for a conditional write, or a
        transaction's ConditionCheck (`disa abandoned requeue`)."""
        condition = "#next = :turn"
        if sequence == FIRST_SEQUENCE:
            condition = f"attribute_not_exists(#next) OR {condition}"
        return {
            "TableName": self._table,
            "Key": self._row(group, CURSOR_POSITION),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#next": "next"},
            "ExpressionAttributeValues": {":turn": {"N": str(sequence)}},
        }

    @staticmethod
    def _conditionally(write: Callable[[], Any], what: str) -> bool:
        """Run a conditional write: False when its condition failed."""
        try:
            write()
        except ClientError as error:
            if clients.error_code(error) == "ConditionalCheckFailedException":
                return False
            raise StoreUnavailable(f"{what} failed: {error}") from error
        return True

    def _get(self, group: str, position: int) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(TableName=self._table, Key=self._row(group, position), ConsistentRead=True)
        except ClientError as error:
            raise StoreUnavailable(f"reading message group {group!r} failed: {error}") from error
        return response.get("Item")

    @staticmethod
    def _row(group: str, position: int) -> dict[str, Any]:
        return {"group": {"S": group}, "position": {"N": str(position)}}


def _canonical(key: Mapping[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
