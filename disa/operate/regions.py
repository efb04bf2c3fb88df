"""`disa failover --to REGION`: move publishing, retries and consumers to the other region
of a two-region deployment, losing nothing and processing nothing twice (README, "Two
regions").

The steps, in order:

1. Hand the ownership record over (hand_over) in two writes, so that no two regions ever own
   at once: a condition on a global table is checked against the local replica only, so
   two regions that both own could each claim, and publish, one insert. First the old owner
   releases it in its own region (NO_OWNER, one epoch on); once the release is visible in
   the new region and the old region's cached "I own" has expired (CACHE_SECONDS), the new
   owner's name is written in the new region, conditional on the release's epoch. From then
   on that region's trigger and retry job own (within CACHE_SECONDS).
2. Fence the old owner's consumers: disable their queue mappings, wait until a consumer
   batch begun before that has ended (the consumers' timeout), then until a write made
   there after all that is visible in the new region (a replication barrier on each
   processed-ids table and on the ownership table). Only then may the new owner's consumers
   start: a message both regions' queues hold is then seen processed, not processed again.
3. Enable the new owner's consumers.
4. Take over: the new owner's retry function sweeps every segment of the table for items
   nobody claimed (inserted while the old owner had released, or passed over by the new
   region's trigger before it owned), and runs once for everything due (FAILED; PENDING past
   its lease).

If the old region does not answer (a real outage, `--force`), the record is written in the
new region alone and step 2 is skipped, and said so: what the old region still publishes or
processes before the record reaches it may then happen again (the bound README states).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError
from disa_lambda.dal.ownership import CACHE_SECONDS
from disa_lambda.models.ownership import FIRST_EPOCH, KEY, KEY_ATTRIBUTE, NO_OWNER, OwnershipRecord

from disa.common.aws import Clients
from disa.common.aws_helpers import wait_until
from disa.common.console import progress
from disa.common.errors import UserError
from disa.deploy.regions import RegionPair
from disa.operate import subscribers as subscriber_stacks
from disa.operate.retry_job import invoke_retry_function, run_retry
from disa.operate.stack import StackInfo

TAKEOVER_SEGMENTS = 8  # parallel scan segments of the takeover sweep, one invocation each at a time
BARRIER_TIMEOUT_SECONDS = 300
_SETTLED = frozenset({"Enabled", "Disabled"})
BARRIER_KEY_PREFIX = "disa-failover-barrier#"  # never a Powertools idempotency key (disa-consumer#...)
BARRIER_TTL_SECONDS = 86_400
POWERTOOLS_KEY_ATTRIBUTE = "id"  # the processed-ids tables' key (DynamoDBPersistenceLayer's default)
POLL_SECONDS = 0.5
SETTLE_MARGIN_SECONDS = 2.0  # on top of CACHE_SECONDS: clocks and a read in flight
NOBODY_LABEL = "nobody (being handed over)"  # a released record, as `disa status` shows it


def read_ownership(clients: Clients, table: str, primary: str, quick: bool = False) -> OwnershipRecord:
    """This region's replica of the record; ``quick`` gives up within seconds (is it up?)."""
    dynamodb = clients.quick("dynamodb") if quick else clients("dynamodb")
    item = dynamodb.get_item(TableName=table, Key=KEY, ConsistentRead=True).get("Item")
    return OwnershipRecord.from_item(item, primary)


def initial_ownership(clients: Clients, table: str, primary: str, log: Callable[[str], None] = progress) -> None:
    """The first record of a new deployment: the primary owns. An existing one is kept (a
    deploy after a failover must not move publishing back)."""
    record = OwnershipRecord(owner=primary, epoch=FIRST_EPOCH + 1, since=_now_iso())
    try:
        clients("dynamodb").put_item(
            TableName=table,
            Item=record.to_item(),
            ConditionExpression="attribute_not_exists(#scope)",
            ExpressionAttributeNames={"#scope": "scope"},
        )
        log(f"ownership: {primary} publishes")
    except ClientError as error:
        if "ConditionalCheckFailed" not in str(error):
            raise
        current = read_ownership(clients, table, primary)
        log(f"ownership: {current.owner or NOBODY_LABEL} publishes (epoch {current.epoch}, kept)")


