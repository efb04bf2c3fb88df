"""Scans for items without a status: the only Scan Disa makes, a segment per retry run."""

from __future__ import annotations

from typing import Any, Iterator

import boto3

from disa_lambda.dal import pages
from disa_lambda.models.status import Field


class UnstatusedItems:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._client = client or boto3.client("dynamodb")

    def segment(self, segment: int, total_segments: int, page_size: int) -> Iterator[dict[str, Any]]:
        """Whole items of one parallel-scan segment that carry no status, page by page."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "Segment": segment,
            "TotalSegments": total_segments,
            "FilterExpression": "attribute_not_exists(#status)",
            "ExpressionAttributeNames": {"#status": Field.STATUS},
            "Limit": page_size,
        }
        return pages.items(self._client.scan, request, f"scan of segment {segment}/{total_segments}")
