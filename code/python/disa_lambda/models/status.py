"""The item status lifecycle and the attribute names the pipeline owns on an item."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Mapping


class Status(StrEnum):
    """Where an item is in its life.

    WAITING    FIFO topics: an earlier item of its message group is not published yet;
               it is claimed when its turn comes (``dueAt`` is when the retry job checks
               again, in case the wake-up was missed).
    PENDING    an execution owns the item until ``dueAt`` (its lease); after that the
               retry job may claim it again.
    SUCCESSFUL published; final.
    FAILED     the last attempt failed; due for the retry job at ``dueAt``.
    ABANDONED  the attempt cap was reached; final, alarmed while it waits for a person
               (``abandonedAt`` keeps it in the attention index until `disa abandoned
               requeue` makes it FAILED again or `disa abandoned dismiss` lets it go).
    REJECTED   the item breaks the contract; final, never published, reason recorded.
    """

    WAITING = "WAITING"
    PENDING = "PENDING"
    SUCCESSFUL = "SUCCESSFUL"
    FAILED = "FAILED"
    ABANDONED = "ABANDONED"
    REJECTED = "REJECTED"

    @property
    def is_final(self) -> bool:
        """No attempt follows: SUCCESSFUL, ABANDONED or REJECTED."""
        return self in (Status.SUCCESSFUL, Status.ABANDONED, Status.REJECTED)

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> Status | str | None:
        """The status of an item in AttributeValue form; None while it has none. A value
        outside the vocabulary (written by someone other than Disa) comes back as written,
        so reports show it instead of failing on it."""
        raw = item.get(Field.STATUS, {}).get("S")
        if raw is None:
            return None
        try:
            return cls(raw)
        except ValueError:
            return raw


# How reports (the CLI, the drills' census) show an item that has no status yet.
NO_STATUS = "NO STATUS YET"


class Field:
    """Item attribute names written by the pipeline (the ASL uses the same literals)."""

    STATUS = "status"
    STATUS_REASON = "statusReason"
    ATTEMPT = "attempt"
    CLAIM_TOKEN = "claimToken"
    DUE_SHARD = "dueShard"
    DUE_AT = "dueAt"
    MESSAGE_ID = "messageId"
    ACCEPTED_AT = "acceptedAt"
    UPDATED_AT = "updatedAt"
    LAST_ERROR = "lastError"
    LAST_CAUSE = "lastCause"
    SWEPT_AT = "sweptAt"  # when the sweep first saw the item without a status
    # Granted by each claim (its claimToken), taken by the claim's execution just before it
    # publishes: a second run of one Express execution finds it gone and publishes nothing.
    PUBLISH_RIGHT = "publishRight"
    # FIFO topics: when the execution took its right, and since when a publish of this insert
    # may have reached SNS without Disa learning so (cleared when SNS refused it outright).
    PUBLISH_RIGHT_AT = "publishRightAt"
    AMBIGUOUS_SINCE = "ambiguousSince"
    # ABANDONED items waiting for a person: set with ABANDONED (which keeps dueShard, the
    # attention index's partition), removed by requeue or dismiss.
    ABANDONED_AT = "abandonedAt"
    DISMISSED_AT = "dismissedAt"
    # Epoch seconds at which DynamoDB's TTL deletes a finished item (FinishedItemRetentionDays).
    EXPIRES_AT = "expiresAt"


# The due index is sharded so that a burst of in-flight items does not write to one hot
# GSI partition; the retry job queries every shard. Changing this strands items in the
# shards no longer queried, so it is a constant of the data format, not a setting.
DUE_INDEX_NAME = "DueIndex"
DUE_INDEX_SHARDS = 8
# ABANDONED items no person has acted on, by dueShard (kept from their last attempt) and
# abandonedAt: what the abandoned alarm counts and `disa abandoned list` reads.
ATTENTION_INDEX_NAME = "AttentionIndex"