@dataclass
class FailoverReport:
    to: str
    came_from: str
    epoch: int
    fenced: bool  # the old owner answered and was fenced before the new one started
    fence_note: str = ""
    consumers_enabled: list[str] = field(default_factory=list)
    consumers_disabled: list[str] = field(default_factory=list)
    taken_in: int = 0
    rejected: int = 0
    scanned: int = 0
    retried: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        fence = (
            f"{self.came_from} fenced first (consumers stopped, record replicated, barrier passed)"
            if self.fenced
            else f"{self.came_from} NOT fenced: {self.fence_note}"
        )
        return [
            f"failover to {self.to} (epoch {self.epoch}) done in {self.seconds:.1f} s",
            f"  {fence}",
            f"  consumers stopped in {self.came_from}: {', '.join(self.consumers_disabled) or '-'}",
            f"  consumers started in {self.to}: {', '.join(self.consumers_enabled) or '-'}",
            f"  takeover sweep: {self.scanned} items without a status found, {self.taken_in} taken in, "
            f"{self.rejected} rejected; retry run: {self.retried} due items started",
        ]


def failover(
    clients: Clients, stack: str, to_region: str, force: bool = False, log: Callable[[str], None] = progress
) -> FailoverReport:
    """Move publishing to ``to_region``. Without ``force`` the old region must answer, so it
    releases publishing and is fenced before the new one starts; with it, a region that does
    not answer is left to learn of the move by replication (README, "Two regions": what
    that may repeat)."""
    started = time.monotonic()
    new = clients.in_region(to_region)
    try:
        info = StackInfo.of(new, stack)
    except UserError:
        # Say why from the region the command was given: one region only, or not one of its two.
        RegionPair.of_stack(StackInfo.of(clients, stack).regions, stack).other(to_region)
        raise
    pair = RegionPair.of_stack(info.regions, stack)
    old = clients.in_region(pair.other(to_region))
    try:
        read_ownership(old, info.ownership_table, pair.primary, quick=True)
        unanswered = ""
    except (ClientError, BotoCoreError) as error:
        if not force:
            raise UserError(
                f"{old.region} does not answer ({_short(error)}), so it cannot be stopped first; if it is down, run "
                "again with --force, accepting that what it still publishes or processes before it learns of the "
                "move may happen twice (README, Two regions)"
            ) from error
        unanswered = _short(error)
    report = FailoverReport(to=to_region, came_from=old.region, epoch=0, fenced=False)
    if not unanswered:
        # First, so that they do not fail their batches back to the queue (receives that
        # count towards the dead-letter queue) while nobody owns.
        report.consumers_disabled = _set_consumers(old, stack, enabled=False)
    try:
        record = hand_over(None if unanswered else old, new, info.ownership_table, pair.primary, log)
    except (ClientError, BotoCoreError, ReleaseNotReplicated) as error:
        if not force or unanswered:
            if isinstance(error, ReleaseNotReplicated):
                raise UserError(
                    f"{error}; nobody publishes until the failover ends: run `disa failover --to {to_region}` again "
                    f"(with --force if {old.region} cannot replicate to {to_region})"
                ) from error
            raise
        # The old region stopped answering, or its release does not replicate: it released
        # (or never will act on an owner it cannot read), so the new owner is named at once.
        unanswered = _short(error)
        record = hand_over(None, new, info.ownership_table, pair.primary, log)
    written = time.monotonic()
    report.epoch = record.epoch
    if not unanswered:
        try:
            _fence(old, new, stack, info, record, report, log)
            report.fenced = True
        except (ClientError, BotoCoreError, UserError) as error:
            if not force:
                # The record has moved; the new region's consumers started nothing yet.
                # Running the command again finishes the fence and the rest.
                raise UserError(
                    f"fencing {old.region} failed ({_short(error)}); {to_region} owns the record but starts no "
                    f"consumer until {old.region}'s are stopped: run `disa failover --to {to_region}` again (or with "
                    f"--force if {old.region} is down)"
                ) from error
            unanswered = _short(error)
    if unanswered:
        report.fence_note = (
            f"{old.region} did not answer ({unanswered}); it stops when the record replicates to it. What it "
            "published or processed just before and had not replicated may happen again (README, Two regions)"
        )
        log(f"WARNING: {report.fence_note}")
    # The new region's functions cached "not the owner" for up to CACHE_SECONDS: its trigger
    # may still have passed over an insert then, which the sweep below must find.
    time.sleep(max(0.0, written + CACHE_SECONDS + SETTLE_MARGIN_SECONDS - time.monotonic()))
    report.consumers_enabled = _set_consumers(new, stack, enabled=True)
    _take_over(new, info, report, log)
    report.seconds = time.monotonic() - started
    return report


class ReleaseNotReplicated(UserError):
    """The old owner released the record, and the release did not reach the new region."""


