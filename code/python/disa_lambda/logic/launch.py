"""Starts one claimed attempt: stores its body in S3 when it must (logic/payloads.py),
builds the execution input and starts the execution. The trigger, the sweep and the retry
job all launch through here once they hold a claim.

Nothing here loses an item: a body that cannot be stored for a reason only its owner can
fix ends the item REJECTED with that reason; S3 failing counts as a failed attempt (due at
its backoff time, ABANDONED at the attempt cap); a start failing, or too little time left
to store a large body within the invocation or the claim's lease, sets the claim back one
attempt, due at once, so the retry job repeats the same attempt number (a start that never
happened is not an attempt)."""

from __future__ import annotations

import random
import time
from enum import StrEnum
from typing import Any, Callable, Mapping

from disa_lambda.logic import attempts, clock, dedup, payloads
from disa_lambda.logic.ports import (
    EXECUTION_TIMEOUT_SECONDS,
    STAGING_RESERVE_MS,
    WORST_CALL_SECONDS,
    DueStore,
    FinishingStore,
    PayloadStore,
    Starter,
)
from disa_lambda.logic.validation import find_problem, pipeline_owned_fields
from disa_lambda.models.claim import Claim, RightAsRead
from disa_lambda.models.exceptions import ItemUnpublishable, PayloadUnavailable, WorkflowStartFailed
from disa_lambda.models.settings import PublishingSettings
from disa_lambda.models.status import Field, Status

# The claim that preceded the launch: its write may have taken this long after ``now``.
CLAIM_SECONDS = WORST_CALL_SECONDS


class Launched(StrEnum):
    STARTED = "started"
    REJECTED = "rejected"
    DEFERRED = "deferred"
    ABANDONED = "abandoned"  # FIFO: too late to publish again inside SNS's deduplication window
    LOST_RACE = "lost-race"  # another run (or a late execution) changed the item first


def launch(
    key: Mapping[str, Any],
    claim: Claim,
    publish: Mapping[str, Any],
    staging: payloads.Staging | None,
    settings: PublishingSettings,
    store: FinishingStore,
    workflow: Starter,
    payload_store: PayloadStore,
    now: float,
    time_left_ms: Callable[[], int],
    document: Mapping[str, Any] | None = None,
    republish_by: float | None = None,
) -> Launched:
    """``document`` is the execution input when the caller already built it (a body
    published as it is); otherwise it is built here, after the body is stored.
    ``republish_by``: FIFO topics, the deadline logic/dedup.py set for this attempt."""
    now_iso = clock.iso(now)
    began = time.monotonic()

    def rejected(unpublishable: ItemUnpublishable) -> Launched:
        store.finish_unclaimable(
            key,
            Status.PENDING.value,
            claim.token,
            Status.REJECTED,
            str(unpublishable),
            now_iso,
            attempts.finished_expiry(settings, now),
        )
        return Launched.REJECTED

    def set_back(why: Exception | str) -> Launched:
        store.defer_start(key, claim, attempts.deferral_reason(claim, why), int(now), now_iso)
        return Launched.DEFERRED

    if staging is not None:
        if time_left_ms() < STAGING_RESERVE_MS:
            return set_back("too little of this invocation was left to store the body in S3")
        try:
            publish = payloads.stage(staging, publish, payload_store, settings, now)
        except ItemUnpublishable as unpublishable:
            return rejected(unpublishable)
        except PayloadUnavailable as unavailable:
            # S3 (or Disa's own access to it) failed after the SDK's retries: an attempt,
            # counted, so a fault that lasts ends ABANDONED and alarmed, not PENDING forever.
            reason = f"attempt {claim.attempt} failed: {unavailable}"[:1000]
            store.defer_start(key, claim, reason, int(now), now_iso, counted=True)
            return Launched.DEFERRED
        if now + time.monotonic() - began + CLAIM_SECONDS + EXECUTION_TIMEOUT_SECONDS > claim.lease_until:
            # Storing took longer than S3's timeouts should allow, so the execution could
            # outlive the claim's lease and race the retry job's next claim. The body is
            # stored now: the next attempt finds it at once.
            return set_back("storing the body in S3 took too long for this claim's lease")
    if document is None:
        try:
            document = attempts.execution_input(
                key,
                claim,
                publish,
                fifo_window(settings, now + time.monotonic() - began, republish_by),
                attempts.finished_expiry(settings, now),
            )
        except ItemUnpublishable as unpublishable:
            return rejected(unpublishable)
    try:
        workflow.start(attempts.execution_name(key, claim), document)
    except WorkflowStartFailed as error:
        # The SDK already retried the start with backoff. Failing a stream record would not
        # help, since a redelivery finds the item claimed.
        return set_back(error)
    return Launched.STARTED


def fifo_window(settings: PublishingSettings, now: float, republish_by: float | None) -> dict[str, str] | None:
    return dedup.execution_window(now, republish_by) if settings.TOPIC_IS_FIFO else None


def relaunch(
    key: Mapping[str, Any],
    observed_status: str,
    observed_token: str,
    observed_attempt: int,
    settings: PublishingSettings,
    store: DueStore,
    workflow: Starter,
    payload_store: PayloadStore,
    now: float,
    rng: random.Random,
    time_left_ms: Callable[[], int],
    right: RightAsRead | None = None,
) -> Launched:
    """Claim an item the retry job found due (FAILED, PENDING past its lease) or a WAITING
    item whose turn came, for its next attempt, and launch it. The claim is conditional on
    the status and token observed, so of two callers only one launches, and with ``right``
    on the publish right as the caller read it (a FIFO takeover)."""
    now_iso = clock.iso(now)
    claim = attempts.plan_claim(key, observed_attempt + 1, now, settings, rng)
    item = store.claim_due(key, observed_status, observed_token, claim, now_iso, right)
    if item is None:
        return Launched.LOST_RACE

    def finish(status: Status, reason: str) -> None:
        expires_at = attempts.finished_expiry(settings, now) if status is Status.REJECTED else None
        store.finish_unclaimable(key, Status.PENDING.value, claim.token, status, reason, now_iso, expires_at)

    # The item is read again as it is now: an owner may have corrected it since it failed.
    body = {name: value for name, value in item.items() if name not in key}
    problem = find_problem({name: value for name, value in body.items() if name not in pipeline_owned_fields()})
    try:
        if problem is not None:
            raise ItemUnpublishable(problem)
        publish = attempts.publish_parameters(key, body, settings.TOPIC_IS_FIFO, item[Field.ACCEPTED_AT]["S"])
        staging = payloads.plan(key, body, publish, settings)
    except ItemUnpublishable as unpublishable:
        finish(Status.REJECTED, str(unpublishable))
        return Launched.REJECTED
    deadline = dedup.republish_deadline(item) if settings.TOPIC_IS_FIFO else None
    if dedup.too_late(deadline, now):
        finish(Status.ABANDONED, dedup.too_late_reason(item))
        return Launched.ABANDONED
    return launch(
        key, claim, publish, staging, settings, store, workflow, payload_store, now, time_left_ms, republish_by=deadline
    )
