"""`disa items` and `disa show`: the items in one status, and one item with its history, as
plain data (screens.py draws them).

Items that are in flight (FAILED, PENDING, WAITING) carry ``dueShard``/``dueAt`` and so are in
the sparse DueIndex: listing them reads the index, shard by shard, latest ``dueAt`` first,
then BatchGetItem for the page's other fields (the index projects status, attempt and
claimToken only). No index holds the other statuses, so listing them is a paginated Scan of
the whole table with a filter: its read cost follows the table's size, not the page's.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Iterator

from botocore.exceptions import ClientError
from disa_lambda.logic import attempts
from disa_lambda.models.claim import Claim
from disa_lambda.models.status import DUE_INDEX_NAME, DUE_INDEX_SHARDS, Field, Status

from disa.common.aws import Clients
from disa.common.aws_helpers import get_item, get_items
from disa.common.errors import UserError
from disa.operate.items import show_key
from disa.operate.stack import StackInfo

IN_DUE_INDEX = (Status.FAILED, Status.PENDING, Status.WAITING)
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
# `disa show`: Step Functions lists executions newest first and cannot filter them by name, so
# earlier attempts are looked for among this many of the newest (the current attempt's is
# read by its name, wherever it is).
EXECUTION_PAGES = 5
EXECUTIONS_PER_PAGE = 1000
MAX_EXECUTIONS = 10

_LISTED = (Field.STATUS, Field.ATTEMPT, Field.UPDATED_AT, Field.STATUS_REASON, Field.LAST_ERROR, Field.DUE_AT)


@dataclass(frozen=True)
class ItemLine:
    key: str
    status: str
    attempt: int | None
    updated_at: str
    reason: str
    last_error: str
    due_at: int | None  # epoch seconds: lease end (PENDING), next retry (FAILED), next check (WAITING)

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status,
            "attempt": self.attempt,
            "updatedAt": self.updated_at or None,
            "statusReason": self.reason or None,
            "lastError": self.last_error or None,
            "dueAt": self.due_at,
        }


@dataclass(frozen=True)
class Listing:
    status: Status
    items: list[ItemLine]
    source: str  # "DueIndex" or "Scan"
    read: int  # index entries or table items read to find them


def list_items(clients: Clients, info: StackInfo, status: Status, limit: int = DEFAULT_LIMIT) -> Listing:
    """Up to ``limit`` items in ``status``, newest (latest updatedAt) first."""
    if not 1 <= limit <= MAX_LIMIT:
        raise UserError(f"--limit must be from 1 to {MAX_LIMIT}")
    if status in IN_DUE_INDEX:
        lines, read = _from_due_index(clients, info, status, limit)
        source = DUE_INDEX_NAME
    else:
        lines, read = _from_scan(clients, info, status, limit)
        source = "Scan"
    lines.sort(key=lambda line: line.updated_at, reverse=True)
    return Listing(status, lines, source, read)


def _names(info: StackInfo, fields: tuple[str, ...]) -> dict[str, Any]:
    """ProjectionExpression over the key and ``fields`` (status is a reserved word)."""
    names = {"#k": info.key_name, **{f"#f{i}": name for i, name in enumerate(fields)}}
    return {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}


def _line(info: StackInfo, item: dict[str, Any]) -> ItemLine:
    due = item.get(Field.DUE_AT, {}).get("N")
    attempt = item.get(Field.ATTEMPT, {}).get("N")
    return ItemLine(
        key=show_key(item[info.key_name]),
        status=item.get(Field.STATUS, {}).get("S", ""),
        attempt=int(attempt) if attempt is not None else None,
        updated_at=item.get(Field.UPDATED_AT, {}).get("S", ""),
        reason=item.get(Field.STATUS_REASON, {}).get("S", ""),
        last_error=item.get(Field.LAST_ERROR, {}).get("S", ""),
        due_at=int(Decimal(due)) if due is not None else None,
    )


def _from_due_index(clients: Clients, info: StackInfo, status: Status, limit: int) -> tuple[list[ItemLine], int]:
    """The ``limit`` index entries with the latest dueAt across the shards (for PENDING and
    WAITING the latest claimed or checked; for FAILED the retry furthest off, which follows
    the failure time and the attempt's backoff), then their items."""
    ddb = clients("dynamodb")
    entries: list[dict[str, Any]] = []
    read = 0
    for shard in range(DUE_INDEX_SHARDS):
        found = 0
        pages = ddb.get_paginator("query").paginate(
            TableName=info.table,
            IndexName=DUE_INDEX_NAME,
            KeyConditionExpression="dueShard = :shard",
            FilterExpression="#status = :status",
            ExpressionAttributeNames={"#status": Field.STATUS},
            ExpressionAttributeValues={":shard": {"S": str(shard)}, ":status": {"S": status}},
            ScanIndexForward=False,
        )
        for page in pages:
            read += page["ScannedCount"]
            entries.extend(page["Items"])
            found += page["Count"]
            if found >= limit:
                break
    entries.sort(key=lambda e: Decimal(e[Field.DUE_AT]["N"]), reverse=True)
    keys = [{info.key_name: entry[info.key_name]} for entry in entries[:limit]]
    items = get_items(ddb, info.table, keys, **_names(info, _LISTED))
    # The index is eventually consistent: an item that moved on since is not listed.
    return [_line(info, item) for item in items if item.get(Field.STATUS, {}).get("S") == status], read


def _from_scan(clients: Clients, info: StackInfo, status: Status, limit: int) -> tuple[list[ItemLine], int]:
    projection = _names(info, _LISTED)
    ddb = clients("dynamodb")
    newest: list[tuple[str, int, dict[str, Any]]] = []  # a min-heap on updatedAt of the newest seen
    order = itertools.count()  # ties on updatedAt never compare the items themselves
    read = 0
    pages = ddb.get_paginator("scan").paginate(
        TableName=info.table,
        FilterExpression="#f0 = :status",  # _LISTED[0], the status
        ExpressionAttributeValues={":status": {"S": status}},
        **projection,
    )
    for page in pages:
        read += page["ScannedCount"]
        for item in page["Items"]:
            entry = (item.get(Field.UPDATED_AT, {}).get("S", ""), next(order), item)
            if len(newest) < limit:
                heapq.heappush(newest, entry)
            elif entry[0] > newest[0][0]:
                heapq.heapreplace(newest, entry)
    return [_line(info, item) for _, _, item in newest], read


# --- `disa show KEY` ----------------------------------------------------------------------

# What each attribute the pipeline writes means (models/status.py Field), in words.
FIELD_MEANINGS = {
    Field.STATUS: "where the item is in its life",
    Field.STATUS_REASON: "why it is in that status",
    Field.ATTEMPT: "the publishing attempt the current claim belongs to (0: none yet)",
    Field.CLAIM_TOKEN: "the current claim; every status write is conditional on it",
    Field.DUE_SHARD: "its partition of the due index",
    Field.DUE_AT: "when the retry job looks at it next",
    Field.MESSAGE_ID: "the id SNS gave the published message",
    Field.ACCEPTED_AT: "when the pipeline took it in",
    Field.UPDATED_AT: "when its status last changed",
    Field.LAST_ERROR: "the error of the last failed attempt",
    Field.LAST_CAUSE: "what the last failed attempt was told",
    Field.SWEPT_AT: "when the sweep first saw it without a status",
    Field.PUBLISH_RIGHT: "the claim's right to publish, not yet taken by its execution",
    Field.PUBLISH_RIGHT_AT: "when its execution took the right to publish",
    Field.AMBIGUOUS_SINCE: "since when a publish may have reached SNS without Disa learning so",
    Field.ABANDONED_AT: "when it was abandoned; a person has not requeued or dismissed it yet",
    Field.DISMISSED_AT: "when a person dismissed it",
    Field.EXPIRES_AT: "when DynamoDB's time to live may delete it (within about two days after)",
}
DUE_MEANINGS = {
    Status.PENDING: "its lease ends: the retry job may claim it again",
    Status.FAILED: "its next retry",
    Status.WAITING: "the retry job checks its turn again",
}
STATUS_MEANINGS = {
    Status.WAITING: "waits for an earlier item of its message group (FIFO)",
    Status.PENDING: "an execution owns it until its lease ends",
    Status.SUCCESSFUL: "published; final",
    Status.FAILED: "the last attempt failed; the retry job tries again when it is due",
    Status.ABANDONED: "the attempt cap was reached; final, alarmed, waits for a person",
    Status.REJECTED: "it breaks the item contract; final, never published",
}
# Timestamps on the item, and what happened at each (the timeline `disa show` draws).
_EVENTS = {
    Field.SWEPT_AT: "the sweep found it without a status",
    Field.ACCEPTED_AT: "taken in by the pipeline",
    Field.PUBLISH_RIGHT_AT: "its execution took the right to publish",
    Field.AMBIGUOUS_SINCE: "a publish may have reached SNS without Disa learning so",
    Field.ABANDONED_AT: "abandoned: the attempt cap was reached",
    Field.DISMISSED_AT: "dismissed by a person",
}


def pipeline_fields() -> frozenset[str]:
    """Every attribute name models/status.py says the pipeline writes."""
    return frozenset(value for name, value in vars(Field).items() if name.isupper() and isinstance(value, str))


@dataclass(frozen=True)
class Event:
    at: datetime
    what: str
    upcoming: bool = False  # a time still ahead (dueAt)
    # At one instant (the timestamps have milliseconds at best) an execution's start (0) comes
    # before what it wrote on the item (1), and its end (2) after.
    rank: int = 1


@dataclass(frozen=True)
class Execution:
    name: str
    status: str
    started: datetime
    stopped: datetime | None
    error: str = ""
    cause: str = ""


@dataclass
class ItemRecord:
    key: str
    table: str
    item: dict[str, Any]  # every attribute, AttributeValue form
    workflow_type: str  # STANDARD or EXPRESS ("" when the state machine is not known)
    executions: list[Execution] = field(default_factory=list)
    executions_note: str = ""  # why none are listed, or how far they were looked for

    @property
    def status(self) -> str:
        return self.item.get(Field.STATUS, {}).get("S", "")

    def timeline(self, now: float | None = None) -> list[Event]:
        """What the item's own timestamps and its executions say happened, oldest first."""
        events = [
            Event(stamp, what) for name, what in _EVENTS.items() if (stamp := _when(self.item.get(name))) is not None
        ]
        updated = _when(self.item.get(Field.UPDATED_AT))
        if updated is not None:
            reason = self.item.get(Field.STATUS_REASON, {}).get("S")
            events.append(Event(updated, f"became {self.status or 'what it is'}" + (f": {reason}" if reason else "")))
        due = _when(self.item.get(Field.DUE_AT))
        if due is not None and self.status in DUE_MEANINGS:
            ahead = due.timestamp() > (time.time() if now is None else now)
            events.append(Event(due, f"due: {DUE_MEANINGS[Status(self.status)]}", upcoming=ahead))
        for execution in reversed(self.executions):  # oldest first
            events.append(Event(execution.started, f"execution {execution.name} started", rank=0))
            if execution.stopped is not None:
                ending = f"execution {execution.name} ended {execution.status}"
                error = f": {execution.error}" if execution.error else ""
                events.append(Event(execution.stopped, ending + error, rank=2))
        return sorted(events, key=lambda e: (e.at, e.rank))


def parse_key(info: StackInfo, text: str) -> dict[str, Any]:
    """KEY as the table's key type has it: S as written, N a number, B base64."""
    if info.key_type == "N":
        try:
            Decimal(text)
        except InvalidOperation as error:
            raise UserError(f"key {text!r} must be a number: the table's key type is N") from error
        return {info.key_name: {"N": text}}
    if info.key_type == "B":
        try:
            return {info.key_name: {"B": base64.b64decode(text, validate=True)}}
        except binascii.Error as error:
            raise UserError(f"key {text!r} must be base64: the table's key type is B") from error
    return {info.key_name: {"S": text}}


def show(clients: Clients, info: StackInfo, key_text: str, now: float | None = None) -> ItemRecord:
    key = parse_key(info, key_text)
    item = get_item(clients("dynamodb"), info.table, key)
    if not item:
        raise UserError(f"no item with key {key_text} in {info.table}")
    record = ItemRecord(key=show_key(item[info.key_name]), table=info.table, item=item, workflow_type="")
    if not info.state_machine_arn:
        record.executions_note = "the stack names no state machine"
        return record
    sfn = clients("stepfunctions")
    record.workflow_type = sfn.describe_state_machine(stateMachineArn=info.state_machine_arn)["type"]
    if record.workflow_type != "STANDARD":
        record.executions_note = (
            f"{record.workflow_type} executions are not kept by Step Functions to list; "
            "their history is in the state machine's log group"
        )
        return record
    record.executions, record.executions_note = _executions(sfn, info, item)
    return record


def _stream_key(info: StackInfo, item: dict[str, Any]) -> dict[str, Any]:
    """The key as the trigger saw it in the stream record (binary as base64 text), which is
    what execution names are derived from."""
    value = item[info.key_name]
    if "B" in value:
        return {info.key_name: {"B": base64.b64encode(value["B"]).decode()}}
    return {info.key_name: value}


def _executions(sfn: Any, info: StackInfo, item: dict[str, Any]) -> tuple[list[Execution], str]:
    """This item's executions, newest first, at most MAX_EXECUTIONS: the current attempt's by
    its name (logic/attempts.py execution_name), earlier ones among the newest
    EXECUTION_PAGES x EXECUTIONS_PER_PAGE of the state machine."""
    key = _stream_key(info, item)
    prefix = attempts.key_digest(key)[:24] + "-a"
    found: dict[str, dict[str, Any]] = {}
    token, attempt = item.get(Field.CLAIM_TOKEN, {}).get("S"), item.get(Field.ATTEMPT, {}).get("N")
    if token and attempt:
        name = attempts.execution_name(key, Claim(token, int(attempt), 0, "", 0, False))
        current = _describe(sfn, _execution_arn(info.state_machine_arn, name))
        if current is not None:
            found[current["executionArn"]] = current
    looked = 0
    for page in _execution_pages(sfn, info.state_machine_arn):
        looked += len(page)
        for listed in page:
            if listed["name"].startswith(prefix):
                found.setdefault(listed["executionArn"], listed)
        if len(found) >= MAX_EXECUTIONS:
            break
    newest = sorted(found.values(), key=lambda e: e["startDate"], reverse=True)[:MAX_EXECUTIONS]
    executions = [_execution(sfn, e) for e in newest]
    note = f"looked for among the {looked} newest executions of the state machine"
    return executions, note


def _execution_pages(sfn: Any, machine: str) -> Iterator[list[dict[str, Any]]]:
    pages = sfn.get_paginator("list_executions").paginate(
        stateMachineArn=machine, PaginationConfig={"PageSize": EXECUTIONS_PER_PAGE, "MaxItems": None}
    )
    for number, page in enumerate(pages):
        if number >= EXECUTION_PAGES:
            return
        yield page["executions"]


def _execution_arn(machine: str, name: str) -> str:
    return machine.replace(":stateMachine:", ":execution:", 1) + ":" + name


def _describe(sfn: Any, arn: str) -> dict[str, Any] | None:
    try:
        return sfn.describe_execution(executionArn=arn)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            return None
        raise


def _execution(sfn: Any, listed: dict[str, Any]) -> Execution:
    described = listed
    if listed["status"] not in ("RUNNING", "SUCCEEDED") and "error" not in listed:
        described = _describe(sfn, listed["executionArn"]) or listed
    return Execution(
        name=listed["name"],
        status=listed["status"],
        started=listed["startDate"].astimezone(UTC),
        stopped=listed["stopDate"].astimezone(UTC) if listed.get("stopDate") else None,
        error=described.get("error", ""),
        cause=described.get("cause", ""),
    )


def _when(value: dict[str, Any] | None) -> datetime | None:
    """An item timestamp: ISO-8601 text (people's) or epoch seconds (index keys)."""
    if not value:
        return None
    try:
        if "N" in value:
            return datetime.fromtimestamp(float(value["N"]), tz=UTC)
        if "S" in value:
            return datetime.fromisoformat(value["S"].replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return None
