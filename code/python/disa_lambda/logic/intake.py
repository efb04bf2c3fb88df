"""What happens to one inserted item: REJECTED with a reason, or claimed and started."""

from __future__ import annotations

import random
from enum import StrEnum
from typing import Any, Mapping

from disa_lambda.logic import attempts, clock
from disa_lambda.logic.ports import IntakeStore, Starter
from disa_lambda.logic.validation import find_problem
from disa_lambda.models.exceptions import ItemUnpublishable, MalformedStreamRecord, WorkflowStartFailed
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
    now: float,
    rng: random.Random,
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
    return take_in(key, image, settings, store, workflow, now, rng)


def take_in(
    key: Mapping[str, Any],
    image: Mapping[str, Any],
    settings: PublishingSettings,
    store: IntakeStore,
    workflow: Starter,
    now: float,
    rng: random.Random,
) -> IntakeOutcome:
    """REJECT an item that breaks the contract, or claim it and start its first attempt.

    The stream trigger calls this for each INSERT, the sweep for items no record brought.
    Both may see the same item: the conditional claim lets only one of them start it.
    """
    body = {name: value for name, value in image.items() if name not in key}
    now_iso = clock.iso(now)
    problem = find_problem(body)
    publish = None
    if problem is None:
        try:
            publish = attempts.publish_parameters(key, body, settings.TOPIC_IS_FIFO, accepted_at=now_iso)
        except ItemUnpublishable as unpublishable:
            problem = str(unpublishable)
    inserted_token = body.get(Field.CLAIM_TOKEN)
    if problem is not None:
        store.reject(key, problem, now_iso, inserted_token)
        return IntakeOutcome.REJECTED
    claim = attempts.plan_claim(key, 1, now, settings, rng)
    try:
        document = attempts.execution_input(key, claim, publish)
    except ItemUnpublishable as unpublishable:
        store.reject(key, str(unpublishable), now_iso, inserted_token)
        return IntakeOutcome.REJECTED
    if not store.claim_new(key, claim, now_iso):
        # A redelivered record, the sweep came first, or the item was deleted.
        return IntakeOutcome.ALREADY_HANDLED
    try:
        workflow.start(attempts.execution_name(key, claim), document)
    except WorkflowStartFailed as error:
        # The SDK already retried the start with backoff. The claim stays, due now and
        # set back to the attempt before, so the retry job repeats this attempt: a start
        # that never happened does not count. Failing the record would not help, since a
        # redelivery finds the item claimed.
        store.defer_start(key, claim, attempts.deferral_reason(claim, error), int(now), now_iso)
        return IntakeOutcome.START_DEFERRED
    return IntakeOutcome.STARTED
