"""A claim: what one publishing attempt holds on an item while it runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    """``token`` is written on the item and every later status write is conditional on it;
    ``lease_until`` (epoch seconds) is when the retry job may claim the item again;
    ``shard`` is the item's due-index shard; ``retry_at`` and ``abandon_on_failure`` tell
    the execution what a failure leads to."""

    token: str
    attempt: int
    lease_until: int
    shard: str
    retry_at: int
    abandon_on_failure: bool


@dataclass(frozen=True)
class RightAsRead:
    """FIFO takeover: the item's ``publishRightAt`` as the retry job read it when it decided
    that no execution can publish any more (None: no execution had taken its right). A claim
    made on it fails if an execution takes its right in between (logic/retries.py)."""

    taken_at: str | None
