"""Scans for items without a status: the only Scan Disa makes, part of a segment per retry run."""

from __future__ import annotations

from typing import Any, Iterator

from disa_lambda.dal import clients, pages
from disa_lambda.models.status import Field


class UnstatusedItems:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._client = client or clients.client("dynamodb")

    def pages(
        self, segment: int, total_segments: int, start_key: dict[str, Any] | None
    ) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any] | None]]:
        """Whole items of one parallel-scan segment that carry no status, from ``start_key``
        on, a page at a time with the key the next page starts after. No Limit: each page
        reads DynamoDB's maximum of 1 MB, the fewest requests for a pass."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "Segment": segment,
            "TotalSegments": total_segments,
            "FilterExpression": "attribute_not_exists(#status)",
            "ExpressionAttributeNames": {"#status": Field.STATUS},
        }
        if start_key is not None:
            request["ExclusiveStartKey"] = start_key
        return pages.pages(self._client.scan, request, f"scan of segment {segment}/{total_segments}")
