"""`disa demo`: Disa's main job on the local cloud, end to end, with every outcome checked.

Starts the local cloud if needed, deploys the real root stack the way `disa deploy` does on
AWS, subscribes a queue to the topic, sends a batch (one item invalid), reads the messages
back, switches an SNS outage on, sends more, watches them FAIL and the alarm go to ALARM,
switches the outage off, runs the retry job, watches them succeed and the alarm return to
OK, and prints a summary. Exits 0 only if every expected outcome happened.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from disa import faults, items, packaging, stacks
from disa.aws import Clients
from disa.console import progress
from disa.local_cloud import LocalCloud

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


def subscribe_queue(clients: Clients, topic_arn: str, name: str) -> str:
    """An SQS queue subscribed to ``topic_arn`` with raw delivery; returns its URL."""
    sqs, sns = clients("sqs"), clients("sns")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    existing = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    if not any(s["Endpoint"] == arn for s in existing):
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return url


@dataclass
class Outcome:
    expectation: str
    met: bool
    detail: str


@dataclass
class Demo:
    clients: Clients
    cloud: LocalCloud
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    outcomes: list[Outcome] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    alarm_states: list[str] = field(default_factory=list)
    delivered: dict[str, str] = field(default_factory=dict)

    # -- steps --------------------------------------------------------------------------------
    def deploy(self) -> items.StackInfo:
        packaged = packaging.package(self.clients, packaging.default_bucket(self.clients))
        stacks.deploy_disposable(self.clients, STACK, packaged, PARAMETERS)
        info = items.StackInfo.of(self.clients, STACK)
        self.queue_url = subscribe_queue(self.clients, info.topic_arn, SUBSCRIBER_QUEUE)
        return info

    def send(self, info: items.StackInfo, count: int, label: str) -> list[str]:
        keys = []
        for number in range(1, count + 1):
            item = items.build_item(
                f"{label} message {number} of run {self.run_id}",
                f"Disa demo {label}",
                [f"demoRun={self.run_id}", f"batch={label}"],
                None,
                None,
            )
            keys.append(items.show_key(items.send(self.clients, info, item, f"{self.run_id}-{label}-{number}")))
        return keys

    def send_invalid(self, info: items.StackInfo) -> str:
        key = f"{self.run_id}-invalid"
        items.send(self.clients, info, {"message": {"N": "42"}}, key)
        return key

    def statuses(self, info: items.StackInfo, keys: list[str]) -> dict[str, dict[str, Any]]:
        ddb = self.clients("dynamodb")
        found = {}
        for key in keys:
            item = ddb.get_item(TableName=info.table, Key={info.key_name: {"S": key}}, ConsistentRead=True).get(
                "Item", {}
            )
            found[key] = item
        return found

    def wait_for(self, what: str, check: Callable[[], tuple[bool, str]], timeout: float) -> bool:
        started, last_report = time.time(), 0.0
        while True:
            done, state = check()
            elapsed = time.time() - started
            if done:
                progress(f"  {what}: {state} ({elapsed:.1f}s)")
                return True
            if elapsed > timeout:
                progress(f"  {what}: gave up after {timeout:.0f}s ({state})")
                return False
            if elapsed - last_report >= 5:
                progress(f"  waiting for {what}: {state} ({elapsed:.0f}s)")
                last_report = elapsed
            time.sleep(POLL_SECONDS)

    def wait_statuses(self, info: items.StackInfo, keys: list[str], wanted: str, timeout: float = 90) -> bool:
        def check() -> tuple[bool, str]:
            current = [i.get("status", {}).get("S", "-") for i in self.statuses(info, keys).values()]
            return current.count(wanted) == len(keys), f"{current.count(wanted)}/{len(keys)} {wanted}"

        return self.wait_for(f"{len(keys)} items {wanted}", check, timeout)

    def read_deliveries(self) -> None:
        sqs = self.clients("sqs")
        while True:
            batch = sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return
            for message in batch:
                # Identified by body: ministack drops message attributes published by the
                # state machine (docs/engine-differences.md).
                if f"of run {self.run_id}" in message["Body"]:
                    self.delivered[message["MessageId"]] = message["Body"]
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def alarm_state(self, name: str) -> str:
        state = self.clients("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]
        if not self.alarm_states or self.alarm_states[-1] != state:
            self.alarm_states.append(state)
        return state

    def wait_alarm(self, name: str, wanted: str, timeout: float, nudge: Callable[[], None] | None = None) -> bool:
        last_nudge = [0.0]

        def check() -> tuple[bool, str]:
            if nudge and time.time() - last_nudge[0] > 10:
                nudge()
                last_nudge[0] = time.time()
            state = self.alarm_state(name)
            return state == wanted, state

        return self.wait_for(f"alarm {name} {wanted}", check, timeout)

    def expect(self, expectation: str, met: bool, detail: str) -> None:
        self.outcomes.append(Outcome(expectation, met, detail))
        progress(f"  {'ok  ' if met else 'FAIL'} {expectation}: {detail}")


def _phase(demo: Demo, name: str) -> Callable[[], None]:
    progress(f"\n== {name}")
    started = time.time()

    def done() -> None:
        demo.timings[name] = time.time() - started

    return done


def main() -> int:
    cloud = LocalCloud()
    total = time.time()
    progress("== local cloud")
    started = cloud.up()
    progress(f"  {'started' if started else 'already running'} at {cloud.endpoint}")
    clients = cloud.clients()
    demo = Demo(clients, cloud)

    done = _phase(demo, "package and deploy the root stack")
    info = demo.deploy()
    done()
    failures_alarm, abandoned_alarm = info.alarms[0], info.alarms[1]
    snapshots = cloud.home / "faults"
    faults.sns_outage(clients, info, False, snapshots)  # a previous run may have stopped mid-outage

    done = _phase(demo, f"send {BATCH} items and 1 invalid item")
    items.run_retry(clients, info)  # its zero datum moves new alarms out of INSUFFICIENT_DATA
    demo.alarm_state(failures_alarm)
    keys = demo.send(info, BATCH, "first")
    invalid = demo.send_invalid(info)
    demo.expect(
        f"{BATCH} valid items SUCCESSFUL", demo.wait_statuses(info, keys, "SUCCESSFUL"), "read back from the table"
    )
    demo.wait_statuses(info, [invalid], "REJECTED", timeout=30)
    rejected = demo.statuses(info, [invalid])[invalid]
    demo.expect(
        "invalid item REJECTED with a reason",
        rejected.get("status", {}).get("S") == "REJECTED",
        rejected.get("statusReason", {}).get("S", "no reason recorded"),
    )
    demo.read_deliveries()
    demo.expect(
        f"{BATCH} messages received by the subscriber queue",
        len(demo.delivered) == BATCH,
        f"{len(demo.delivered)} received",
    )
    done()

    done = _phase(demo, f"SNS outage: send {OUTAGE_BATCH} more")
    progress("  " + faults.sns_outage(clients, info, True, snapshots))
    outage_keys = demo.send(info, OUTAGE_BATCH, "outage")
    demo.expect(
        f"{OUTAGE_BATCH} items FAILED during the outage",
        demo.wait_statuses(info, outage_keys, "FAILED"),
        next(iter(demo.statuses(info, outage_keys[:1]).values())).get("lastError", {}).get("S", "-"),
    )
    demo.expect("failure alarm in ALARM", demo.wait_alarm(failures_alarm, "ALARM", 60), demo.alarm_states[-1])
    done()

    done = _phase(demo, "recovery: outage off, retry job")
    progress("  " + faults.sns_outage(clients, info, False, snapshots))
    time.sleep(2)  # the demo stack's retry delay is 1-2 s

    def retry_until_delivered() -> tuple[bool, str]:
        statuses = [i.get("status", {}).get("S") for i in demo.statuses(info, outage_keys).values()]
        if statuses.count("SUCCESSFUL") < len(outage_keys):
            report = items.run_retry(clients, info)
            progress(f"  retry job: {report['started']} started, {report['due']} due")
        return statuses.count("SUCCESSFUL") == len(outage_keys), f"{statuses.count('SUCCESSFUL')}/{len(outage_keys)}"

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
    progress("  the failure alarm returns to OK once a period passes with only the retry job's zero datum")
    demo.expect(
        "failure alarm back to OK",
        demo.wait_alarm(failures_alarm, "OK", 150, nudge=lambda: items.run_retry(clients, info)),
        " -> ".join(demo.alarm_states),
    )
    done()

    _summary(demo, info, keys + outage_keys + [invalid], failures_alarm, abandoned_alarm, time.time() - total)
    failed = [o for o in demo.outcomes if not o.met]
    for outcome in failed:
        progress(f"disa demo: expected outcome did not happen: {outcome.expectation} ({outcome.detail})")
    return 1 if failed else 0


def _summary(
    demo: Demo, info: items.StackInfo, keys: list[str], failures_alarm: str, abandoned_alarm: str, total: float
) -> None:
    counts: dict[str, int] = {}
    for item in demo.statuses(info, keys).values():
        status = item.get("status", {}).get("S", "NO STATUS")
        counts[status] = counts.get(status, 0) + 1
    rows = [
        *[(f"items {status}", str(n)) for status, n in sorted(counts.items())],
        ("messages delivered to the subscriber", str(len(demo.delivered))),
        (f"alarm {failures_alarm}", " -> ".join(demo.alarm_states)),
        (
            f"alarm {abandoned_alarm}",
            demo.clients("cloudwatch").describe_alarms(AlarmNames=[abandoned_alarm])["MetricAlarms"][0]["StateValue"],
        ),
        *[(f"time: {phase}", f"{seconds:.1f}s") for phase, seconds in demo.timings.items()],
        ("time: total", f"{total:.1f}s"),
        ("expected outcomes met", f"{sum(o.met for o in demo.outcomes)}/{len(demo.outcomes)}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\nDisa demo, run {demo.run_id}")
    for name, value in rows:
        print(f"  {name.ljust(width)}  {value}")
