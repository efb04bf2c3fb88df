"""The retry job's own small table (``<prefix>-jobs``): which run holds which due-index
shard, and where the sweep stopped in each table segment. Nothing here is item data; losing
it costs only a repeated page or a skipped turn."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from disa_lambda.dal import clients
from disa_lambda.models.exceptions import StoreUnavailable

_KEY = "job"


class JobState:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._client = client or clients.client("dynamodb")

    # -- shard leases: overlapping retry runs take different shards -----------------------
    def take_shard(self, shard: str, owner: str, now_epoch: int, until_epoch: int) -> bool:
        """Hold a due-index shard until ``until_epoch`` unless another run holds it now."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item={_KEY: {"S": f"retry-shard#{shard}"}, "owner": {"S": owner}, "until": {"N": str(until_epoch)}},
                ConditionExpression="attribute_not_exists(#until) OR #until < :now OR #owner = :owner",
                ExpressionAttributeNames={"#until": "until", "#owner": "owner"},
                ExpressionAttributeValues={":now": {"N": str(now_epoch)}, ":owner": {"S": owner}},
            )
        except ClientError as error:
            if clients.error_code(error) == "ConditionalCheckFailedException":
                return False
            raise StoreUnavailable(f"taking retry shard {shard} failed: {error}") from error
        return True

    def release_shard(self, shard: str, owner: str) -> None:
        try:
            self._client.delete_item(
                TableName=self._table,
                Key={_KEY: {"S": f"retry-shard#{shard}"}},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as error:
            if clients.error_code(error) != "ConditionalCheckFailedException":
                raise StoreUnavailable(f"releasing retry shard {shard} failed: {error}") from error

    # -- sweep cursors: each segment resumes where the last visit stopped ---------------------
    def sweep_cursor(self, segment: int, total_segments: int) -> dict[str, Any] | None:
        """The ExclusiveStartKey to resume the segment at, or None to start at its top."""
        try:
            item = self._client.get_item(
                TableName=self._table, Key={_KEY: {"S": _segment_key(segment, total_segments)}}, ConsistentRead=True
            ).get("Item", {})
        except ClientError as error:
            raise StoreUnavailable(f"reading sweep cursor {segment} failed: {error}") from error
        cursor = item.get("cursor", {}).get("S")
        return json.loads(cursor) if cursor else None

    def save_sweep_cursor(
        self, segment: int, total_segments: int, cursor: dict[str, Any] | None, now_epoch: int
    ) -> None:
        """Where the next visit starts; None when the segment was swept to its end."""
        item = {_KEY: {"S": _segment_key(segment, total_segments)}, "savedAt": {"N": str(now_epoch)}}
        if cursor is not None:
            item["cursor"] = {"S": json.dumps(cursor, sort_keys=True)}
        try:
            self._client.put_item(TableName=self._table, Item=item)
        except ClientError as error:
            raise StoreUnavailable(f"saving sweep cursor {segment} failed: {error}") from error


def _segment_key(segment: int, total_segments: int) -> str:
    # The segment count is part of the key: segments of a different count are different ranges.
    return f"sweep-segment#{segment}/{total_segments}"
