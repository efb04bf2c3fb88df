"""`disa bench`: throughput and insert -> SUCCESSFUL latency of Disa on the local cloud, beside
two other stacks doing the same work, all measured in one run:

- the ceiling (benchmarks/ceiling-stack.yaml): the least the engine can do for that work;
- the seed baseline (benchmarks/seed-baseline-stack.yaml): the original design's shape, a
  STANDARD workflow whose Lambda task publishes and puts a metric per message, no claim.

Two modes: burst inserts N items as fast as possible; steady inserts them at a fixed rate,
where latency is what matters. ``--fifo`` measures burst mode on Disa's standard stack beside
Disa on a FIFO topic (its own stack): the items are spread round-robin over G message groups,
each published one message at a time in its messageSequence order, so a group's n-th item
waits for the n-1 before it and the FIFO figures are bounded by G, not by the batch size.

A benchmark, not a test: it prints figures and judges them against the targets, and fails
only when items do not finish within the timeout.

Latency runs from just before an item's insert call to the `updatedAt` its execution records
(the state machine's EnteredTime); the engine runs on this machine, so both come from one
clock. Before each measurement the stack gets one stream batch of untimed warm-up items, so
cold Lambda workers are not what is measured (the seed's Lambda task would otherwise spawn a
worker process per execution in flight).
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

from botocore.exceptions import ClientError
from disa_lambda.models.group import FIRST_SEQUENCE, GROUP_ATTRIBUTE, SEQUENCE_ATTRIBUTE, GroupPosition
from disa_lambda.models.status import Field, Status

from disa.common import console, paths
from disa.common.aws import Clients
from disa.common.aws_helpers import at_most_every, get_items, wait_until, write_items
from disa.common.console import progress
from disa.deploy import packaging, stacks

T = TypeVar("T")

BATCH_SIZE = "100"  # stream records per trigger invocation, the same for every stack
WARMUP_ITEMS = int(BATCH_SIZE)
REPORT_EVERY_SECONDS = 3
THROUGHPUT_TARGET = 0.9  # of the ceiling, in burst mode
P95_TARGET_MS = 1000.0
P95_TARGET_RATE = 20.0  # items/s at which the p95 target applies
FIFO_STACK = "disa-bench-fifo"  # its own stack: TopicType cannot change in place
GROUPS = 10  # message groups of the FIFO burst


@dataclass(frozen=True)
class Stack:
    """A benchmarked stack: its row in the report, its CloudFormation name, and how it is
    deployed (created or updated in place). Each has a `TableName` output."""

    label: str
    name: str
    deploy: Callable[[Clients, str], None]
    groups: int | None = None  # a FIFO topic: the message groups its items are spread over

    def table(self, clients: Clients) -> str:
        return stacks.outputs(clients, self.name)["TableName"]


def _disa(topic_type: str) -> Callable[[Clients, str], None]:
    def deploy(clients: Clients, name: str) -> None:
        packaged = packaging.package(clients, packaging.default_bucket(clients))
        parameters = {
            "NamePrefix": name,
            "TableDeletionProtection": "false",
            "StreamBatchSize": BATCH_SIZE,
            "TopicType": topic_type,
        }
        stacks.deploy(clients, name, packaged, parameters)

    return deploy


def _template(path: Path) -> Callable[[Clients, str], None]:
    """Deploys a self-contained template from benchmarks/, kept between runs like Disa's stack
    (deleting a stack on the local engine leaves its Lambda workers running)."""

    def deploy(clients: Clients, name: str) -> None:
        cfn = clients("cloudformation")
        request = {
            "StackName": name,
            "TemplateBody": path.read_text(),
            "Parameters": [{"ParameterKey": "BatchSize", "ParameterValue": BATCH_SIZE}],
            "Capabilities": ["CAPABILITY_IAM"],
        }
        status = stacks.stack_status(clients, name)
        if status == "ROLLBACK_COMPLETE":
            stacks.destroy(clients, name, log=lambda _: None)
            status = None
        if status is None:
            cfn.create_stack(**request)
            waiter = "stack_create_complete"
        else:
            try:
                cfn.update_stack(**request)
            except ClientError as error:
                if "No updates are to be performed" in str(error):
                    return
                raise
            waiter = "stack_update_complete"
        cfn.get_waiter(waiter).wait(StackName=name, WaiterConfig={"Delay": 1})

    return deploy


BENCHMARKS = paths.ROOT / "benchmarks"
DISA = Stack("disa", "disa-bench", _disa("standard"))
STACKS = (
    DISA,
    Stack("ceiling", "disa-ceiling", _template(BENCHMARKS / "ceiling-stack.yaml")),
    Stack("seed", "disa-seed-baseline", _template(BENCHMARKS / "seed-baseline-stack.yaml")),
)


def fifo_stack(groups: int) -> Stack:
    """Disa on a FIFO topic, its items spread over ``groups`` message groups."""
    return Stack("disa-fifo", FIFO_STACK, _disa("fifo"), groups)


@dataclass(frozen=True)
class Mode:
    """burst: insert as fast as possible (``rate`` None); steady: ``rate`` items/s."""

    name: str
    rate: float | None = None

    @classmethod
    def burst(cls) -> Mode:
        return cls("burst")

    @classmethod
    def steady(cls, rate: float) -> Mode:
        return cls("steady", rate)


@dataclass
class Run:
    name: str
    items: int
    seconds: float
    latencies_ms: list[float]
    unfinished: int = 0
    insert_seconds: float = 0.0
    groups: int | None = None  # a FIFO topic's message groups

    @property
    def throughput(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        return percentile(self.latencies_ms, p)


@dataclass
class Result:
    """One mode's runs, one per stack, in STACKS order."""

    mode: Mode
    count: int
    runs: list[Run]

    def run(self, name: str) -> Run:
        return next(r for r in self.runs if r.name == name)

    def has(self, name: str) -> bool:
        return any(r.name == name for r in self.runs)

    @property
    def finished(self) -> bool:
        return not any(r.unfinished for r in self.runs)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p% of the values at or below it."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def paced(
    items: Iterable[T],
    rate: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[T]:
    """Yields the n-th item at start + n/rate (an open-loop schedule on a monotonic clock).
    An item that comes late, because the caller was slow, is yielded at once and the
    schedule is kept: the rate is not lowered by a slow system, as a wait-after-each-item
    loop would lower it, hiding the latency a slow system causes. (Rate-limiter libraries,
    token buckets such as pyrate-limiter, cap a rate and let bursts through; a fixed
    schedule is these few lines.)"""
    start = clock()
    for n, item in enumerate(items):
        delay = start + n / rate - clock()
        if delay > 0:
            sleep(delay)
        yield item


