"""`disa demo`: Disa's main job on the local cloud, end to end, with every outcome checked.

Starts the local cloud if needed, deploys the real root stack the way `disa deploy` does on AWS
(its dashboard included, checked to show every alarm) and two subscribers the way `disa
subscribe` does (`audit`, a queue; `orders`, the sample consumer), sends a batch (one item
invalid) and seed 002's orders (a quarter of them poison pills), reads the messages back,
switches an SNS outage on, sends more, watches them FAIL and the alarm go to ALARM, switches
the outage off, runs the retry job, watches them succeed and the alarm return to OK; sends a
300 KB message in its item and a 5 MB one from S3 and reads both back byte-exact through their
pointers; then checks the orders (good ones processed once, poison pills in the dead-letter
queue), deploys the fixed consumer, redrives, checks each poison pill was processed once,
delivers a duplicate and checks it was not processed again, and prints a summary and the
latency of each stage. Exits 0 only if every expected outcome happened.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from disa_lambda.consumer import stages
from disa_lambda.consumer.payloads import PayloadReader
from disa_lambda.models.status import NO_STATUS, Field, Status

from disa.common import console
from disa.common.aws import Clients
from disa.common.aws_helpers import (
    alarm_state,
    as_consumed,
    at_most_every,
    get_item,
    received_messages,
    wait_until,
)
from disa.common.console import progress
from disa.deploy import packaging, stacks
from disa.deploy.subscribers import Subscription, subscribe
from disa.drills import orders
from disa.drills.faults import TopicRemovalOutage
from disa.local_cloud.engine import LocalCloud
from disa.operate import items, redrive
from disa.operate.retry_job import run_retry
from disa.operate.stack import StackInfo
from disa.operate.subscribers import SubscriberInfo, depth, latency

STACK = "disa-demo"
# Short retry delays so the demo's failed items are due within seconds, not minutes.
PARAMETERS = {
    "NamePrefix": STACK,
    "TableDeletionProtection": "false",
    "RetryBaseDelaySeconds": "1",
    "RetryMaxDelaySeconds": "5",
    "MaxAttempts": "5",
    # One failing minute raises the publish-failures alarm, so the demo shows it within its
    # outage; a deployment keeps the default 3 of 5 (README, "Alarms").
    "PublishFailureDatapoints": "1",
    "PublishFailurePeriods": "1",
}
# `audit` keeps every message for the demo to read; `orders` runs the sample consumer.
AUDIT = Subscription(name="audit")
ORDERS, FIXED_HANDLER = orders.SUBSCRIPTION, orders.FIXED_HANDLER
BATCH, OUTAGE_BATCH, ORDERS_SENT = 10, 5, 12
# A body in the item above SNS's 256 KiB, and one only S3 can hold, named by its item.
LARGE_IN_ITEM_BYTES, LARGE_OBJECT_BYTES = 300_000, 5 * 1024 * 1024
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
    large_copies: list[dict[str, Any]] = field(default_factory=list)
    order_copies: dict[str, dict[str, Any]] = field(default_factory=dict)

    subscribers: dict[str, SubscriberInfo] = field(default_factory=dict)
    orders_sent: list[orders.Order] = field(default_factory=list)
    orders_since: float = 0.0
    redriven: redrive.RedriveReport | None = None
    latency: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def deploy(cls, clients: Clients) -> Demo:
        bucket = packaging.default_bucket(clients)
        packaged = packaging.package(clients, bucket)
        stacks.deploy(clients, STACK, packaged, PARAMETERS)
        info = StackInfo.of(clients, STACK)
        for request in (AUDIT, ORDERS):
            progress(f"  subscriber {request.name}")
            subscribe(clients, info, request, bucket)
        found = {name: SubscriberInfo.of(clients, STACK, name) for name in (AUDIT.name, ORDERS.name)}
        return cls(clients, info, found[AUDIT.name].queue.url, subscribers=found)

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
        """Keep this run's messages, known by the ``demoRun`` attribute each item carried,
        and a copy of each of this run's orders (for the duplicate-delivery step)."""
        for message in received_messages(self.clients("sqs"), self.queue_url, wait_seconds=1):
            attributes = {name: a.get("StringValue") for name, a in message.get("MessageAttributes", {}).items()}
            if attributes.get("demoRun") == self.run_id and attributes.get("batch") == "large":
                self.large_copies.append(message)
            elif attributes.get("demoRun") == self.run_id:
                self.delivered[message["MessageId"]] = message["Body"]
                self.delivered_attributes[message["MessageId"]] = attributes
            elif attributes.get("run") == self.run_id:
                self.order_copies[orders.order_id_of(message)] = message

    # -- large messages -------------------------------------------------------------------
    def send_large(self) -> dict[str, bytes]:
        """A 300 KB body in its item, and a 5 MB body uploaded to the payload bucket's
        incoming/ first and named by its item (messageObject); their keys and bodies."""
        text = f"large body of run {self.run_id} ✓ ".encode()
        in_item = (text * (LARGE_IN_ITEM_BYTES // len(text) + 1))[:LARGE_IN_ITEM_BYTES].decode("utf-8", "ignore")
        in_object = (text * (LARGE_OBJECT_BYTES // len(text) + 1))[:LARGE_OBJECT_BYTES].decode("utf-8", "ignore")
        upload = f"incoming/{self.run_id}/report.txt"
        self.clients("s3").put_object(Bucket=self.info.payload_bucket, Key=upload, Body=in_object.encode())
        tags = {"attributes": {"M": {"demoRun": {"S": self.run_id}, "batch": {"S": "large"}}}}
        reference = {"M": {"bucket": {"S": self.info.payload_bucket}, "key": {"S": upload}}}
        sent = {
            f"{self.run_id}-large-item": ({"message": {"S": in_item}, **tags}, in_item),
            f"{self.run_id}-large-object": ({"messageObject": reference, **tags}, in_object),
        }
        for key, (item, _) in sent.items():
            items.send(self.clients, self.info, item, key)
        return {key: body.encode() for key, (_, body) in sent.items()}

    def check_large(self, bodies: dict[str, bytes]) -> None:
        self.expect(
            "the 300 KB and 5 MB messages SUCCESSFUL", self.wait_statuses(list(bodies), Status.SUCCESSFUL), "via S3"
        )
        self.read_deliveries()
        reader = PayloadReader(frozenset({self.info.payload_bucket}), None, self.clients("s3"))
        read = [as_consumed(reader, m) for m in self.large_copies]
        pointers = sum(m.stored_at is not None for m in read)
        self.expect(
            "both arrive as extended-client pointers and read back byte-exact",
            pointers == 2 and sorted(m.body.encode() for m in read) == sorted(bodies.values()),
            f"{pointers} pointers, {', '.join(f'{len(m.body.encode()):,} B' for m in read)} read from S3",
        )

    # -- the orders subscriber ----------------------------------------------------------------
    @property
    def orders_subscriber(self) -> SubscriberInfo:
        return self.subscribers[ORDERS.name]

    def send_orders(self) -> None:
        self.orders_since = time.time()
        self.orders_sent = orders.orders(self.run_id, ORDERS_SENT)
        orders.send_orders(self.clients, self.info, self.run_id, self.orders_sent)

    def processed(self, since: float) -> Counter[str]:
        assert self.orders_subscriber.consumer_function
        return orders.processed_orders(self.clients, self.orders_subscriber.consumer_function, since)

    def dead_letters(self) -> set[str]:
        return {orders.order_id_of(m) for m in orders.peek(self.clients, self.orders_subscriber.dead_letter.url, 0)}

    def check_orders(self) -> None:
        good = {o.key for o in self.orders_sent if not o.poison}
        poison = {o.key for o in self.orders_sent if o.poison}

        def settled() -> tuple[bool, str]:
            processed, dead = set(self.processed(self.orders_since)), self.dead_letters()
            state = f"{len(processed & good)}/{len(good)} processed, {len(dead & poison)}/{len(poison)} dead-lettered"
            return processed >= good and dead >= poison, state

        self.wait_for("orders settled", settled, 120)
        processed = self.processed(self.orders_since)
        self.expect(
            f"{len(good)} good orders processed once each by the orders consumer",
            processed == Counter(dict.fromkeys(good, 1)),
            f"{sum(processed.values())} processings of {len(processed)} orders",
        )
        dead = self.dead_letters()
        self.expect(
            f"{len(poison)} poison pills (no store_id) in the dead-letter queue after 2 receives",
            dead == poison,
            f"{len(dead)} dead letters",
        )

    def redrive_with_fixed_consumer(self, bucket: str) -> None:
        poison = {o.key for o in self.orders_sent if o.poison}
        progress(f"  deploying the fixed consumer ({FIXED_HANDLER})")
        subscribe(self.clients, self.info, replace(ORDERS, handler=FIXED_HANDLER), bucket)
        since = time.time()
        subscriber = self.orders_subscriber
        self.redriven = redrive.redrive(self.clients, subscriber.dead_letter, subscriber.queue, rate=None)
        self.expect(
            f"redrive moved the {len(poison)} poison pills back to the orders queue",
            (self.redriven.moved, self.redriven.failed) == (len(poison), 0),
            f"{self.redriven.mode}: {self.redriven.moved} moved, {self.redriven.failed} failed",
        )

        def reprocessed() -> tuple[bool, str]:
            processed = set(self.processed(since))
            return processed >= poison, f"{len(processed & poison)}/{len(poison)}"

        self.wait_for("redriven orders processed", reprocessed, 60)
        time.sleep(3)  # a second processing would show within a receive
        processed = self.processed(since)
        self.expect(
            "each redriven order processed once",
            processed == Counter(dict.fromkeys(poison, 1)) and not self.dead_letters(),
            f"{sum(processed.values())} processings of {len(processed)} orders, dead-letter queue empty",
        )

    def deliver_duplicate(self) -> None:
        """Send the orders queue a second copy of a processed order, as SNS's at-least-once
        delivery or a second publish of one insert would; the consumer must skip it."""
        order = next(o.key for o in self.orders_sent if not o.poison and o.key in self.order_copies)
        copy = self.order_copies[order]
        since = time.time()
        queue = self.orders_subscriber.queue
        self.clients("sqs").send_message(
            QueueUrl=queue.url, MessageBody=copy["Body"], MessageAttributes=copy["MessageAttributes"]
        )

        def consumed() -> tuple[bool, str]:
            counts = depth(self.clients, queue)
            return sum(counts.values()) == 0, f"{counts['waiting']} waiting, {counts['in flight']} in flight"

        self.wait_for("the duplicate consumed", consumed, 60)
        time.sleep(2)  # its log line, if it had been processed, lands within a second
        again = self.processed(since)[order]
        self.expect("a duplicate delivery of one insert is not processed again", again == 0, f"processed {again} times")

    def measure_latency(self) -> None:
        expected = [stage.label for stage in stages.STAGES if stage not in stages.ENVELOPE_ONLY]

        def measured() -> tuple[bool, str]:
            self.latency = latency(self.clients, self.orders_subscriber, minutes=15)
            found = [row["stage"] for row in self.latency]
            return found == expected, f"{len(found)}/{len(expected)} stages"

        self.expect(
            "latency measured for every stage (raw delivery)",
            self.wait_for("latency metrics", measured, 30),
            f"{min((row['messages'] for row in self.latency), default=0)}+ messages per stage",
        )

    def dashboard_charts_every_alarm(self) -> tuple[bool, str]:
        """The stack's dashboard is deployed, and its alarm widget shows every alarm the stack lists."""
        body = json.loads(self.clients("cloudwatch").get_dashboard(DashboardName=self.info.dashboard)["DashboardBody"])
        charted = sorted(
            arn.rsplit(":", 1)[-1]
            for widget in body["widgets"]
            if widget["type"] == "alarm"
            for arn in widget["properties"]["alarms"]
        )
        metric_widgets = sum(widget["type"] == "metric" for widget in body["widgets"])
        met = bool(self.info.dashboard) and charted == sorted(self.info.alarm_names)
        return met, f"{self.info.dashboard}: {metric_widgets} charts, {len(charted)} alarms"

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

    with _Phase(timings, "package and deploy the root stack and 2 subscribers"):
        demo = Demo.deploy(clients)
    info = demo.info
    outage = TopicRemovalOutage(clients("sns"), info.topic_arn, cloud.fault_snapshots)
    outage.off()  # a previous run may have stopped mid-outage

    demo.expect("dashboard deployed, showing every alarm", *demo.dashboard_charts_every_alarm())
    with _Phase(timings, f"send {BATCH} items, 1 invalid item and {ORDERS_SENT} orders"):
        run_retry(clients, info)  # its zero datum moves new alarms out of INSUFFICIENT_DATA
        demo.alarm_state(info.publish_failures_alarm)
        keys = demo.send(BATCH, "first")
        invalid = demo.send_invalid()
        demo.send_orders()  # checked after the recovery phase: their poison pills need two receives
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

    with _Phase(timings, "large messages: 300 KB in the item, 5 MB from S3"):
        demo.check_large(demo.send_large())

    with _Phase(timings, "subscribers: poison pills, redrive, duplicate"):
        demo.check_orders()
        demo.redrive_with_fixed_consumer(packaging.default_bucket(clients))
        demo.deliver_duplicate()
        demo.measure_latency()

    large_keys = [f"{demo.run_id}-large-item", f"{demo.run_id}-large-object"]
    print(summary(demo, keys + outage_keys + [invalid] + large_keys, timings, time.time() - total))
    failed = [o for o in demo.outcomes if not o.met]
    for outcome in failed:
        progress(f"disa demo: expected outcome did not happen: {outcome.expectation} ({outcome.detail})")
    return 1 if failed else 0


def summary(demo: Demo, keys: list[str], timings: dict[str, float], total: float) -> str:
    counts = Counter(str(status or NO_STATUS) for status in demo.statuses(keys))
    abandoned_alarm = demo.info.abandoned_items_alarm
    poison = sum(o.poison for o in demo.orders_sent)
    redriven = demo.redriven
    rows = [
        *[(f"items {status}", str(n)) for status, n in sorted(counts.items())],
        ("messages delivered to the audit subscriber", str(len(demo.delivered))),
        ("large messages read back byte-exact from S3", str(len(demo.large_copies))),
        ("orders processed once / poison pills", f"{len(demo.orders_sent) - poison} / {poison}"),
        (
            "poison pills redriven and processed once",
            f"{redriven.moved if redriven else 0} ({redriven.mode if redriven else '-'})",
        ),
        (f"alarm {demo.info.publish_failures_alarm}", " -> ".join(demo.alarm_states)),
        (f"alarm {abandoned_alarm}", alarm_state(demo.clients("cloudwatch"), abandoned_alarm)),
        *[(f"time: {phase}", f"{seconds:.1f}s") for phase, seconds in timings.items()],
        ("time: total", f"{total:.1f}s"),
        ("expected outcomes met", f"{sum(o.met for o in demo.outcomes)}/{len(demo.outcomes)}"),
    ]
    text = f"\nDisa demo, run {demo.run_id}\n{console.table(rows, indent=2)}"
    if demo.latency:
        table = [[row["stage"], row["messages"], *(row[p] for p in stages.PERCENTILES)] for row in demo.latency]
        headers = ["stage (orders subscriber)", "messages", *(f"{p} ms" for p in stages.PERCENTILES)]
        text += "\n\n" + console.table(table, headers=headers, indent=2, right_aligned_from=1)
    return text
