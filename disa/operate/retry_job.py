"""`disa retry`: run the retry job now instead of waiting for its schedule."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from disa.common.aws import Clients
from disa.common.errors import UserError
from disa.operate.stack import StackInfo


def run_retry(clients: Clients, info: StackInfo) -> dict[str, Any]:
    """Invoke the retry function with the event shape EventBridge sends; returns its report."""
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
    return invoke_retry_function(clients, info, event)


def invoke_retry_function(clients: Clients, info: StackInfo, event: dict[str, Any]) -> Any:
    """The retry function's answer to ``event``; its failure is a UserError naming its logs."""
    response = clients("lambda").invoke(FunctionName=info.retry_function, Payload=json.dumps(event).encode())
    payload = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        message = payload.get("errorMessage") if isinstance(payload, dict) else payload
        raise UserError(f"the retry function failed: {message}; see its logs in /aws/lambda/{info.retry_function}")
    return payload
