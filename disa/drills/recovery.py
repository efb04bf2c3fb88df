"""`disa bench --recovery N`: how fast the retry job redrives a backlog on the local cloud.

N items fail during an SNS outage; the outage ends; one retry run is invoked as the schedule
would, and its report says how many items it claimed and started in how long. A benchmark:
it prints figures and asserts nothing about time. On AWS the rate is argued from the
function's CPU and overlapping runs (README, Capacity); locally one engine process serves
every call, so the figure is the engine's, measured in the same way.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from disa_lambda.models.status import Status

from disa.common import console
from disa.common.aws import Clients
from disa.common.aws_helpers import at_most_every, get_items, wait_until, write_items
from disa.common.console import progress
from disa.common.errors import UserError
from disa.deploy import packaging, stacks
from disa.drills.faults import TopicRemovalOutage
from disa.local_cloud.engine import LocalCloud
from disa.operate.retry_job import run_retry
from disa.operate.stack import StackInfo

RECOVERY_STACK = "disa-recovery"
REPORT_EVERY_SECONDS = 3


@dataclass
class RecoveryRun:
    backlog: int
    run_seconds: float
    started: int
    due: int
    shards_busy: int
    settle_seconds: float
    successful: int

    @property
    def started_per_second(self) -> float:
        return self.started / self.run_seconds if self.run_seconds else 0.0


def _count(clients: Clients, table: str, keys: list[dict], status: Status) -> int:
    # By key, not by Scan: the stack is kept between runs and its table grows.
    found = get_items(
        clients("dynamodb"), table, keys, ProjectionExpression="id, #s", ExpressionAttributeNames={"#s": "status"}
    )
    return sum(1 for item in found if Status.of(item) is status)


def run(clients: Clients, cloud: LocalCloud, count: int, timeout: float) -> RecoveryRun:
    progress("== recovery: a backlog of FAILED items, then one retry run")
    packaged = packaging.package(clients, packaging.default_bucket(clients))
    # Retries due a second after a failure, and no sweep: the run measures redrives only.
    parameters = {
        "NamePrefix": RECOVERY_STACK,
        "TableDeletionProtection": "false",
        "RetryBaseDelaySeconds": "1",
        "RetryMaxDelaySeconds": "1",
        "SweepSegments": "0",
    }
    stacks.deploy(clients, RECOVERY_STACK, packaged, parameters)
    info = StackInfo.of(clients, RECOVERY_STACK)
    outage = TopicRemovalOutage(clients("sns"), info.topic_arn, cloud.fault_snapshots)
    run_id = uuid.uuid4().hex[:6]
    keys = [{"id": {"S": f"{run_id}-{n:06d}"}} for n in range(count)]
    outage.on()
    try:
        write_items(
            clients("dynamodb"),
            info.table,
            ({**key, "message": {"S": f"recovery {n}"}} for n, key in enumerate(keys)),
        )
        report = at_most_every(REPORT_EVERY_SECONDS, lambda failed, _: progress(f"  {failed}/{count} FAILED"))
        failed = wait_until(
            lambda: _count(clients, info.table, keys, Status.FAILED),
            lambda failed: failed == count,
            timeout,
            interval=1,
            on_wait=report,
        )
        if failed < count:
            # The engine does not resume a kept stack's stream mapping after a restart
            # (docs/engine-differences.md, 11b): the inserts then never reach the trigger.
            raise UserError(
                f"only {failed} of {count} items failed within {timeout:g}s; if the local cloud was restarted "
                f"since {RECOVERY_STACK} was deployed, run `disa destroy --local --stack {RECOVERY_STACK} "
                "--delete-table` and try again"
            )
    finally:
        outage.off()
    time.sleep(2)  # every failure is due (RetryBaseDelaySeconds 1)
    began = time.monotonic()
    retry_report = run_retry(clients, info)
    run_seconds = time.monotonic() - began
    report = at_most_every(REPORT_EVERY_SECONDS, lambda done, _: progress(f"  {done}/{count} SUCCESSFUL"))
    successful = wait_until(
        lambda: _count(clients, info.table, keys, Status.SUCCESSFUL),
        lambda done: done == count,
        timeout,
        interval=1,
        on_wait=report,
    )
    return RecoveryRun(
        backlog=count,
        run_seconds=run_seconds,
        started=retry_report["started"],
        due=retry_report["due"],
        shards_busy=len(retry_report["shards_busy"]),
        settle_seconds=time.monotonic() - began,
        successful=successful,
    )


def report(result: RecoveryRun) -> str:
    rows = [
        ("FAILED backlog", str(result.backlog)),
        ("one retry run: due / started", f"{result.due} / {result.started}"),
        ("one retry run: seconds", f"{result.run_seconds:.1f}"),
        ("one retry run: items started per second", f"{result.started_per_second:.1f}"),
        ("shards held by an overlapping scheduled run", str(result.shards_busy)),
        ("backlog SUCCESSFUL after", f"{result.settle_seconds:.1f}s ({result.successful}/{result.backlog})"),
    ]
    return console.table(rows, headers=("recovery", ""))
