"""Paginated reads (Query, Scan): every page's items, with errors in Disa's terms."""

from __future__ import annotations

from typing import Any, Callable, Iterator

from botocore.exceptions import ClientError

from disa_lambda.models.exceptions import StoreUnavailable


def items(call: Callable[..., dict[str, Any]], request: dict[str, Any], what: str) -> Iterator[dict[str, Any]]:
    request = dict(request)
    while True:
        try:
            page = call(**request)
        except ClientError as error:
            raise StoreUnavailable(f"{what} failed: {error}") from error
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
