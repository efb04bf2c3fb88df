"""`disa status`: counts per status, the oldest PENDING item, alarm states, and the latest
problems with their reasons."""

from __future__ import annotations

from collections import Counter
from typing import Any

from disa_lambda.models.status import NO_STATUS, Field, Status

from disa.common.aws import Clients
from disa.common.aws_helpers import scan_items
from disa.operate.items import show_key
from disa.operate.stack import StackInfo

PROBLEMS = (Status.FAILED, Status.ABANDONED, Status.REJECTED)


def status_report(clients: Clients, info: StackInfo, recent: int = 10) -> dict[str, Any]:
    """Reads the whole table (a paginated Scan of a few attributes): meant for people, not
    for a loop."""
    counts: Counter[str] = Counter()
    oldest_pending: str | None = None
    problems: list[dict[str, str]] = []
    items = scan_items(
        clients("dynamodb"),
        info.table,
        ProjectionExpression=f"#k, #s, {Field.STATUS_REASON}, {Field.ACCEPTED_AT}, {Field.UPDATED_AT}, {Field.ATTEMPT}",
        ExpressionAttributeNames={"#k": info.key_name, "#s": Field.STATUS},
    )
    for item in items:
        status = Status.of(item)
        counts[status or NO_STATUS] += 1
        if status is Status.PENDING:
            accepted = item.get(Field.ACCEPTED_AT, {}).get("S")
            if accepted and (oldest_pending is None or accepted < oldest_pending):
                oldest_pending = accepted
        if status in PROBLEMS:
            problems.append(
                {
                    "key": show_key(item[info.key_name]),
                    "status": status,
                    "attempt": item.get(Field.ATTEMPT, {}).get("N", "-"),
                    "updated": item.get(Field.UPDATED_AT, {}).get("S", ""),
                    "reason": item.get(Field.STATUS_REASON, {}).get("S", ""),
                }
            )
    problems.sort(key=lambda p: p["updated"], reverse=True)
    alarms = clients("cloudwatch").describe_alarms(AlarmNames=list(info.alarm_names))["MetricAlarms"]
    return {
        "counts": {str(s): counts.get(s, 0) for s in (*Status, *sorted(set(counts) - set(Status)))},
        "oldestPending": oldest_pending,
        "alarms": {a["AlarmName"]: a["StateValue"] for a in alarms},
        "recentProblems": problems[:recent],
    }