def fifo_position(batch: str, n: int, groups: int) -> GroupPosition:
    """The n-th item's (from 0) place when a batch is dealt round-robin over ``groups``
    message groups: every group numbered 1, 2, 3, ... in insert order, without gaps. The
    groups are named after the batch, as the group ledger outlives it."""
    return GroupPosition(f"{batch}-g{n % groups:03d}", FIRST_SEQUENCE + n // groups)


def _item(key: str, position: GroupPosition | None) -> dict:
    item = {"id": {"S": key}, "message": {"S": f"bench {key}"}}
    if position is not None:
        item[GROUP_ATTRIBUTE] = {"S": position.group}
        item[SEQUENCE_ATTRIBUTE] = {"N": str(position.sequence)}
    return item


def _insert(
    clients: Clients, table: str, keys: list[str], rate: float | None, groups: int | None = None
) -> dict[str, float]:
    """Inserts the keys' items, as fast as possible (batches of 25) or one at a time at
    ``rate``, dealt over ``groups`` message groups on a FIFO topic; returns each key's
    wall-clock time just before its insert call."""
    ddb = clients("dynamodb")
    batch = uuid.uuid4().hex[:6]
    items = {key: _item(key, groups and fifo_position(batch, n, groups)) for n, key in enumerate(keys)}
    inserted: dict[str, float] = {}
    if rate is None:

        def stamped() -> Iterator[dict]:
            for key, item in items.items():
                inserted[key] = time.time()  # just before the item joins a write batch
                yield item

        write_items(ddb, table, stamped())
    else:
        for key in paced(keys, rate):
            inserted[key] = time.time()
            ddb.put_item(TableName=table, Item=items[key])
    return inserted


def _wait_finished(clients: Clients, table: str, keys: Iterable[str], timeout: float, label: str) -> dict[str, float]:
    """Each key's finish time (its `updatedAt`), reading only the keys not finished yet; the
    ceiling and the seed record only updatedAt, Disa's items must also be SUCCESSFUL."""
    ddb = clients("dynamodb")
    pending = set(keys)
    finished: dict[str, float] = {}
    total = len(pending)

    def probe() -> int:
        read = get_items(
            ddb,
            table,
            [{"id": {"S": key}} for key in pending],
            ProjectionExpression=f"id, {Field.UPDATED_AT}, #s",
            ExpressionAttributeNames={"#s": Field.STATUS},
        )
        for item in read:
            if Field.UPDATED_AT in item and Status.of(item) in (None, Status.SUCCESSFUL):
                key = item["id"]["S"]
                finished[key] = _epoch(item[Field.UPDATED_AT]["S"])
                pending.discard(key)
        return len(finished)

    report = at_most_every(REPORT_EVERY_SECONDS, lambda done, _: progress(f"  {label}: {done}/{total} done"))
    wait_until(probe, lambda done: done == total, timeout, interval=0.5, on_wait=report)
    return finished


def _measure(clients: Clients, stack: Stack, mode: Mode, count: int, timeout: float) -> Run:
    table = stack.table(clients)
    run_id = uuid.uuid4().hex[:6]
    progress(f"  {stack.label}: warming up with {WARMUP_ITEMS} items")
    warmup = [f"{run_id}-warmup-{n:04d}" for n in range(WARMUP_ITEMS)]
    _insert(clients, table, warmup, None, stack.groups)
    _wait_finished(clients, table, warmup, timeout, f"{stack.label} warm-up")

    keys = [f"{run_id}-{n:06d}" for n in range(count)]
    how = f"at {mode.rate:g} items/s" if mode.rate else "as fast as possible"
    progress(f"  {stack.label}: inserting {count} items {how}")
    inserted = _insert(clients, table, keys, mode.rate, stack.groups)
    finished = _wait_finished(clients, table, keys, timeout, stack.label)
    first = min(inserted.values())
    return Run(
        stack.label,
        len(finished),
        max(finished.values(), default=first) - first,
        [1000 * (finished[k] - inserted[k]) for k in finished],
        count - len(finished),
        max(inserted.values()) - first,
        stack.groups,
    )


def run(
    clients: Clients, modes: Sequence[Mode], count: int, timeout: float, measured: Sequence[Stack] = STACKS
) -> list[Result]:
    """Deploys every benchmarked stack (creating or updating it), then measures each mode on
    each stack in turn."""
    for stack in measured:
        progress(f"== deploy {stack.label} ({stack.name})")
        stack.deploy(clients, stack.name)
    results = []
    for mode in modes:
        progress(f"== {mode.name}" + (f" at {mode.rate:g} items/s" if mode.rate else ""))
        results.append(Result(mode, count, [_measure(clients, s, mode, count, timeout) for s in measured]))
    return results


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _verdict(met: bool) -> str:
    return "met" if met else "not met"


def _ratio_line(subject: str, run: Run, ceiling: Run, target: float | None) -> str:
    ratio = run.throughput / ceiling.throughput if ceiling.throughput else math.nan
    line = f"{subject} throughput is {ratio:.2f} of the ceiling"
    if target is None:
        return line
    return f"{line} (target >= {target:.2f}): {_verdict(not run.unfinished and ratio >= target)}"


def _fifo_line(fifo: Run, standard: Run) -> str:
    ratio = fifo.throughput / standard.throughput if standard.throughput else math.nan
    return (
        f"Disa on a FIFO topic ({fifo.groups} message groups) has {ratio:.2f} of the throughput "
        f"of Disa on a standard topic"
    )


def _p95_line(disa: Run, rate: float) -> str:
    p95 = disa.percentile(95)
    target = f"target <= {P95_TARGET_MS:.0f} ms at {P95_TARGET_RATE:g} items/s"
    line = f"Disa p95 at {rate:g} items/s is {p95:.0f} ms ({target})"
    if rate != P95_TARGET_RATE:
        return f"{line}: not judged at this rate"
    return f"{line}: {_verdict(not disa.unfinished and p95 <= P95_TARGET_MS)}"


def report(results: Sequence[Result]) -> str:
    blocks = []
    for result in results:
        mode = result.mode
        how = f"inserted at {mode.rate:g} items/s" if mode.rate else "inserted as fast as possible"
        lines = [f"{mode.name}: {result.count} items per stack, {how} (stream batch size {BATCH_SIZE})"]
        rows = [
            (
                r.name,
                str(r.items),
                f"{r.seconds:.1f}",
                f"{r.throughput:.1f}",
                *(f"{r.percentile(p):.0f}" for p in (50, 95, 99)),
            )
            for r in result.runs
        ]
        headers = ("stack", "items", "seconds", "items/s", "p50 ms", "p95 ms", "p99 ms")
        lines.append(console.table(rows, headers=headers, right_aligned_from=1))
        disa = result.run("disa")
        if mode.rate is None:
            if result.has("ceiling"):
                ceiling = result.run("ceiling")
                lines.append(_ratio_line("Disa", disa, ceiling, THROUGHPUT_TARGET))
                lines.append(_ratio_line("Seed baseline", result.run("seed"), ceiling, None))
            if result.has("disa-fifo"):
                lines.append(_fifo_line(result.run("disa-fifo"), disa))
        else:
            lines.append(_p95_line(disa, mode.rate))
            for r in result.runs:
                achieved = (result.count - 1) / r.insert_seconds if r.insert_seconds else math.inf
                if achieved < 0.95 * mode.rate:
                    lines.append(f"warning: {r.name}'s inserts fell behind the schedule ({achieved:.1f} items/s)")
        for r in result.runs:
            if r.unfinished:
                lines.append(f"warning: {r.unfinished} {r.name} items did not finish within the timeout")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
