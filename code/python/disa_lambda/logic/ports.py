"""What the logic needs from the outside world, as protocols the data-access classes meet
(and tests can stand in for), and the share of an invocation each job leaves unused."""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Protocol

from disa_lambda.models.claim import Claim, RightAsRead
from disa_lambda.models.group import GroupPosition
from disa_lambda.models.pointer import ObjectRef
from disa_lambda.models.status import Status

# Stop taking items when less than this is left of the invocation, so every item begun
# can finish: one item is at most three AWS calls (claim, start, deferral), each at most
# dal/clients.py's worst_call_seconds() (23 s) with retries and timeouts included
# (tests/templates/test_contracts.py checks both this and the functions' timeouts).
TIME_RESERVE_MS = 70_000
WORST_CALL_SECONDS = 23  # dal/clients.py worst_call_seconds(), which the contract test compares
# Storing a large body in S3 is begun only with this much left after the claim: the stored
# body's HeadObject, the source's ranged GetObject and its CopyObject (dal/clients.py
# worst_copy_seconds(), 63 s), then the start and a deferral or rejection. With less, the
# attempt is set back (not counted) for the retry job, whose runs are longer.
STAGING_RESERVE_MS = 160_000
# The publisher's TimeoutSeconds (state-machine/publisher.asl.json): an execution started
# later than this before its claim's lease ends could outlive the lease, so none is.
EXECUTION_TIMEOUT_SECONDS = 240


class StoredBody(Protocol):
    size: int
    written_at: float


class SourceBody(Protocol):
    size: int
    etag: str


class PayloadStore(Protocol):
    """The payload bucket, and the objects items reference (dal/payloads.py)."""

    bucket: str

    def stored(self, key: str) -> StoredBody | None: ...
    def put(self, key: str, body: bytes) -> None: ...
    def restamp(self, key: str) -> None: ...
    def size_of(self, source: ObjectRef) -> SourceBody: ...
    def copy_in(self, source: ObjectRef, etag: str, key: str) -> None: ...


class Starter(Protocol):
    def start(self, name: str, document: Mapping[str, Any]) -> str: ...


class DeferringStore(Protocol):
    def defer_start(
        self, key: Mapping[str, Any], claim: Claim, reason: str, now_epoch: int, now_iso: str, counted: bool = False
    ) -> bool: ...


class FinishingStore(DeferringStore, Protocol):
    def finish_unclaimable(
        self,
        key: Mapping[str, Any],
        observed_status: str,
        observed_token: str,
        status: Status,
        reason: str,
        now_iso: str,
        expires_at: int | None = None,
        right: RightAsRead | None = None,
    ) -> bool: ...


class IntakeStore(FinishingStore, Protocol):
    def claim_new(self, key: Mapping[str, Any], claim: Claim, now_iso: str) -> bool: ...
    def reject(
        self,
        key: Mapping[str, Any],
        reason: str,
        now_iso: str,
        inserted_token: Any = None,
        expires_at: int | None = None,
    ) -> bool: ...


class SweepStore(IntakeStore, Protocol):
    def mark_swept(self, key: Mapping[str, Any], now_epoch: int) -> bool: ...


class DueStore(FinishingStore, Protocol):
    def read(self, key: Mapping[str, Any]) -> dict[str, Any] | None: ...
    def claim_due(
        self,
        key: Mapping[str, Any],
        observed_status: str,
        observed_token: str,
        claim: Claim,
        now_iso: str,
        right: RightAsRead | None = None,
    ) -> dict[str, Any] | None: ...


class DueIndexReader(Protocol):
    def due_pages(self, shard: str, now_epoch: int, page_size: int) -> Iterator[list[dict[str, Any]]]: ...


class BacklogReader(Protocol):
    """The retry job's gauges (logic/gauges.py, dal/backlog.py)."""

    def in_flight(self, pages_per_shard: int) -> Any: ...

    def abandoned_waiting(self, pages_per_shard: int) -> Any: ...

    def accepted_at(self, keys: Any) -> list[str]: ...


class ShardLeases(Protocol):
    def take_shard(self, shard: str, owner: str, now_epoch: int, until_epoch: int) -> bool: ...
    def release_shard(self, shard: str, owner: str) -> None: ...


class UnstatusedScanner(Protocol):
    def pages(
        self, segment: int, total_segments: int, start_key: dict[str, Any] | None
    ) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any] | None]]: ...


class SweepCursors(Protocol):
    def sweep_cursor(self, segment: int, total_segments: int) -> dict[str, Any] | None: ...
    def save_sweep_cursor(
        self, segment: int, total_segments: int, cursor: dict[str, Any] | None, now_epoch: int
    ) -> None: ...


class GroupLedgerPort(Protocol):
    """FIFO message groups: who holds each sequence number, and whose turn it is (dal/groups.py)."""

    def take_slot(self, position: GroupPosition, key: Mapping[str, Any]) -> bool: ...
    def holder(self, group: str, sequence: int) -> dict[str, Any] | None: ...
    def next_sequence(self, group: str) -> int: ...
    def advance(self, group: str, past: int) -> bool: ...


class OrderingStore(DueStore, Protocol):
    def wait(self, key: Mapping[str, Any], claim: Claim, reason: str, now_iso: str) -> bool: ...
    def keep_waiting(self, key: Mapping[str, Any], token: str, due_epoch: int, reason: str, now_iso: str) -> bool: ...
