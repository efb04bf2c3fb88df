"""Reads the ownership record (models/ownership.py) for the functions of one region.

A strongly consistent read of this region's replica, kept for CACHE_SECONDS so a busy
function reads it about once per CACHE_SECONDS per execution environment, not once per
batch. The price is that a failover takes up to CACHE_SECONDS (plus replication) to reach
every warm environment; `disa failover` waits that long before the new owner starts.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from botocore.exceptions import ClientError

from disa_lambda.dal import clients
from disa_lambda.models.exceptions import StoreUnavailable
from disa_lambda.models.ownership import KEY, OwnershipRecord

CACHE_SECONDS = 5.0


class Ownership:
    """``owns()`` is True in a one-region deployment (no table) and, in two regions, when
    the record names ``region``."""

    def __init__(
        self,
        table_name: str,
        region: str,
        primary_region: str,
        client: Any | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table_name
        self.region = region
        self._primary = primary_region
        self._client = client if client is not None or not table_name else clients.client("dynamodb")
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, OwnershipRecord] | None = None

    @property
    def two_regions(self) -> bool:
        return bool(self._table)

    def record(self) -> OwnershipRecord:
        if not self._table:
            return OwnershipRecord(owner=self.region, epoch=0)
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._cached[0] >= CACHE_SECONDS:
                self._cached = (now, self._read())
            return self._cached[1]

    def owns(self) -> bool:
        return self.record().owner == self.region

    def _read(self) -> OwnershipRecord:
        try:
            item = self._client.get_item(TableName=self._table, Key=KEY, ConsistentRead=True).get("Item")
        except ClientError as error:
            # Not knowing who owns is not a reason to act: the caller fails its batch, which
            # comes back, rather than publish what the owner may be publishing too.
            raise StoreUnavailable(f"reading the ownership record of {self._table} failed: {error}") from error
        return OwnershipRecord.from_item(item, self._primary)
