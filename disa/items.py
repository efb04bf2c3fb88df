"""`disa send`, `disa status`, `disa retry`: what an operator does with a running stack."""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Iterable

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from disa.aws import Clients
from disa.errors import UserError
from disa.stacks import outputs

_serializer = TypeSerializer()
STATUSES = ("PENDING", "SUCCESSFUL", "FAILED", "ABANDONED", "REJECTED")


@dataclass(frozen=True)
class StackInfo:
    table: str
    key_name: str
    key_type: str
    alarms: tuple[str, ...]
    retry_function: str
    topic_arn: str

    @classmethod
    def of(cls, clients: Clients, stack: str) -> StackInfo:
        out = outputs(clients, stack)
        return cls(
            table=out["TableName"],
            key_name=out["KeyAttributeName"],
            key_type=out["KeyAttributeType"],
            alarms=tuple(
                out[k] for k in ("PublishFailuresAlarmName", "AbandonedItemsAlarmName", "TriggerFailuresAlarmName")
            ),
            retry_function=out["RetryFunctionName"],
            topic_arn=out["MessageTopicArn"],
        )


def item_from_document(document: Any) -> dict[str, Any]:
    """An item in AttributeValue form from either plain JSON ({"message": "hi"}) or
    DynamoDB JSON ({"message": {"S": "hi"}}), as `aws dynamodb put-item` takes it."""
    if not isinstance(document, dict) or not document:
        raise UserError('the item must be a JSON object, e.g. {"message": "hello"}')
    if all(isinstance(v, dict) and len(v) == 1 and next(iter(v)) in _AV_TYPES for v in document.values()):
        return document
    plain = json.loads(json.dumps(document), parse_float=Decimal)
    return {name: _serializer.serialize(value) for name, value in plain.items()}


_AV_TYPES = {"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"}


def build_item(
    message: str | None,
    subject: str | None,
    attributes: Iterable[str],
    group_id: str | None,
    dedup_id: str | None,
) -> dict[str, Any]:
    if message is None:
        raise UserError("give the message text, or --file FILE / --file - for a JSON item")
    item: dict[str, Any] = {"message": {"S": message}}
    if subject is not None:
        item["subject"] = {"S": subject}
    parsed = {}
    for pair in attributes:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UserError(f"--attribute {pair!r} must look like NAME=VALUE")
        parsed[name] = {"S": value}
    if parsed:
        item["attributes"] = {"M": parsed}
    if group_id is not None:
        item["messageGroupId"] = {"S": group_id}
    if dedup_id is not None:
        item["deduplicationId"] = {"S": dedup_id}
    return item


def send(clients: Clients, info: StackInfo, item: dict[str, Any], key: str | None) -> dict[str, Any]:
    """Insert ``item`` under a new key (or ``key``); never overwrites an existing item,
    since an overwrite is a MODIFY and Disa sends only on INSERT."""
    key_value = _key_value(info.key_type, key)
    item = {**item, info.key_name: key_value}
    try:
        clients("dynamodb").put_item(
            TableName=info.table,
            Item=item,
            ConditionExpression="attribute_not_exists(#k)",
            ExpressionAttributeNames={"#k": info.key_name},
        )
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code == "ConditionalCheckFailedException":
            raise UserError(
                f"an item with key {key!r} exists already; Disa sends on insert only, so use a new key"
            ) from error
        if code == "ValidationException":
            raise UserError(f"DynamoDB refused the item: {error.response['Error'].get('Message')}") from error
        raise
    return key_value


def _key_value(key_type: str, given: str | None) -> dict[str, Any]:
    if key_type == "S":
        return {"S": given or str(uuid.uuid4())}
    if key_type == "N":
        if given is not None and not _is_number(given):
            raise UserError(f"--key {given!r} must be a number: the table's key type is N")
        return {"N": given or str(uuid.uuid4().int >> 66)}
    return {"B": base64.b64decode(given) if given else uuid.uuid4().bytes}


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True


def status_report(clients: Clients, info: StackInfo, recent: int = 10) -> dict[str, Any]:
    """Counts per status, oldest PENDING, alarm states, latest failures with reasons.

    Reads the whole table (a paginated Scan of a few attributes): meant for people, not
    for a loop."""
    counts: Counter[str] = Counter()
    oldest_pending: str | None = None
    problems: list[dict[str, str]] = []
    paginator = clients("dynamodb").get_paginator("scan")
    pages = paginator.paginate(
        TableName=info.table,
        ProjectionExpression="#k, #s, statusReason, acceptedAt, updatedAt, attempt",
        ExpressionAttributeNames={"#k": info.key_name, "#s": "status"},
    )
    for page in pages:
        for item in page["Items"]:
            status = item.get("status", {}).get("S", "NO STATUS YET")
            counts[status] += 1
            if status == "PENDING":
                accepted = item.get("acceptedAt", {}).get("S")
                if accepted and (oldest_pending is None or accepted < oldest_pending):
                    oldest_pending = accepted
            if status in ("FAILED", "ABANDONED", "REJECTED"):
                problems.append(
                    {
                        "key": show_key(item[info.key_name]),
                        "status": status,
                        "attempt": item.get("attempt", {}).get("N", "-"),
                        "updated": item.get("updatedAt", {}).get("S", ""),
                        "reason": item.get("statusReason", {}).get("S", ""),
                    }
                )
    problems.sort(key=lambda p: p["updated"], reverse=True)
    alarms = clients("cloudwatch").describe_alarms(AlarmNames=list(info.alarms))["MetricAlarms"]
    return {
        "counts": {s: counts.get(s, 0) for s in (*STATUSES, *sorted(set(counts) - set(STATUSES)))},
        "oldestPending": oldest_pending,
        "alarms": {a["AlarmName"]: a["StateValue"] for a in alarms},
        "recentProblems": problems[:recent],
    }


def show_key(value: dict[str, Any]) -> str:
    ((kind, raw),) = value.items()
    return base64.b64encode(raw).decode() if kind == "B" else str(raw)


def run_retry(clients: Clients, info: StackInfo) -> dict[str, Any]:
    """Invoke the retry function now, with the event shape EventBridge sends."""
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": clients.account_id(),
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": clients.region,
        "resources": [],
        "detail": {},
    }
    response = clients("lambda").invoke(FunctionName=info.retry_function, Payload=json.dumps(event).encode())
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        message = payload.get("errorMessage") if isinstance(payload, dict) else payload
        raise UserError(f"the retry function failed: {message}; see its logs in /aws/lambda/{info.retry_function}")
    return payload
