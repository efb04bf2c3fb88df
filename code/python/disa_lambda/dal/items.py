"""The only code that reads or writes the Disa table. Items stay in AttributeValue form,
the same form stream images arrive in, so the logic sees one shape of item."""

from __future__ import annotations

from typing import Any, Mapping

from botocore.exceptions import ClientError

from disa_lambda.dal import clients
from disa_lambda.models.claim import Claim, RightAsRead
from disa_lambda.models.exceptions import ItemUnwritable, StoreUnavailable
from disa_lambda.models.status import Field, Status

_NAMES = {
    "#status": Field.STATUS,
    "#reason": Field.STATUS_REASON,
    "#attempt": Field.ATTEMPT,
    "#token": Field.CLAIM_TOKEN,
    "#shard": Field.DUE_SHARD,
    "#due": Field.DUE_AT,
    "#updated": Field.UPDATED_AT,
    "#swept": Field.SWEPT_AT,
    "#right": Field.PUBLISH_RIGHT,
    "#rightAt": Field.PUBLISH_RIGHT_AT,
    "#abandoned": Field.ABANDONED_AT,
    "#expires": Field.EXPIRES_AT,
}


# DynamoDB's message (AWS and the local engine alike) when an update would pass 400 KB.
_ITEM_TOO_LARGE = "Item size to update has exceeded the maximum allowed size"
# What every claim writes: PENDING, the attempt, a fresh token, the lease as dueAt, and the
# right to publish once, which the claim's execution takes (state-machine/publisher.asl.json).
_CLAIM = (
    "SET #status = :pending, #attempt = :attempt, #token = :token, #shard = :shard, #due = :due, "
    "#updated = :now, #right = :token"
)
_CLAIM_NAMES = ("#status", "#attempt", "#token", "#shard", "#due", "#updated", "#right")


def _claim_values(claim: Claim, now_iso: str, status: Status = Status.PENDING) -> dict[str, Any]:
    """The values of a claim's write; ``status`` is bound to ``:pending`` or ``:waiting``."""
    return {
        f":{status.value.lower()}": {"S": status.value},
        ":attempt": {"N": str(claim.attempt)},
        ":token": {"S": claim.token},
        ":shard": {"S": claim.shard},
        ":due": {"N": str(claim.lease_until)},
        ":now": {"S": now_iso},
    }


def _on_right(
    condition: str, names: tuple[str, ...], values: dict[str, Any], right: RightAsRead | None
) -> tuple[str, tuple[str, ...]]:
    """``condition`` and ``names``, also requiring publishRightAt as read (adds its value)."""
    if right is None:
        return condition, names
    if right.taken_at is None:
        return f"{condition} AND attribute_not_exists(#rightAt)", (*names, "#rightAt")
    values[":rightAt"] = {"S": right.taken_at}
    return f"{condition} AND #rightAt = :rightAt", (*names, "#rightAt")


