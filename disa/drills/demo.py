"""`disa demo`: Disa's main job on the local cloud, end to end, with every outcome checked.

Starts the local cloud if needed, deploys the real root stack the way `disa deploy` does on
AWS, subscribes a queue to the topic, sends a batch (one item invalid), reads the messages
back, switches an SNS outage on, sends more, watches them FAIL and the alarm go to ALARM,
switches the outage off, runs the retry job, watches them succeed and the alarm return to
OK, and prints a summary. Exits 0 only if every expected outcome happened.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from disa_lambda.models.status import NO_STATUS, Field, Status

from disa.common import console
from disa.common.aws import Clients
from disa.common.aws_helpers import (
    alarm_state,
    at_most_every,
    get_item,
    received_messages,
    subscribe_queue,
    wait_until,
)
from disa.common.console import progress
from disa.deploy import packaging, stacks
from disa.drills.faults import TopicRemovalOutage
from disa.local_cloud.engine import LocalCloud
from disa.operate import items
from disa.operate.retry_job import run_retry
from disa.operate.stack import StackInfo

STACK = "disa-demo"
# Short retry delays so the demo's failed items are due within seconds, not minutes.
PARAMETERS = {
    "NamePrefix": STACK,
    "TableDeletionProtection": "false",
    "RetryBaseDelaySeconds": "1",
    "RetryMaxDelaySeconds": "5",
    "MaxAttempts": "5",
}
SUBSCRIBER_QUEUE = f"{STACK}-subscriber"
BATCH, OUTAGE_BATCH = 10, 5
POLL_SECONDS = 1.0
REPORT_EVERY_SECONDS = 5


@dataclass
class Outcome:
    expectation: str
    met: bool
    detail: str


@dataclass
class Demo:
    clients: Clients
    info: StackInfo
    queue_url: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    outcomes: list[Outcome] = field(default_factory=list)
    alarm_states: list[str] = field(default_factory=list)
    delivered: dict[str, str] = field(default_factory=dict)
    delivered_attributes: dict[str, dict[str, str | None]] = field(default_factory=dict)

    @classmethod
    def deploy(cls, clients: Clients) -> Demo:
        packaged = packaging.package(clients, packaging.default_bucket(clients))
        stacks.deploy(clients, STACK, packaged, PARAMETERS)
        info = StackInfo.of(clients, STACK)
        return cls(clients, info, subscribe_queue(clients("sqs"), clients("sns"), info.topic_arn, SUBSCRIBER_QUEUE))

    # -- steps --------------------------------------------------------------------------------
    def send(self, count: int, label: str) -> list[str]:
        keys = []
        for number in range(1, count + 1):
            item = items.build_item(
                f"{label} message {number} of run {self.run_id}",
                f"Disa demo {label}",
                [f"demoRun={self.run_id}", f"batch={label}"],
                None,
                None,
            )
            key = items.send(self.clients, self.info, item, f"{self.run_id}-{label}-{number}")
            keys.append(items.show_key(key))
        return keys

    def send_invalid(self) -> str:
        key = f"{self.run_id}-invalid"
        items.send(self.clients, self.info, {"message": {"N": "42"}}, key)
        return key

    def stored(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        ddb = self.clients("dynamodb")
        return {key: get_item(ddb, self.info.table, {self.info.key_name: {"S": key}}) for key in keys}

    def statuses(self, keys: list[str]) -> list[Status | None]:
        return [Status.of(item) for item in self.stored(keys).values()]

    def wait_for(self, what: str, check: Callable[[], tuple[bool, str]], timeout: float) -> bool:
        """Poll ``check`` (done?, state shown to people) until done or ``timeout``."""
        started = time.time()
        report = at_most_every(
            REPORT_EVERY_SECONDS,
            lambda result, elapsed: progress(f"  waiting for {what}: {result[1]} ({elapsed:.0f}s)"),
        )
        done, state = wait_until(check, lambda result: result[0], timeout, POLL_SECONDS, on_wait=report)
        outcome = state if done else f"gave up after {timeout:.0f}s ({state})"
        progress(f"  {what}: {outcome} ({time.time() - started:.1f}s)")
        return done

    def wait_statuses(self, keys: list[str], wanted: Status, timeout: float = 90) -> bool:
        def check() -> tuple[bool, str]:
            reached = self.statuses(keys).count(wanted)
            return reached == len(keys), f"{reached}/{len(keys)} {wanted}"

        return self.wait_for(f"{len(keys)} items {wanted}", check, timeout)

    def read_deliveries(self) -> None:
        """Keep this run's messages, known by the ``demoRun`` attribute each item carried."""
        for message in received_messages(self.clients("sqs"), self.queue_url, wait_seconds=1):
            attributes = {name: a.get("StringValue") for name, a in message.get("MessageAttributes", {}).items()}
            if attributes.get("demoRun") == self.run_id:
                self.delivered[message["MessageId"]] = message["Body"]
                self.delivered_attributes[message["MessageId"]] = attributes

    def attributes_intact(self) -> tuple[bool, str]:
        """Every delivered message carries the attributes its item was sent with."""
        batches = Counter(attributes.get("batch") for attributes in self.delivered_attributes.values())
        intact = sum(batches.values()) == len(self.delivered) and set(batches) <= {"first", "outage"}
        return intact, ", ".join(f"batch={name}: {n}" for name, n in sorted(batches.items(), key=str))

    def alarm_state(self, name: str) -> str:
        """The alarm's state now, remembered when it changed."""
        state = alarm_state(self.clients("cloudwatch"), name)
        if not self.alarm_states or self.alarm_states[-1] != state:
            self.alarm_states.append(state)
        return state

    def wait_alarm(self, name: str, wanted: str, timeout: float) -> bool:
        def check() -> tuple[bool, str]:
            state = self.alarm_state(name)
            return state == wanted, state

        return self.wait_for(f"alarm {name} {wanted}", check, timeout)

    def expect(self, expectation: str, met: bool, detail: str) -> None:
        self.outcomes.append(Outcome(expectation, met, detail))
        progress(f"  {'ok  ' if met else 'FAIL'} {expectation}: {detail}")


