"""Reads the two sparse indexes for the retry job's gauges: what is in flight (the due index)
and which ABANDONED items wait for a person (the attention index).

Each shard is read up to a page budget, so a backlog of millions costs a bounded read per run;
a reading that stopped at the budget says so (``complete`` False) and is a lower bound."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

from botocore.exceptions import ClientError

from disa_lambda.dal import clients
from disa_lambda.models.exceptions import StoreUnavailable
from disa_lambda.models.status import ATTENTION_INDEX_NAME, DUE_INDEX_NAME, DUE_INDEX_SHARDS, Field, Status

BATCH_GET_LIMIT = 100  # DynamoDB's BatchGetItem maximum


@dataclass(frozen=True)
class Reading:
    items: list[dict[str, Any]]
    count: int
    complete: bool


class Backlog:
    def __init__(self, table_name: str, key_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._key_name = key_name
        self._client = client or clients.client("dynamodb")

    def in_flight(self, pages_per_shard: int) -> Reading:
        """Every due-index entry (key, status, attempt, dueAt), a bounded number of pages per shard."""
        return self._read(
            DUE_INDEX_NAME,
            pages_per_shard,
            ProjectionExpression="#k, #status, #attempt, #due",
            ExpressionAttributeNames={
                "#k": self._key_name,
                "#status": Field.STATUS,
                "#attempt": Field.ATTEMPT,
                "#due": Field.DUE_AT,
            },
        )

    def abandoned_waiting(self, pages_per_shard: int) -> Reading:
        """How many ABANDONED items wait for a person (Select COUNT: no attribute is returned).
        The filter costs nothing more (a Query is billed on what it reads) and keeps out an
        entry whose status someone else changed, which no requeue or dismiss could clear."""
        return self._read(
            ATTENTION_INDEX_NAME,
            pages_per_shard,
            Select="COUNT",
            FilterExpression="#status = :abandoned",
            ExpressionAttributeNames={"#status": Field.STATUS},
            ExpressionAttributeValues={":abandoned": {"S": Status.ABANDONED.value}},
        )

    def accepted_at(self, keys: Sequence[Mapping[str, Any]]) -> list[str]:
        """acceptedAt of up to 100 of the given items (those still there); keys DynamoDB
        leaves unprocessed are asked once more, then left out (the reading is a sample)."""
        wanted = [dict(key) for key in keys[:BATCH_GET_LIMIT]]
        found: list[str] = []
        for _ in range(2):
            if not wanted:
                break
            try:
                response = self._client.batch_get_item(
                    RequestItems={self._table: {"Keys": wanted, "ProjectionExpression": Field.ACCEPTED_AT}}
                )
            except ClientError as error:
                raise StoreUnavailable(f"batch read of {len(wanted)} items failed: {error}") from error
            found += [i[Field.ACCEPTED_AT]["S"] for i in response["Responses"].get(self._table, []) if i]
            wanted = response.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys", [])
        return found

    def _read(self, index: str, pages_per_shard: int, **query: Any) -> Reading:
        items: list[dict[str, Any]] = []
        count, complete = 0, True
        for shard in range(DUE_INDEX_SHARDS):
            for read, page in enumerate(self._shard_pages(index, shard, query)):
                items += page.get("Items", [])
                count += page.get("Count", 0)
                if "LastEvaluatedKey" in page and read + 1 >= pages_per_shard:
                    complete = False
                    break
        return Reading(items, count, complete)

    def _shard_pages(self, index: str, shard: int, query: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            **query,
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": "#shard = :shard",
            "ExpressionAttributeNames": {**query.get("ExpressionAttributeNames", {}), "#shard": Field.DUE_SHARD},
            "ExpressionAttributeValues": {**query.get("ExpressionAttributeValues", {}), ":shard": {"S": str(shard)}},
        }
        while True:
            try:
                page = self._client.query(**request)
            except ClientError as error:
                raise StoreUnavailable(f"query of {index} shard {shard} failed: {error}") from error
            yield page
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
