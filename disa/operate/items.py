"""`disa send`: items built from arguments or a JSON document, inserted without overwriting."""

from __future__ import annotations

import base64
import json
import uuid
from decimal import Decimal
from typing import Any, Iterable

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from disa.common.aws import Clients
from disa.common.errors import UserError
from disa.operate.stack import StackInfo

_serializer = TypeSerializer()


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
    sequence: int | None = None,
) -> dict[str, Any]:
    """An item in AttributeValue form; ``sequence`` is its messageSequence, its place in
    its message group on a FIFO topic."""
    if message is None:
        raise UserError("give the message text, or --file FILE / --file - for a JSON item")
    if sequence is not None and sequence < 1:
        raise UserError(f"--sequence {sequence} must be a whole number from 1: 1, 2, 3, ... per message group")
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
    if sequence is not None:
        item["messageSequence"] = {"N": str(sequence)}
    return item


def send(clients: Clients, info: StackInfo, item: dict[str, Any], key: str | None) -> dict[str, Any]:
    """Insert ``item`` under a new key (or ``key``); never overwrites an existing item,
    since an overwrite is a MODIFY and Disa sends only on INSERT."""
    value = _key_value(info.key_type, key)
    item = {**item, info.key_name: value}
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
    return value


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


def show_key(value: dict[str, Any]) -> str:
    ((kind, raw),) = value.items()
    return base64.b64encode(raw).decode() if kind == "B" else str(raw)