class ItemStore:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self._table = table_name
        self._client = client or clients.client("dynamodb")

    def claim_new(self, key: Mapping[str, Any], claim: Claim, now_iso: str) -> bool:
        """PENDING attempt 1 for an item no one has touched. False if it already has a status."""
        return (
            self._update(
                key,
                f"{_CLAIM}, acceptedAt = :now",
                "attribute_not_exists(#status)",
                _claim_values(claim, now_iso),
                names=_CLAIM_NAMES,
                returns="NONE",
            )
            is not None
        )

    def wait(self, key: Mapping[str, Any], claim: Claim, reason: str, now_iso: str) -> bool:
        """WAITING for an item no one has touched, whose turn in its message group has not
        come: attempt 0, a token the promotion's claim is conditional on, and ``dueAt`` (in
        the due index) when the retry job checks its turn again. False if it has a status."""
        return (
            self._update(
                key,
                "SET #status = :waiting, #attempt = :attempt, #token = :token, #shard = :shard, #due = :due, "
                "#updated = :now, acceptedAt = :now, #reason = :reason",
                "attribute_not_exists(#status)",
                {**_claim_values(claim, now_iso, Status.WAITING), ":reason": {"S": reason}},
                names=("#status", "#attempt", "#token", "#shard", "#due", "#updated", "#reason"),
                returns="NONE",
            )
            is not None
        )

    def keep_waiting(self, key: Mapping[str, Any], token: str, due_epoch: int, reason: str, now_iso: str) -> bool:
        """A WAITING item whose turn has still not come: checked again at ``due_epoch``."""
        return (
            self._update(
                key,
                "SET #due = :due, #reason = :reason, #updated = :now",
                "#status = :waiting AND #token = :token",
                {
                    ":due": {"N": str(due_epoch)},
                    ":reason": {"S": reason},
                    ":now": {"S": now_iso},
                    ":waiting": {"S": Status.WAITING.value},
                    ":token": {"S": token},
                },
                names=("#due", "#reason", "#updated", "#status", "#token"),
                returns="NONE",
            )
            is not None
        )

    def read(self, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The item as it is now (strongly consistent), or None if it was deleted."""
        try:
            response = self._client.get_item(TableName=self._table, Key=dict(key), ConsistentRead=True)
        except ClientError as error:
            raise StoreUnavailable(f"reading item {dict(key)} failed: {error}") from error
        return response.get("Item")

    def reject(
        self,
        key: Mapping[str, Any],
        reason: str,
        now_iso: str,
        inserted_token: Any = None,
        expires_at: int | None = None,
    ) -> bool:
        """REJECTED with a reason (and ``expires_at``, for TTL), unless the pipeline has
        claimed the item since.

        Disa never claims an invalid insert, so the item still carries the claimToken it was
        inserted with (normally none). An inserter who wrote pipeline attributes of their
        own has the status replaced: only Disa sets status, and the index keys they wrote are
        removed, so a REJECTED item sits in neither the due nor the attention index.
        """
        condition = "attribute_not_exists(#token)" if inserted_token is None else "#token = :inserted"
        values = {":rejected": {"S": Status.REJECTED.value}, ":reason": {"S": reason}, ":now": {"S": now_iso}}
        if inserted_token is not None:
            values[":inserted"] = inserted_token
        update = "SET #status = :rejected, #reason = :reason, #updated = :now"
        names: tuple[str, ...] = ("#status", "#reason", "#updated")
        if expires_at is not None:
            update, names = f"{update}, #expires = :expires", (*names, "#expires")
            values[":expires"] = {"N": str(expires_at)}
        return (
            self._update(
                key,
                f"{update} REMOVE #shard, #due, #abandoned",
                condition,
                values,
                names=(*names, "#shard", "#due", "#abandoned", "#token"),
                returns="NONE",
            )
            is not None
        )

    def mark_swept(self, key: Mapping[str, Any], now_epoch: int) -> bool:
        """Note when the sweep first saw an item without a status (a MODIFY: sends nothing)."""
        return (
            self._update(
                key,
                "SET #swept = :now",
                "attribute_not_exists(#status) AND attribute_not_exists(#swept)",
                {":now": {"N": str(now_epoch)}},
                names=("#status", "#swept"),
                returns="NONE",
            )
            is not None
        )

    def defer_start(
        self, key: Mapping[str, Any], claim: Claim, reason: str, now_epoch: int, now_iso: str, counted: bool = False
    ) -> bool:
        """The claim's execution did not start: the item is due again now, with its attempt
        counter set back by one so that the retry job's next claim repeats this attempt
        (a start that never happened is not an attempt). ``counted``: S3 failed storing the
        body, which counts as an attempt, due at the claim's backoff time, so a fault that
        lasts ends the item ABANDONED (alarmed) at the attempt cap instead of forever
        PENDING. False if the claim was superseded."""
        return (
            self._update(
                key,
                "SET #attempt = :previous, #due = :due, #reason = :reason, #updated = :now",
                "#status = :pending AND #token = :token",
                {
                    ":previous": {"N": str(claim.attempt if counted else claim.attempt - 1)},
                    ":due": {"N": str(claim.retry_at if counted else now_epoch)},
                    ":reason": {"S": reason},
                    ":now": {"S": now_iso},
                    ":pending": {"S": Status.PENDING.value},
                    ":token": {"S": claim.token},
                },
                names=("#attempt", "#due", "#reason", "#updated", "#status", "#token"),
                returns="NONE",
            )
            is not None
        )

    def claim_due(
        self,
        key: Mapping[str, Any],
        observed_status: str,
        observed_token: str,
        claim: Claim,
        now_iso: str,
        right: RightAsRead | None = None,
    ) -> dict[str, Any] | None:
        """Take a due item for a new attempt. Returns the whole item as it is now, or None
        if another run (or a late execution) changed it after it was read. ``right``: also
        only while no execution has taken its publish right since it was read (each take
        writes a new publishRightAt)."""
        values = {
            **_claim_values(claim, now_iso),
            ":observed": {"S": observed_status},
            ":observedToken": {"S": observed_token},
        }
        condition, names = _on_right("#status = :observed AND #token = :observedToken", _CLAIM_NAMES, values, right)
        return self._update(key, _CLAIM, condition, values, names=names)

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
    ) -> bool:
        """Move a due item to a final status (ABANDONED or REJECTED) and out of the due index.
        An ABANDONED item keeps its shard and enters the attention index (abandonedAt) until
        a person requeues or dismisses it, and never expires before; a REJECTED one carries
        ``expires_at`` (TTL) when given. ``right``: as claim_due."""
        values = {
            ":final": {"S": status.value},
            ":reason": {"S": reason},
            ":now": {"S": now_iso},
            ":observed": {"S": observed_status},
            ":observedToken": {"S": observed_token},
        }
        if status is Status.ABANDONED:
            update = "SET #status = :final, #reason = :reason, #updated = :now, #abandoned = :now REMOVE #due"
            names: tuple[str, ...] = ("#status", "#reason", "#updated", "#abandoned", "#due", "#token")
        else:
            update = "SET #status = :final, #reason = :reason, #updated = :now REMOVE #shard, #due"
            names = ("#status", "#reason", "#updated", "#shard", "#due", "#token")
            if expires_at is not None:
                update = update.replace(" REMOVE", ", #expires = :expires REMOVE")
                names = (*names, "#expires")
                values[":expires"] = {"N": str(expires_at)}
        condition, names = _on_right("#status = :observed AND #token = :observedToken", names, values, right)
        return self._update(key, update, condition, values, names=names) is not None

    def _update(
        self,
        key: Mapping[str, Any],
        update: str,
        condition: str,
        values: Mapping[str, Any],
        names: tuple[str, ...],
        returns: str = "ALL_NEW",
    ) -> dict[str, Any] | None:
        # An update creates a missing item; requiring the key keeps a late write from
        # resurrecting an item its owner deleted.
        key_name = next(iter(key))
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=dict(key),
                UpdateExpression=update,
                ConditionExpression=f"attribute_exists(#key) AND ({condition})",
                ExpressionAttributeNames={"#key": key_name, **{name: _NAMES[name] for name in names}},
                ExpressionAttributeValues=dict(values),
                ReturnValues=returns,
            )
        except ClientError as error:
            code, message = clients.error_code(error), str(error)
            if code == "ConditionalCheckFailedException":
                return None
            if code == "ValidationException" and _ITEM_TOO_LARGE in message:
                raise ItemUnwritable(
                    f"item {dict(key)} is too close to DynamoDB's 400 KB item limit to take a status; "
                    "shorten or delete it"
                ) from error
            raise StoreUnavailable(f"update of item {dict(key)} failed: {error}") from error
        return response.get("Attributes", {})