class _Phase:
    """Times one phase of the demo into ``demo.timings``."""

    def __init__(self, timings: dict[str, float], name: str) -> None:
        self.timings, self.name = timings, name

    def __enter__(self) -> None:
        progress(f"\n== {self.name}")
        self.started = time.time()

    def __exit__(self, *_: object) -> None:
        self.timings[self.name] = time.time() - self.started


def main() -> int:
    cloud = LocalCloud()
    total = time.time()
    progress("== local cloud")
    started = cloud.up()
    progress(f"  {'started' if started else 'already running'} at {cloud.endpoint}")
    clients = cloud.clients()
    timings: dict[str, float] = {}

    with _Phase(timings, "package and deploy the root stack"):
        demo = Demo.deploy(clients)
    info = demo.info
    outage = TopicRemovalOutage(clients("sns"), info.topic_arn, cloud.fault_snapshots)
    outage.off()  # a previous run may have stopped mid-outage

    with _Phase(timings, f"send {BATCH} items and 1 invalid item"):
        run_retry(clients, info)  # its zero datum moves new alarms out of INSUFFICIENT_DATA
        demo.alarm_state(info.publish_failures_alarm)
        keys = demo.send(BATCH, "first")
        invalid = demo.send_invalid()
        demo.expect(
            f"{BATCH} valid items SUCCESSFUL", demo.wait_statuses(keys, Status.SUCCESSFUL), "read back from the table"
        )
        demo.wait_statuses([invalid], Status.REJECTED, timeout=30)
        rejected = demo.stored([invalid])[invalid]
        demo.expect(
            "invalid item REJECTED with a reason",
            Status.of(rejected) is Status.REJECTED,
            rejected.get(Field.STATUS_REASON, {}).get("S", "no reason recorded"),
        )
        demo.read_deliveries()
        demo.expect(
            f"{BATCH} messages received by the subscriber queue",
            len(demo.delivered) == BATCH,
            f"{len(demo.delivered)} received",
        )

    with _Phase(timings, f"SNS outage: send {OUTAGE_BATCH} more"):
        progress("  " + outage.on())
        outage_keys = demo.send(OUTAGE_BATCH, "outage")
        demo.expect(
            f"{OUTAGE_BATCH} items FAILED during the outage",
            demo.wait_statuses(outage_keys, Status.FAILED),
            demo.stored(outage_keys[:1])[outage_keys[0]].get(Field.LAST_ERROR, {}).get("S", "-"),
        )
        demo.expect(
            "failure alarm in ALARM", demo.wait_alarm(info.publish_failures_alarm, "ALARM", 60), demo.alarm_states[-1]
        )

    with _Phase(timings, "recovery: outage off, retry job"):
        progress("  " + outage.off())
        time.sleep(2)  # the demo stack's retry delay is 1-2 s

        def retry_until_delivered() -> tuple[bool, str]:
            successful = demo.statuses(outage_keys).count(Status.SUCCESSFUL)
            if successful < len(outage_keys):
                report = run_retry(clients, info)
                progress(f"  retry job: {report['started']} started, {report['due']} due")
            return successful == len(outage_keys), f"{successful}/{len(outage_keys)}"

        demo.expect(
            f"{OUTAGE_BATCH} failed items SUCCESSFUL after the retry job",
            demo.wait_for("retried items SUCCESSFUL", retry_until_delivered, 90),
            "attempt 2",
        )
        demo.read_deliveries()
        demo.expect(
            f"{BATCH + OUTAGE_BATCH} messages received in all",
            len(demo.delivered) == BATCH + OUTAGE_BATCH,
            f"{len(demo.delivered)} received",
        )
        demo.expect("every message carries its item's attributes", *demo.attributes_intact())
        progress("  the failure alarm returns to OK once a period passes without failures")
        demo.expect(
            "failure alarm back to OK",
            demo.wait_alarm(info.publish_failures_alarm, "OK", 150),
            " -> ".join(demo.alarm_states),
        )

    print(summary(demo, keys + outage_keys + [invalid], timings, time.time() - total))
    failed = [o for o in demo.outcomes if not o.met]
    for outcome in failed:
        progress(f"disa demo: expected outcome did not happen: {outcome.expectation} ({outcome.detail})")
    return 1 if failed else 0


def summary(demo: Demo, keys: list[str], timings: dict[str, float], total: float) -> str:
    counts = Counter(str(status or NO_STATUS) for status in demo.statuses(keys))
    abandoned_alarm = demo.info.abandoned_items_alarm
    rows = [
        *[(f"items {status}", str(n)) for status, n in sorted(counts.items())],
        ("messages delivered to the subscriber", str(len(demo.delivered))),
        (f"alarm {demo.info.publish_failures_alarm}", " -> ".join(demo.alarm_states)),
        (f"alarm {abandoned_alarm}", alarm_state(demo.clients("cloudwatch"), abandoned_alarm)),
        *[(f"time: {phase}", f"{seconds:.1f}s") for phase, seconds in timings.items()],
        ("time: total", f"{total:.1f}s"),
        ("expected outcomes met", f"{sum(o.met for o in demo.outcomes)}/{len(demo.outcomes)}"),
    ]
    return f"\nDisa demo, run {demo.run_id}\n{console.table(rows, indent=2)}"