def hand_over(
    old: Clients | None, new: Clients, table: str, primary: str, log: Callable[[str], None] = progress
) -> OwnershipRecord:
    """Name ``new``'s region in the ownership record so that no moment has two owners: the
    old owner (``old``, None if it does not answer) first releases the record in its own
    region; the new owner is written in its region only once that release is visible there
    and the old region's functions can no longer act on a cached "I own". Safe to run again
    after an interruption at any step. Returns the record that names the new owner."""
    to_region = new.region
    current = read_ownership(new, table, primary)
    if current.owner == to_region:
        log(f"{to_region} already owns publishing (epoch {current.epoch}); finishing any step left undone")
        return current
    if old is not None:
        at_old = read_ownership(old, table, primary)
        if at_old.owner == old.region:
            release = at_old.released(_now_iso())
            _write_record(old, table, release, at_old)
            log(f"ownership record: {old.region} released publishing (epoch {release.epoch}); nobody publishes now")
        else:
            release = at_old  # released by an earlier, interrupted run, or never the owner
        released = time.monotonic()
        try:
            _wait_until(
                lambda: read_ownership(new, table, primary).epoch >= release.epoch,
                f"the ownership record's release replicating to {to_region}",
            )
        except UserError as error:
            raise ReleaseNotReplicated(str(error)) from error
        # The old region's functions read the record at most CACHE_SECONDS ago: after that
        # none of them acts as the owner. A release found already written is waited out too.
        time.sleep(max(0.0, released + CACHE_SECONDS + SETTLE_MARGIN_SECONDS - time.monotonic()))
        current = read_ownership(new, table, primary)
        if current.owner == to_region:
            return current
        if current.owner != NO_OWNER:
            raise UserError(f"another failover named {current.owner or 'nobody'} meanwhile; run `disa failover` again")
    record = current.handed_to(to_region, _now_iso())
    _write_record(new, table, record, current)
    log(f"ownership record: {to_region} publishes from epoch {record.epoch} (was {current.owner or 'nobody'})")
    return record


def _write_record(clients: Clients, table: str, record: OwnershipRecord, read: OwnershipRecord) -> None:
    """Conditional on the epoch read in that region. A condition on a global table is
    checked against the local replica only, so two failovers run at once from different
    places are not serialised (README): run one at a time."""
    if read.epoch == FIRST_EPOCH:
        condition = {
            "ConditionExpression": "attribute_not_exists(#scope)",
            "ExpressionAttributeNames": {"#scope": "scope"},
        }
    else:
        condition = {
            "ConditionExpression": "#epoch = :read",
            "ExpressionAttributeNames": {"#epoch": "epoch"},
            "ExpressionAttributeValues": {":read": {"N": str(read.epoch)}},
        }
    try:
        clients("dynamodb").put_item(TableName=table, Item=record.to_item(), **condition)
    except ClientError as error:
        if "ConditionalCheckFailed" in str(error):
            raise UserError(
                "another failover changed the ownership record meanwhile; run `disa failover` again"
            ) from error
        raise


def _fence(
    old: Clients,
    new: Clients,
    stack: str,
    info: StackInfo,
    record: OwnershipRecord,
    report: FailoverReport,
    log: Callable[[str], None],
) -> None:
    # A run after a --force one finds the new owner written in the new region alone: the old
    # region may still name itself until the record replicates there.
    _wait_until(
        lambda: read_ownership(old, info.ownership_table, info.regions[0]).owner != old.region,
        f"{old.region} no longer naming itself the owner",
    )
    longest = max([_timeout_of(old, name) for name in _consumer_functions(old, stack)] or [0])
    # The old region's trigger and retry job read the record before each record and item
    # (cached CACHE_SECONDS); its consumers only per batch, which may run their timeout.
    settle = max(longest, CACHE_SECONDS) + SETTLE_MARGIN_SECONDS
    log(f"  {old.region} fenced; waiting {settle:.0f} s for its last consumer batches and cached ownership")
    time.sleep(settle)
    for subscriber in subscriber_stacks.subscribers(old, stack):
        if subscriber.processed_ids_table:
            _barrier(old, new, subscriber.processed_ids_table, POWERTOOLS_KEY_ATTRIBUTE, record.epoch)
    # No marker goes into the items table: the owner's trigger and sweep would take it in
    # as an insert (and REJECT it), and its key may be a number or binary. The items the
    # old region claimed before its release replicate item by item; the ownership table's
    # barrier says replication is flowing at its usual lag (evidence, not proof; README).
    _barrier(old, new, info.ownership_table, KEY_ATTRIBUTE, record.epoch)


