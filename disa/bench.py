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

from disa import items, packaging, project, stacks
from disa.aws import Clients
from disa.console import progress

BENCH_STACK = "disa-bench"
CEILING_STACK = "disa-ceiling"
CEILING_TEMPLATE = project.ROOT / "benchmarks" / "ceiling-stack.yaml"
BATCH_SIZE = "100"
WRITE_BATCH = 25


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


def _insert_and_measure(clients: Clients, table: str, count: int, label: str, done: str, timeout: float) -> Run:
    ddb = clients("dynamodb")
    run_id = uuid.uuid4().hex[:6]
    inserted: dict[str, float] = {}
    keys = [f"{run_id}-{n:06d}" for n in range(count)]
    progress(f"  {label}: inserting {count} items")
    for start in range(0, count, WRITE_BATCH):
        chunk = keys[start : start + WRITE_BATCH]
        now = time.time()
        requests = [{"PutRequest": {"Item": {"id": {"S": k}, "message": {"S": f"bench {k}"}}}} for k in chunk]
        pending = {table: requests}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        inserted.update(dict.fromkeys(chunk, now))
    finished: dict[str, float] = {}
    deadline, last_report = time.time() + timeout, 0.0
    while len(finished) < count and time.time() < deadline:
        for page in ddb.get_paginator("scan").paginate(
            TableName=table, ProjectionExpression="id, updatedAt, #s", ExpressionAttributeNames={"#s": "status"}
        ):
            for item in page["Items"]:
                key = item["id"]["S"]
                if key in inserted and "updatedAt" in item and item.get("status", {}).get("S", done) == done:
                    finished[key] = _epoch(item["updatedAt"]["S"])
        if time.time() - last_report > 3:
            progress(f"  {label}: {len(finished)}/{count} done")
            last_report = time.time()
        time.sleep(0.5)
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
    stacks.deploy_disposable(
        clients,
        BENCH_STACK,
        packaged,
        {
            "NamePrefix": BENCH_STACK,
            "TableDeletionProtection": "false",
            "StreamBatchSize": BATCH_SIZE,
        },
    )
    info = items.StackInfo.of(clients, BENCH_STACK)
    disa_run = _insert_and_measure(clients, info.table, count, "disa", "SUCCESSFUL", timeout)
    progress("== ceiling stack")
    _deploy_ceiling(clients)
    ceiling_run = _insert_and_measure(clients, "disa-ceiling-items", count, "ceiling", "SUCCESSFUL", timeout)
    return [disa_run, ceiling_run]


def report(runs: list[Run]) -> str:
    disa_run, ceiling = runs
    lines = [f"{'':<10}{'items':>7}{'seconds':>9}{'items/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"]
    for r in runs:
        lines.append(
            f"{r.name:<10}{r.items:>7}{r.seconds:>9.1f}{r.throughput:>9.1f}"
            f"{r.percentile(50):>9.0f}{r.percentile(95):>9.0f}{r.percentile(99):>9.0f}"
        )
    ratio = disa_run.throughput / ceiling.throughput if ceiling.throughput else math.nan
    lines.append(f"Disa throughput is {ratio:.2f} of the engine's ceiling for the same work (batch size {BATCH_SIZE}).")
    for r in runs:
        if r.unfinished:
            lines.append(f"warning: {r.unfinished} {r.name} items did not finish within the timeout")
    return "\n".join(lines)
