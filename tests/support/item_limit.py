"""An item that fills DynamoDB's 400 KB item limit, so that no status attribute fits beside
it: the one record Disa's trigger cannot write. Engines count item size differently (moto
stops about 4.6 KB short of AWS), so the size is found on the engine itself, on a scratch
table, rather than assumed."""

from __future__ import annotations

import uuid
from typing import Any

MESSAGE = "message"


def full_item(ddb: Any, key: dict[str, Any]) -> dict[str, Any]:
    """``key`` plus the longest ``message`` the engine accepts in one item."""
    [(key_name, key_value)] = key.items()
    [key_type] = key_value.keys()
    scratch = f"item-limit-probe-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=scratch,
        AttributeDefinitions=[{"AttributeName": key_name, "AttributeType": key_type}],
        KeySchema=[{"AttributeName": key_name, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    try:
        fits, too_long = 300_000, 410_000  # a binary search between a size that fits and one that cannot
        while too_long - fits > 1:
            middle = (fits + too_long) // 2
            try:
                ddb.put_item(TableName=scratch, Item={**key, MESSAGE: {"S": "x" * middle}})
                fits = middle
            except ddb.exceptions.ClientError as error:
                if error.response["Error"]["Code"] != "ValidationException":
                    raise
                too_long = middle
    finally:
        ddb.delete_table(TableName=scratch)
    return {**key, MESSAGE: {"S": "x" * fits}}