def _barrier(old: Clients, new: Clients, table: str, key_name: str, epoch: int) -> None:
    """Write a marker in the old region, then wait until the new region reads it. Global
    tables replicate item by item with no order across items, so a marker seen says the
    replication is flowing at its usual lag, not that every earlier write has arrived."""
    marker = {key_name: {"S": f"{BARRIER_KEY_PREFIX}{epoch}#{time.time_ns()}"}}
    expires = {"expiration": {"N": str(int(time.time()) + BARRIER_TTL_SECONDS)}}
    old("dynamodb").put_item(TableName=table, Item={**marker, **expires})
    _wait_until(
        lambda: "Item" in new("dynamodb").get_item(TableName=table, Key=marker, ConsistentRead=True),
        f"a write to {table} in {old.region} replicating to {new.region}",
    )
    old("dynamodb").delete_item(TableName=table, Key=marker)


def _wait_until(done: Callable[[], bool], what: str) -> None:
    if not wait_until(done, bool, BARRIER_TIMEOUT_SECONDS, POLL_SECONDS):
        raise UserError(f"gave up waiting for {what} after {BARRIER_TIMEOUT_SECONDS} s")


def _consumer_functions(clients: Clients, stack: str) -> list[str]:
    return [s.consumer_function for s in subscriber_stacks.subscribers(clients, stack) if s.consumer_function]


def _timeout_of(clients: Clients, function: str) -> int:
    return int(clients("lambda").get_function_configuration(FunctionName=function)["Timeout"])


def _set_consumers(clients: Clients, stack: str, enabled: bool) -> list[str]:
    """Enable or disable the queue mapping of every consumer of ``stack`` in this region,
    waiting until each one says so, and the actions of its oldest-message alarm with it (a
    standby queue no consumer drains is old on purpose); returns the functions changed."""
    aws_lambda, cloudwatch, changed = clients("lambda"), clients("cloudwatch"), []
    for subscriber in subscriber_stacks.subscribers(clients, stack):
        function = subscriber.consumer_function
        if not function:
            continue
        wanted = "Enabled" if enabled else "Disabled"
        for mapping in aws_lambda.list_event_source_mappings(FunctionName=function)["EventSourceMappings"]:
            uuid = mapping["UUID"]

            def state(uuid: str = uuid) -> str:
                return aws_lambda.get_event_source_mapping(UUID=uuid)["State"]

            # AWS refuses an update while a mapping is Creating, Enabling, Disabling or Updating.
            _wait_until(lambda: state() in _SETTLED, f"the queue mapping of {function} to settle")
            if state() != wanted:
                aws_lambda.update_event_source_mapping(UUID=uuid, Enabled=enabled)
            _wait_until(
                lambda wanted=wanted: state() == wanted,
                f"the queue mapping of {function} in {clients.region} to be {wanted}",
            )
        alarms = [subscriber.oldest_message_alarm]
        (cloudwatch.enable_alarm_actions if enabled else cloudwatch.disable_alarm_actions)(AlarmNames=alarms)
        changed.append(function)
    return changed


def _take_over(new: Clients, info: StackInfo, report: FailoverReport, log: Callable[[str], None]) -> None:
    log(f"  takeover sweep of {info.table} in {new.region} ({TAKEOVER_SEGMENTS} segments)")
    with ThreadPoolExecutor(max_workers=TAKEOVER_SEGMENTS) as pool:
        results = list(pool.map(lambda segment: _sweep_segment(new, info, segment), range(TAKEOVER_SEGMENTS)))
    for result in results:
        report.scanned += result["seen"]
        report.taken_in += result["taken_in"]
        report.rejected += result["rejected"]
    retry = run_retry(new, info)
    report.retried = int(retry.get("started", 0)) if isinstance(retry, dict) else 0


def _sweep_segment(clients: Clients, info: StackInfo, segment: int) -> dict[str, int]:
    totals = {"seen": 0, "taken_in": 0, "rejected": 0}
    start_key = None
    while True:
        request = {"takeover": {"segment": segment, "segments": TAKEOVER_SEGMENTS, "startKey": start_key}}
        payload = invoke_retry_function(clients, info, request)
        if payload.get("skipped"):
            owner = payload.get("owner") or NOBODY_LABEL
            raise UserError(f"{clients.region} does not own publishing yet (the record says {owner})")
        for name in totals:
            totals[name] += int(payload.get(name, 0))
        if payload.get("done"):
            return totals
        start_key = payload.get("nextKey")  # None again: the first page did not fit one invocation's time


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:160]


def describe(clients: Clients, info: StackInfo) -> dict[str, Any]:
    """Who owns, as each region's replica says (`disa status`)."""
    if not info.two_regions:
        return {}
    views: dict[str, Any] = {}
    for region in info.regions:
        try:
            record = read_ownership(clients.in_region(region), info.ownership_table, info.regions[0])
            owner = record.owner or NOBODY_LABEL
            views[region] = {"owner": owner, "epoch": record.epoch, "since": record.since}
        except (ClientError, BotoCoreError) as error:
            views[region] = {"error": _short(error)}
    return views
