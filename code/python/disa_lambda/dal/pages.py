"""Paginated reads (Query, Scan): every page's items, with errors in Disa's terms."""

from __future__ import annotations

from typing import Any, Callable, Iterator

from botocore.exceptions import ClientError

from disa_lambda.models.exceptions import StoreUnavailable


def pages(
    call: Callable[..., dict[str, Any]], request: dict[str, Any], what: str
) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any] | None]]:
    """Each page's items with the key the next page starts after (None after the last)."""
    request = dict(request)
    while True:
        try:
            page = call(**request)
        except ClientError as error:
            raise StoreUnavailable(f"{what} failed: {error}") from error
        next_key = page.get("LastEvaluatedKey")
        yield page.get("Items", []), next_key
        if next_key is None:
            return
        request["ExclusiveStartKey"] = next_key
