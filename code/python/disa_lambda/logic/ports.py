"""What the logic needs from the outside world, as protocols the data-access classes meet
(and tests can stand in for), and the share of an invocation each job leaves unused."""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Protocol

from disa_lambda.models.claim import Claim
from disa_lambda.models.status import Status

# Stop taking items when less than this is left of the invocation, so no claim is made
# that the function could not follow with its StartExecution.
TIME_RESERVE_MS = 10_000


class Starter(Protocol):
    def start(self, name: str, document: Mapping[str, Any]) -> str: ...


class IntakeStore(Protocol):
    def claim_new(self, key: Mapping[str, Any], claim: Claim, now_iso: str) -> bool: ...
    def reject(self, key: Mapping[str, Any], reason: str, now_iso: str, inserted_token: Any = None) -> bool: ...


class SweepStore(IntakeStore, Protocol):
    def mark_swept(self, key: Mapping[str, Any], now_epoch: int) -> bool: ...


class DueStore(Protocol):
    def claim_due(
        self, key: Mapping[str, Any], observed_status: str, observed_token: str, claim: Claim, now_iso: str
    ) -> dict[str, Any] | None: ...
    def finish_unclaimable(
        self,
        key: Mapping[str, Any],
        observed_status: str,
        observed_token: str,
        status: Status,
        reason: str,
        now_iso: str,
    ) -> bool: ...


class DueIndexReader(Protocol):
    def due_items(self, shard: str, now_epoch: int, page_size: int) -> Iterator[dict[str, Any]]: ...


class UnstatusedScanner(Protocol):
    def segment(self, segment: int, total_segments: int, page_size: int) -> Iterator[dict[str, Any]]: ...
