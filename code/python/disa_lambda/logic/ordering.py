"""FIFO topics: each message group is published in the order of its items' ``messageSequence``
(1, 2, 3, ... with no gaps), one message at a time.

Neither the table nor its stream gives an order across items (DynamoDB Streams orders the
records of one key only, and the trigger takes a batch in on many threads), so the order is
the producer's: the sequence number it writes. The group ledger (dal/groups.py) records which
item holds each number and whose turn it is, with strongly consistent reads and conditional
writes. An item whose turn has not come is WAITING; the item whose turn it is is published,
retried and re-claimed as any other (head of line, as an SQS FIFO queue holds a group while
its first message is in flight). When it becomes final (SUCCESSFUL, REJECTED, or ABANDONED
unless ``FifoAbandonedItems`` is ``hold``) the stream carries that write to the trigger,
which passes the turn on and claims the next item. Different groups never wait for each other.

No wake-up is lost: an arriving item writes WAITING *before* it reads the turn again, and
whoever passes the turn moves it *before* it reads who holds the next number, so at least one
of the two sees the other, and a conditional claim lets only one of them start the item. If a
wake-up is missed anyway (a stream record that never reached the trigger), the retry job
checks each WAITING item when it falls due, and mends the turn.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable, Mapping

from disa_lambda.logic import attempts, clock, launch
from disa_lambda.logic.ports import GroupLedgerPort, OrderingStore, PayloadStore, Starter
from disa_lambda.models.group import AbandonedInGroup, GroupPosition, position_of
from disa_lambda.models.settings import PublishingSettings
from disa_lambda.models.status import Field, Status

# Final items passed over in one go (each costs two reads and a write); a longer run of them
# is passed by the next wake-up.
MAX_TURNS_PASSED = 100


class Arrival(StrEnum):
    HEAD = "head"  # its turn: claim and publish it now
    LATER = "later"  # an earlier sequence of its group is not final yet: WAITING
    TAKEN = "taken"  # another item holds its sequence number
    PASSED = "passed"  # the group's turn is already past its sequence number


@dataclass(frozen=True)
class Turn:
    """Where an arriving item stands: ``turn`` is the sequence its group may publish now."""

    arrival: Arrival
    turn: int


@dataclass(frozen=True)
class Blocked:
    """Why a group's next item cannot be published yet, in words for statusReason;
    ``unfinished``: more final items are left to pass over (the next wake-up goes on)."""

    reason: str
    unfinished: bool = False


@dataclass(frozen=True)
class Sequencer:
    settings: PublishingSettings
    ledger: GroupLedgerPort
    store: OrderingStore
    workflow: Starter
    payload_store: PayloadStore
    rng: random.Random
    time_left_ms: Callable[[], int]

    def arrive(self, key: Mapping[str, Any], position: GroupPosition) -> Turn:
        if not self.ledger.take_slot(position, key):
            return Turn(Arrival.TAKEN, 0)
        turn = self.ledger.next_sequence(position.group)
        if position.sequence < turn:
            return Turn(Arrival.PASSED, turn)
        return Turn(Arrival.HEAD if position.sequence == turn else Arrival.LATER, turn)

    def hold_slot(self, key: Mapping[str, Any], position: GroupPosition) -> None:
        """A REJECTED item keeps its sequence number, so its group can pass over it."""
        self.ledger.take_slot(position, key)

    def wait(self, key: Mapping[str, Any], position: GroupPosition, turn: int, now: float) -> launch.Launched | None:
        """Mark an arriving item WAITING, then look at the turn again (it may have come
        meanwhile). None if it is WAITING now, or already had a status (a redelivered
        record: whoever wrote that status takes it on)."""
        claim = attempts.plan_claim(key, 0, now, self.settings, self.rng)
        claim = dataclasses.replace(claim, lease_until=int(now) + self._recheck_delay(0))
        reason = f"waits for its turn: {_not_published(position.group, turn)}"
        if not self.store.wait(key, claim, reason, clock.iso(now)):
            return None
        if self.ledger.next_sequence(position.group) == position.sequence:
            return self._promote(key, claim.token, now)
        return None

    def wake(self, group: str, now: float) -> launch.Launched | Blocked:
        """Pass the group's turn over every final item and claim the item whose turn it is
        when it is WAITING. Safe to call any number of times, from anywhere."""
        for _ in range(MAX_TURNS_PASSED):
            turn = self.ledger.next_sequence(group)
            holder = self.ledger.holder(group, turn)
            if holder is None:
                return Blocked(
                    f"sequence {turn} of message group {group!r} has not been inserted yet (or was REJECTED "
                    "without a readable messageGroupId and messageSequence): insert it"
                )
            item = self.store.read(holder)
            # Deleted by its owner, or re-inserted under the same key with another place: the
            # insert that held this number will never be published.
            gone = item is None or position_of(item) != GroupPosition(group, turn)
            status = None if gone else Status.of(item)
            if status is Status.WAITING:
                return self._promote(holder, item[Field.CLAIM_TOKEN]["S"], now)
            if not gone and not self._passes_turn(status):
                return Blocked(f"sequence {turn} of message group {group!r} is {status or 'not taken in yet'}")
            self.ledger.advance(group, turn)
        return Blocked(f"message group {group!r} has more final items to pass over", unfinished=True)

    def recheck(self, key: Mapping[str, Any], token: str, now: float) -> launch.Launched | None:
        """The retry job found a WAITING item due: mend its group's turn, and check again
        later if it is still not this item's. None while it keeps waiting."""
        item = self.store.read(key)
        position = None if item is None else position_of(item)
        if item is None or position is None or Status.of(item) is not Status.WAITING:
            return launch.Launched.LOST_RACE
        woken = self.wake(position.group, now)
        turn = self.ledger.next_sequence(position.group)
        if isinstance(woken, launch.Launched) and turn == position.sequence:
            return woken  # it was this item's turn
        reason = woken.reason if isinstance(woken, Blocked) else _not_published(position.group, turn)
        waited = now - clock.epoch(item[Field.ACCEPTED_AT]["S"])
        self.store.keep_waiting(
            key, token, int(now) + self._recheck_delay(waited), f"waits for its turn: {reason}", clock.iso(now)
        )
        return None

    def _promote(self, key: Mapping[str, Any], token: str, now: float) -> launch.Launched:
        return launch.relaunch(
            key,
            Status.WAITING.value,
            token,
            0,
            self.settings,
            self.store,
            self.workflow,
            self.payload_store,
            now,
            self.rng,
            self.time_left_ms,
        )

    def _passes_turn(self, status: Status | str | None) -> bool:
        if status is Status.ABANDONED:
            return self.settings.FIFO_ABANDONED_ITEMS != AbandonedInGroup.HOLD
        return status in (Status.SUCCESSFUL, Status.REJECTED)

    def _recheck_delay(self, waited: float) -> int:
        """The longer an item has waited, the less often it is checked (the wake-up is the
        stream's job; this only mends a missed one): from the retry base delay up to its cap."""
        settings = self.settings
        return int(max(settings.RETRY_BASE_DELAY_SECONDS, min(settings.RETRY_MAX_DELAY_SECONDS, waited)))


def _not_published(group: str, turn: int) -> str:
    return f"sequence {turn} of message group {group!r} is not published yet"


def sequencer_for(
    settings: PublishingSettings,
    ledger: GroupLedgerPort,
    store: OrderingStore,
    workflow: Starter,
    payload_store: PayloadStore,
    rng: random.Random,
    time_left_ms: Callable[[], int],
) -> Sequencer | None:
    """What keeps each message group in order, on FIFO topics only (None on a standard one)."""
    if not settings.TOPIC_IS_FIFO:
        return None
    return Sequencer(settings, ledger, store, workflow, payload_store, rng, time_left_ms)
