"""What happens to one inserted item: REJECTED with a reason, or claimed and started."""

from __future__ import annotations

import random
from enum import StrEnum
from typing import Any, Callable, Mapping

from disa_lambda.logic import attempts, clock, launch, payloads
from disa_lambda.logic.ordering import Arrival, Blocked, Sequencer
from disa_lambda.logic.ports import IntakeStore, PayloadStore, Starter
from disa_lambda.logic.validation import find_problem
from disa_lambda.models.exceptions import ItemUnpublishable, MalformedStreamRecord
from disa_lambda.models.group import position_of
from disa_lambda.models.settings import PublishingSettings
from disa_lambda.models.status import Field, Status


class IntakeOutcome(StrEnum):
    IGNORED = "ignored"
    STARTED = "started"
    REJECTED = "rejected"
    ALREADY_HANDLED = "already-handled"
    START_DEFERRED = "start-deferred"
    WAITING = "waiting"  # FIFO: an earlier item of its group is not published yet
    TURN_PASSED = "turn-passed"  # FIFO: an item became final, so its group's next one may go
    TURN_PASS_UNFINISHED = "turn-pass-unfinished"  # FIFO: more final items to pass than one wake-up does
    ABANDONED = "abandoned"


def handle_insert(
    record: Mapping[str, Any],
    settings: PublishingSettings,
    store: IntakeStore,
    workflow: Starter,
    payload_store: PayloadStore,
    now: float,
    rng: random.Random,
    time_left_ms: Callable[[], int],
    sequencer: Sequencer | None = None,
) -> IntakeOutcome:
    """Process one DynamoDB stream record (AWS shape, NEW_AND_OLD_IMAGES): an INSERT is
    taken in; on FIFO topics, a MODIFY that made an item of a group final passes the turn."""
    change = record.get("dynamodb") or {}
    if record.get("eventName") == "MODIFY" and sequencer is not None:
        image = change.get("NewImage") or {}
        status, position = Status.of(image), position_of(image)
        if position is not None and isinstance(status, Status) and status.is_final:
            woken = sequencer.wake(position.group, now)
            unfinished = isinstance(woken, Blocked) and woken.unfinished
            return IntakeOutcome.TURN_PASS_UNFINISHED if unfinished else IntakeOutcome.TURN_PASSED
    if record.get("eventName") != "INSERT":
        # The mapping's filter keeps these out; one that slips through is not Disa's to send.
        return IntakeOutcome.IGNORED
    key, image = change.get("Keys"), change.get("NewImage")
    if not key or image is None:
        raise MalformedStreamRecord(
            f"INSERT record {record.get('eventID')} has no Keys or NewImage; "
            "the table stream must use NEW_AND_OLD_IMAGES"
        )
    return take_in(key, image, settings, store, workflow, payload_store, now, rng, time_left_ms, sequencer)


def take_in(
    key: Mapping[str, Any],
    image: Mapping[str, Any],
    settings: PublishingSettings,
    store: IntakeStore,
    workflow: Starter,
    payload_store: PayloadStore,
    now: float,
    rng: random.Random,
    time_left_ms: Callable[[], int],
    sequencer: Sequencer | None = None,
) -> IntakeOutcome:
    """REJECT an item that breaks the contract, or claim it and start its first attempt
    (on FIFO topics, ``sequencer`` given: only when its group's turn is at it; else WAITING).

    The stream trigger calls this for each INSERT, the sweep for items no record brought.
    Both may see the same item: the conditional claim lets only one of them start it.
    Whatever can be checked without AWS is checked before the claim; what S3 reveals (a
    referenced object missing or unreadable) rejects the claimed item (logic/launch.py).
    """
    body = {name: value for name, value in image.items() if name not in key}
    now_iso = clock.iso(now)
    problem = find_problem(body)
    publish, staging = None, None
    if problem is None:
        try:
            publish = attempts.publish_parameters(key, body, settings.TOPIC_IS_FIFO, accepted_at=now_iso)
            staging = payloads.plan(key, body, publish, settings)
        except ItemUnpublishable as unpublishable:
            problem = str(unpublishable)
    claim = attempts.plan_claim(key, 1, now, settings, rng)
    document = None
    if problem is None and staging is None:
        try:
            document = attempts.execution_input(
                key, claim, publish, launch.fifo_window(settings, now, None), attempts.finished_expiry(settings, now)
            )
        except ItemUnpublishable as unpublishable:
            problem = str(unpublishable)
    position = position_of(body) if sequencer is not None else None
    arrival = None
    if problem is None and position is not None:
        arrival = sequencer.arrive(key, position)
        problem = _ARRIVAL_PROBLEMS.get(arrival.arrival, "").format(position=position)
    if problem:
        if position is not None and (arrival is None or arrival.arrival is not Arrival.TAKEN):
            sequencer.hold_slot(key, position)  # so that its group passes over it
        expires_at = attempts.finished_expiry(settings, now)
        if not store.reject(key, problem, now_iso, body.get(Field.CLAIM_TOKEN), expires_at):
            return IntakeOutcome.ALREADY_HANDLED  # claimed since (a redelivered record, the sweep)
        return IntakeOutcome.REJECTED
    if arrival is not None and arrival.arrival is Arrival.LATER:
        promoted = sequencer.wait(key, position, arrival.turn, now)
        return IntakeOutcome.WAITING if promoted is None else _OUTCOME_OF[promoted]
    if not store.claim_new(key, claim, now_iso):
        # A redelivered record, the sweep came first, or the item was deleted. A FIFO item
        # may be WAITING from an earlier record although its turn has come: claim it now.
        if arrival is not None:
            sequencer.wake(position.group, now)
        return IntakeOutcome.ALREADY_HANDLED
    launched = launch.launch(
        key, claim, publish, staging, settings, store, workflow, payload_store, now, time_left_ms, document
    )
    return _OUTCOME_OF[launched]


_ARRIVAL_PROBLEMS = {
    Arrival.TAKEN: (
        "messageSequence: {position.sequence} is already held by another item of message group "
        "{position.group!r}; give each item of a group its own number (1, 2, 3, ...)"
    ),
    Arrival.PASSED: (
        "messageSequence: message group {position.group!r} is already past sequence {position.sequence}; "
        "insert it again with the group's next unused number"
    ),
}

_OUTCOME_OF = {
    launch.Launched.STARTED: IntakeOutcome.STARTED,
    launch.Launched.REJECTED: IntakeOutcome.REJECTED,
    launch.Launched.DEFERRED: IntakeOutcome.START_DEFERRED,
    launch.Launched.ABANDONED: IntakeOutcome.ABANDONED,
    launch.Launched.LOST_RACE: IntakeOutcome.ALREADY_HANDLED,
}
