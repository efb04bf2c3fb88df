"""Reads the sparse due index: the only query Disa makes, and only the retry job makes it."""

from __future__ import annotations

from typing import Any, Iterator

from disa_lambda.dal import clients, pages
from disa_lambda.models.status import DUE_INDEX_NAME, Field


class DueIndex:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._client = client or clients.client("dynamodb")

    def due_pages(self, shard: str, now_epoch: int, page_size: int) -> Iterator[list[dict[str, Any]]]:
        """Items in one shard whose ``dueAt`` has passed, oldest first, a page at a time.

        Each carries its key and the projected status, attempt and claimToken."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": DUE_INDEX_NAME,
            "KeyConditionExpression": "#shard = :shard AND #due <= :now",
            "ExpressionAttributeNames": {"#shard": Field.DUE_SHARD, "#due": Field.DUE_AT},
            "ExpressionAttributeValues": {":shard": {"S": shard}, ":now": {"N": str(now_epoch)}},
            "Limit": page_size,
        }
        return (items for items, _ in pages.pages(self._client.query, request, f"query of {DUE_INDEX_NAME}"))
