"""What happens to one inserted item: REJECTED with a reason, or claimed and started."""

from __future__ import annotations

import random
from enum import StrEnum
from typing import Any, Callable, Mapping

from disa_lambda.logic import attempts, clock, launch, payloads
from disa_lambda.logic.ports import IntakeStore, PayloadStore, Starter
from disa_lambda.logic.validation import find_problem
from disa_lambda.models.exceptions import ItemUnpublishable, MalformedStreamRecord
from disa_lambda.models.settings import PublishingSettings
from disa_lambda.models.status import Field


class IntakeOutcome(StrEnum):
    IGNORED = "ignored"
    STARTED = "started"
    REJECTED = "rejected"
    ALREADY_HANDLED = "already-handled"
    START_DEFERRED = "start-deferred"


def handle_insert(
    record: Mapping[str, Any],
    settings: PublishingSettings,
    store: IntakeStore,
    workflow: Starter,
    payload_store: PayloadStore,
    now: float,
    rng: random.Random,
    time_left_ms: Callable[[], int],
) -> IntakeOutcome:
    """Process one DynamoDB stream INSERT record (AWS shape, NEW_AND_OLD_IMAGES)."""
    if record.get("eventName") != "INSERT":
        # The mapping's filter keeps these out; one that slips through is not Disa's to send.
        return IntakeOutcome.IGNORED
    change = record.get("dynamodb") or {}
    key, image = change.get("Keys"), change.get("NewImage")
    if not key or image is None:
        raise MalformedStreamRecord(
            f"INSERT record {record.get('eventID')} has no Keys or NewImage; "
            "the table stream must use NEW_AND_OLD_IMAGES"
        )
    return take_in(key, image, settings, store, workflow, payload_store, now, rng, time_left_ms)


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
) -> IntakeOutcome:
    """REJECT an item that breaks the contract, or claim it and start its first attempt.

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
            document = attempts.execution_input(key, claim, publish)
        except ItemUnpublishable as unpublishable:
            problem = str(unpublishable)
    if problem is not None:
        store.reject(key, problem, now_iso, body.get(Field.CLAIM_TOKEN))
        return IntakeOutcome.REJECTED
    if not store.claim_new(key, claim, now_iso):
        # A redelivered record, the sweep came first, or the item was deleted.
        return IntakeOutcome.ALREADY_HANDLED
    launched = launch.launch(
        key, claim, publish, staging, settings, store, workflow, payload_store, now, time_left_ms, document
    )
    return _OUTCOME_OF[launched]


_OUTCOME_OF = {
    launch.Launched.STARTED: IntakeOutcome.STARTED,
    launch.Launched.REJECTED: IntakeOutcome.REJECTED,
    launch.Launched.DEFERRED: IntakeOutcome.START_DEFERRED,
}
