"""`disa bench`: throughput and insert -> SUCCESSFUL latency of Disa's deployed stack on the
local cloud, beside the engine's ceiling for the same shape of work, measured in one run.

A benchmark, not a test: it prints figures and asserts nothing about time. Latency runs
from just before an item's insert call to the `updatedAt` its execution records (the state
machine's EnteredTime); the engine runs on this machine, so both come from one clock.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from disa_lambda.models.status import Field, Status

from disa.common import console, paths
from disa.common.aws import Clients
from disa.common.aws_helpers import at_most_every, scan_items, wait_until, write_items
from disa.common.console import progress
from disa.deploy import packaging, stacks
from disa.operate.stack import StackInfo

BENCH_STACK = "disa-bench"
CEILING_STACK = "disa-ceiling"
CEILING_TEMPLATE = paths.ROOT / "benchmarks" / "ceiling-stack.yaml"
CEILING_TABLE = "disa-ceiling-items"  # benchmarks/ceiling-stack.yaml names it
BATCH_SIZE = "100"
REPORT_EVERY_SECONDS = 3


@dataclass
class Run:
    name: str
    items: int
    seconds: float
    latencies_ms: list[float]
    unfinished: int

    @property
    def throughput(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return math.nan
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def _insert_and_measure(clients: Clients, table: str, count: int, label: str, timeout: float) -> Run:
    ddb = clients("dynamodb")
    run_id = uuid.uuid4().hex[:6]
    inserted: dict[str, float] = {}

    def stamped_items():
        for n in range(count):
            key = f"{run_id}-{n:06d}"
            inserted[key] = time.time()  # just before the item joins a write batch
            yield {"id": {"S": key}, "message": {"S": f"bench {key}"}}

    progress(f"  {label}: inserting {count} items")
    write_items(ddb, table, stamped_items())
    finished: dict[str, float] = {}

    def scan_finished() -> int:
        scanned = scan_items(
            ddb,
            table,
            ProjectionExpression=f"id, {Field.UPDATED_AT}, #s",
            ExpressionAttributeNames={"#s": Field.STATUS},
        )
        for item in scanned:
            key = item["id"]["S"]
            # The ceiling stack records only updatedAt; Disa's items must also be SUCCESSFUL.
            if key in inserted and Field.UPDATED_AT in item and Status.of(item) in (None, Status.SUCCESSFUL):
                finished[key] = _epoch(item[Field.UPDATED_AT]["S"])
        return len(finished)

    report = at_most_every(REPORT_EVERY_SECONDS, lambda done, _: progress(f"  {label}: {done}/{count} done"))
    wait_until(scan_finished, lambda done: done == count, timeout, interval=0.5, on_wait=report)
    first = min(inserted.values())
    last = max(finished.values(), default=first)
    return Run(
        label,
        len(finished),
        last - first,
        [1000 * (finished[k] - inserted[k]) for k in finished],
        count - len(finished),
    )


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _deploy_ceiling(clients: Clients) -> None:
    cfn = clients("cloudformation")
    if stacks.stack_status(clients, CEILING_STACK):
        stacks.destroy(clients, CEILING_STACK, log=lambda _: None)  # a fresh table per run
    cfn.create_stack(
        StackName=CEILING_STACK,
        TemplateBody=CEILING_TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": "BatchSize", "ParameterValue": BATCH_SIZE}],
        Capabilities=["CAPABILITY_IAM"],
    )
    cfn.get_waiter("stack_create_complete").wait(StackName=CEILING_STACK, WaiterConfig={"Delay": 1})


def run(clients: Clients, count: int, timeout: float) -> list[Run]:
    progress("== Disa stack")
    packaged = packaging.package(clients, packaging.default_bucket(clients))
    stacks.deploy(
        clients,
        BENCH_STACK,
        packaged,
        {
            "NamePrefix": BENCH_STACK,
            "TableDeletionProtection": "false",
            "StreamBatchSize": BATCH_SIZE,
        },
    )
    info = StackInfo.of(clients, BENCH_STACK)
    disa_run = _insert_and_measure(clients, info.table, count, "disa", timeout)
    progress("== ceiling stack")
    _deploy_ceiling(clients)
    ceiling_run = _insert_and_measure(clients, CEILING_TABLE, count, "ceiling", timeout)
    return [disa_run, ceiling_run]


def report(runs: list[Run]) -> str:
    disa_run, ceiling = runs
    rows = [
        (
            r.name,
            str(r.items),
            f"{r.seconds:.1f}",
            f"{r.throughput:.1f}",
            *(f"{r.percentile(p):.0f}" for p in (50, 95, 99)),
        )
        for r in runs
    ]
    headers = ("", "items", "seconds", "items/s", "p50 ms", "p95 ms", "p99 ms")
    lines = [console.table(rows, headers=headers, right_aligned_from=1)]
    ratio = disa_run.throughput / ceiling.throughput if ceiling.throughput else math.nan
    lines.append(f"Disa throughput is {ratio:.2f} of the engine's ceiling for the same work (batch size {BATCH_SIZE}).")
    for r in runs:
        if r.unfinished:
            lines.append(f"warning: {r.unfinished} {r.name} items did not finish within the timeout")
    return "\n".join(lines)
