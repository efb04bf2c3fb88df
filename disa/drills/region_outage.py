"""`disa drill region-outage`: a two-region deployment on the local cloud loses its primary's
pipeline while orders flow into the primary's table, fails over, gets the primary back, and
fails back, orders flowing all along; then a census of what that cost.

The phases, each at a share of the orders inserted (one producer, a steady rate):
  1/4  cut: the primary's trigger mapping, retry schedule and consumer mappings are disabled
       (its table still takes writes, which replicate); what it published last waits in
       both regions' queues, unconsumed in the primary
  2/4  `disa failover --to SECONDARY` (the same code as the command)
  3/4  the primary's pipeline comes back (trigger and schedule enabled): it does not own,
       so it must write and publish nothing
  3/4  `disa failover --to PRIMARY` once it is back: the failback, orders still flowing
The census: every order ends SUCCESSFUL and is processed by a consumer (lost 0); no order
is processed twice by the consumers of both regions together (processed twice 0); orders
published twice, with the cause of each, against their bound (the orders the old owner had
PENDING when publishing moved: only those can have been published by both); the time each
failover took and the time until the orders it found unfinished were published.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from disa_lambda.models.status import Field, Status

from disa.common import console
from disa.common.aws import Clients
from disa.common.aws_helpers import get_items, received_messages, wait_until
from disa.common.console import progress
from disa.common.errors import UserError
from disa.deploy import regions as region_deploy
from disa.deploy.subscribers import Subscription, subscribe_in_both_regions
from disa.drills import orders
from disa.operate import regions as ownership
from disa.operate import subscribers as subscriber_stacks
from disa.operate.retry_job import run_retry
from disa.operate.stack import StackInfo

STACK = "disa-regions"
PRIMARY, SECONDARY = "us-east-1", "us-west-2"
PARAMETERS = {
    "NamePrefix": STACK,
    "TableDeletionProtection": "false",
    "RetryBaseDelaySeconds": "1",
    "RetryMaxDelaySeconds": "5",
    "MaxAttempts": "10",
    # As in `disa chaos`: the local engine does not resume stream mappings after a restart,
    # so on an engine restarted since the deploy only the sweep takes new orders in; with one
    # segment and 20 s of grace it does so within the drill's settling.
    "SweepSegments": "1",
    "SweepGraceSeconds": "20",
}
# Every order the consumers must process once; no poison pill here (the demo covers those).
ORDERS = Subscription(
    name="orders",
    handler="orders.handler",
    code=orders.SUBSCRIPTION.code,
    parameters={"ConsumerTimeoutSeconds": "3"},
)
# Keeps each copy with SNS's envelope (its MessageId and TopicArn): one copy per publish,
# from either region's topic, is how the census counts publishes.
AUDIT = Subscription(name="audit", parameters={"RawMessageDelivery": "false"})
DEFAULT_ORDERS, DEFAULT_RATE = 400, 10.0
# Each phase lasts at least this long before the next begins, so the region that owns after
# a move publishes and consumes for a while (a move can take longer than a quarter of a run).
DWELL_SECONDS = 8.0
CONSUMER_WAIT_SECONDS = 120
SETTLE_SECONDS = 600


@dataclass
class Phase:
    name: str
    at: float  # seconds since the first insert
    detail: str = ""
    wall: float = 0.0  # epoch seconds, to compare with SNS's Timestamp


@dataclass
class RegionOutageResult:
    inserted: int
    statuses: Counter[str]
    lost: list[str]
    processed_twice: list[str]
    published_twice: dict[str, str]  # order -> cause
    bound: int
    bound_detail: str
    processed_by: dict[str, int]
    published_by: dict[str, int]
    duplicates_skipped_note: str
    phases: list[Phase]
    failover_seconds: float
    failback_seconds: float
    caught_up_seconds: dict[str, float]  # move -> seconds until every order inserted before it was published
    # Publishes by a region while it did not own: after its failover had ended and before
    # the failback began (the primary), or outside that span (the secondary).
    passive_publishes: list[str]
    settled: bool
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            self.settled
            and not self.lost
            and not self.processed_twice
            and len(self.published_twice) <= self.bound
            and not self.passive_publishes
            and all(cause.endswith("PENDING when publishing moved") for cause in self.published_twice.values())
        )


class Drill:
    def __init__(self, clients: Clients, count: int, rate: float, log: Callable[[str], None] = progress) -> None:
        self.primary, self.secondary = clients.in_region(PRIMARY), clients.in_region(SECONDARY)
        self.count, self.rate, self.log = count, rate, log
        self.run_id = uuid.uuid4().hex[:8]
        self.keys: list[str] = []
        self.phases: list[Phase] = []
        self.started = 0.0
        self.pending_at_move: dict[str, set[str]] = {}
        self._infos: dict[str, StackInfo] = {}

    # -- set-up ---------------------------------------------------------------------------
    def deploy(self) -> None:
        pair = region_deploy.RegionPair(PRIMARY, SECONDARY)
        region_deploy.deploy(self.primary, STACK, pair, PARAMETERS, None, self.log)
        current = ownership.read_ownership(self.primary, self.info(self.primary).ownership_table, PRIMARY)
        if current.owner != PRIMARY:  # a drill stopped half way left the secondary owning
            ownership.failover(self.primary, STACK, PRIMARY, log=self.log)
        for request in (ORDERS, AUDIT):
            subscribe_in_both_regions(self.primary, STACK, request, None, self.log)
            self._check_subscribed(request.name)
        self._drain_audit()

    def _check_subscribed(self, name: str) -> None:
        """Each topic delivers to the subscriber's queue in both regions (a subscriber stack
        outlives a Disa stack deleted under it, but not its subscriptions)."""
        queues = {self.subscriber(clients, name).queue.arn for clients in (self.primary, self.secondary)}
        for clients in (self.primary, self.secondary):
            topic = self.info(clients).topic_arn
            listed = clients("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
            if not queues <= {subscription["Endpoint"] for subscription in listed}:
                raise UserError(
                    f"subscriber {name} lost its subscriptions to {topic} (the stack was deleted and created again "
                    f"under it): run `disa unsubscribe {name} --local --stack {STACK} --discard`, then the drill again"
                )

    def info(self, clients: Clients) -> StackInfo:
        """The stack's outputs in that region, read once (they do not change during a run)."""
        if clients.region not in self._infos:
            self._infos[clients.region] = StackInfo.of(clients, STACK)
        return self._infos[clients.region]

    def subscriber(self, clients: Clients, name: str) -> subscriber_stacks.SubscriberInfo:
        return subscriber_stacks.SubscriberInfo.of(clients, STACK, name)

    # -- the primary's pipeline, cut and restored ------------------------------------------
    def set_pipeline(self, clients: Clients, enabled: bool) -> None:
        info, aws_lambda, events = self.info(clients), clients("lambda"), clients("events")
        for function in (info.trigger_function, self.subscriber(clients, ORDERS.name).consumer_function):
            if function is None or (function != info.trigger_function and enabled):
                continue  # consumers come back with the failback, which enables the owner's
            for mapping in aws_lambda.list_event_source_mappings(FunctionName=function)["EventSourceMappings"]:
                aws_lambda.update_event_source_mapping(UUID=mapping["UUID"], Enabled=enabled)
        rule = info.retry_function  # the schedule is named like the function (functions.yaml)
        (events.enable_rule if enabled else events.disable_rule)(Name=rule)

    # -- the producer -----------------------------------------------------------------------
    def produce(self, milestones: dict[int, Callable[[], None]]) -> None:
        """Insert orders at the drill's rate; each milestone starts once its order is in, on a
        thread of its own (one at a time, in order), so orders keep flowing through the cut,
        the failover, the recovery and the failback. At least ``count`` orders, and more until
        the last milestone has ended: none of them runs with no order arriving."""
        info = self.info(self.primary)
        self.started = time.monotonic()
        with ThreadPoolExecutor(max_workers=1) as phases:
            begun = []
            for number in itertools.count(1):
                if number > self.count and all(phase.done() for phase in begun):
                    break
                due = self.started + (number - 1) / self.rate
                time.sleep(max(0.0, due - time.monotonic()))
                order = orders.Order(f"{self.run_id}-order-{number}", f"store-{number % 3 + 1}")
                orders.send_orders(self.primary, info, self.run_id, [order])
                self.keys.append(order.key)
                if number in milestones:
                    begun.append(phases.submit(milestones[number]))
            self.mark("all inserted", f"{len(self.keys)} orders")
            for phase in begun:
                phase.result()  # a phase that failed fails the drill

    def mark(self, name: str, detail: str = "") -> None:
        self.phases.append(Phase(name, time.monotonic() - self.started, detail, time.time()))
        self.log(f"[{self.phases[-1].at:6.1f} s] {name} {detail}".rstrip())

    def pending(self, clients: Clients) -> set[str]:
        """Orders PENDING in that region's replica now: what a move of publishing may catch in flight."""
        table, key_name = self.info(clients).table, self.info(clients).key_name
        keys = [{key_name: {"S": key}} for key in list(self.keys)]
        found = get_items(clients("dynamodb"), table, keys, ConsistentRead=True)
        return {item[key_name]["S"] for item in found if item.get(Field.STATUS, {}).get("S") == Status.PENDING}

    # -- the census --------------------------------------------------------------------------
    def statuses(self) -> dict[str, str]:
        return self.statuses_of(self.keys)

    def statuses_of(self, wanted: list[str]) -> dict[str, str]:
        info = self.info(self.primary)
        keys = [{info.key_name: {"S": key}} for key in wanted]
        found = get_items(self.primary("dynamodb"), info.table, keys, ConsistentRead=True)
        by_key = {item[info.key_name]["S"]: item.get(Field.STATUS, {}).get("S", "") for item in found}
        return {key: by_key.get(key, "") for key in wanted}

    def processed(self, since: float) -> dict[str, Counter[str]]:
        return {
            clients.region: orders.processed_orders(
                clients, self.subscriber(clients, ORDERS.name).consumer_function or "", since
            )
            for clients in (self.primary, self.secondary)
        }

    def _drain_audit(self) -> list[dict[str, Any]]:
        queue = self.subscriber(self.primary, AUDIT.name).queue.url
        return received_messages(self.primary("sqs"), queue, wait_seconds=2)

    def publishes(self, copies: list[dict[str, Any]]) -> dict[str, dict[str, tuple[str, float]]]:
        """For each order, the SNS MessageId of each publish, with the region of its topic
        and the time SNS accepted it."""
        found: dict[str, dict[str, tuple[str, float]]] = defaultdict(dict)
        for copy in copies:
            envelope = json.loads(copy["Body"])
            order = json.loads(envelope["Message"]).get("order_id")
            if order:
                accepted = datetime.fromisoformat(envelope["Timestamp"].replace("Z", "+00:00")).timestamp()
                found[order][envelope["MessageId"]] = (envelope["TopicArn"].split(":")[3], accepted)
        return found

    def passive(self, region: str, at: float) -> bool:
        """Whether ``region`` did not own at ``at`` (epoch seconds), by the drill's phases: the
        primary from the end of the failover to the start of the failback, the secondary
        before the failover began and after the failback ended."""
        wall = {phase.name: phase.wall for phase in self.phases}
        handed, back = wall.get("failover done", float("inf")), wall.get("failback", float("inf"))
        if region == PRIMARY:
            return handed < at < back
        return at < wall.get("failover", float("inf")) or at > wall.get("failback done", float("inf"))


def run(clients: Clients, count: int = DEFAULT_ORDERS, rate: float = DEFAULT_RATE) -> RegionOutageResult:
    drill = Drill(clients, count, rate)
    progress(f"deploying {STACK} in {PRIMARY} and {SECONDARY}, with subscribers orders and audit in both")
    drill.deploy()
    since = time.time()
    moves: dict[str, ownership.FailoverReport] = {}
    caught_up: dict[str, float] = {}
    last_phase_ended = [time.monotonic()]

    def dwell() -> None:
        time.sleep(max(0.0, last_phase_ended[0] + DWELL_SECONDS - time.monotonic()))

    def ended() -> None:
        last_phase_ended[0] = time.monotonic()

    def cut() -> None:
        drill.set_pipeline(drill.primary, enabled=False)
        drill.mark("cut", f"{PRIMARY}: trigger, retry schedule and consumers stopped")
        ended()

    def move(to: Clients, label: str) -> None:
        dwell()
        came_from = drill.secondary if to is drill.primary else drill.primary
        before = list(drill.keys)
        in_flight = drill.pending(came_from)
        drill.mark(label, f"to {to.region}; {len(in_flight)} orders PENDING in {came_from.region}")
        began = time.monotonic()
        moves[label] = ownership.failover(clients, STACK, to.region, log=lambda line: progress(f"    {line}"))
        # The old owner may have claimed more while it was being fenced: those count too.
        drill.pending_at_move[label] = in_flight | drill.pending(came_from)
        drill.mark(f"{label} done", f"in {moves[label].seconds:.1f} s")
        # Recovery time: until every order inserted before the move is published.
        wait_until(lambda: drill.statuses_of(before), lambda s: all(v == Status.SUCCESSFUL for v in s.values()), 300, 1)
        caught_up[label] = time.monotonic() - began
        drill.mark(f"{label}: every earlier order SUCCESSFUL", f"{caught_up[label]:.1f} s after it began")
        # The phase lasts until the new owner's consumer has processed an order too (a cold
        # start on a busy machine can take longer than the dwell), so each region's
        # consumers are exercised while it owns.
        consumer = drill.subscriber(to, ORDERS.name).consumer_function or ""
        since_move = time.time() - (time.monotonic() - began)
        wait_until(
            lambda: sum(orders.processed_orders(to, consumer, since_move).values()), bool, CONSUMER_WAIT_SECONDS, 1
        )
        ended()

    def recover() -> None:
        dwell()
        drill.set_pipeline(drill.primary, enabled=True)
        drill.mark("recovery", f"{PRIMARY}: trigger and retry schedule back (it does not own)")
        ended()

    quarter = max(1, count // 4)
    milestones = {
        quarter: cut,
        2 * quarter: lambda: move(drill.secondary, "failover"),
        3 * quarter: recover,
        3 * quarter + max(1, quarter // 2): lambda: move(drill.primary, "failback"),
    }
    progress(f"inserting {count} orders into {PRIMARY} at {rate:g}/s")
    drill.produce(milestones)

    def settled_now() -> tuple[dict[str, str], dict[str, Counter[str]]]:
        run_retry(drill.primary, drill.info(drill.primary))
        return drill.statuses(), drill.processed(since)

    def done(state: tuple[dict[str, str], dict[str, Counter[str]]]) -> bool:
        statuses, processed = state
        total = _together(processed)
        return all(s == Status.SUCCESSFUL for s in statuses.values()) and all(total[k] for k in drill.keys)

    statuses, processed = wait_until(
        settled_now,
        done,
        SETTLE_SECONDS,
        interval=2,
        on_wait=lambda state, elapsed: progress(
            f"  settling: {Counter(state[0].values()).get(Status.SUCCESSFUL, 0)}/{len(drill.keys)} SUCCESSFUL "
            f"({elapsed:.0f} s)"
        ),
    )
    settled = done((statuses, processed))
    drill.mark("settled" if settled else "gave up settling")
    copies = drill._drain_audit()
    return _census(drill, statuses, processed, copies, moves, caught_up, settled)


def _census(
    drill: Drill,
    statuses: dict[str, str],
    processed: dict[str, Counter[str]],
    copies: list[dict[str, Any]],
    moves: dict[str, ownership.FailoverReport],
    caught_up: dict[str, float],
    settled: bool,
) -> RegionOutageResult:
    # Only this run's orders: an earlier run stopped half way may still be finishing.
    ours = set(drill.keys)
    processed = {
        region: Counter({k: n for k, n in counts.items() if k in ours}) for region, counts in processed.items()
    }
    total = _together(processed)
    publishes = {key: by_message for key, by_message in drill.publishes(copies).items() if key in ours}
    in_flight = set().union(*drill.pending_at_move.values()) if drill.pending_at_move else set()
    published_twice = {}
    for key, by_message in publishes.items():
        if len(by_message) > 1:
            regions = ", ".join(sorted(region for region, _ in by_message.values()))
            flight = "PENDING when publishing moved" if key in in_flight else "NOT in flight at a move"
            published_twice[key] = f"published {len(by_message)} times, by {regions}; {flight}"
    lost = [k for k in drill.keys if statuses.get(k) != Status.SUCCESSFUL or not total[k]]
    # After the cut the primary owned nothing until the failback: a publish by its topic in
    # that time would be a passive region acting.
    published_by = Counter(region for by_message in publishes.values() for region, _ in by_message.values())
    passive_publishes = sorted(
        f"{key} by {region}"
        for key, by_message in publishes.items()
        for region, accepted in by_message.values()
        if drill.passive(region, accepted)
    )
    return RegionOutageResult(
        inserted=len(drill.keys),
        statuses=Counter(statuses.values()),
        lost=lost,
        processed_twice=sorted(k for k, n in total.items() if n > 1),
        published_twice=published_twice,
        bound=len(in_flight),
        bound_detail="orders PENDING in the old owner when publishing moved (an execution may publish, "
        "then the takeover, after its lease, publish again)",
        processed_by={region: sum(counts.values()) for region, counts in processed.items()},
        published_by=dict(published_by),
        duplicates_skipped_note="copies in both regions' queues: the consumer that did not process one skips it",
        phases=drill.phases,
        failover_seconds=moves["failover"].seconds if "failover" in moves else float("nan"),
        failback_seconds=moves["failback"].seconds if "failback" in moves else float("nan"),
        caught_up_seconds=caught_up,
        passive_publishes=passive_publishes,
        settled=settled,
        notes=[line for report in moves.values() for line in report.lines()],
    )


def _together(processed: dict[str, Counter[str]]) -> Counter[str]:
    """Processings per order, both regions' consumers together."""
    return sum(processed.values(), Counter())


def report(result: RegionOutageResult) -> str:
    rows = [
        ("orders inserted (into the primary)", str(result.inserted)),
        ("final statuses", ", ".join(f"{s} {n}" for s, n in sorted(result.statuses.items())) or "-"),
        ("lost (not SUCCESSFUL, or never processed)", str(len(result.lost))),
        ("processed twice at consumers (both regions)", str(len(result.processed_twice))),
        (
            "published twice",
            f"{len(result.published_twice)} (bound {result.bound}: {result.bound_detail})",
        ),
        ("published by a region that did not own", str(len(result.passive_publishes))),
        ("published by region", ", ".join(f"{r} {n}" for r, n in sorted(result.published_by.items()))),
        ("processed by region", ", ".join(f"{r} {n}" for r, n in sorted(result.processed_by.items()))),
        ("time to fail over (disa failover)", f"{result.failover_seconds:.1f} s"),
        ("time to fail back (disa failover)", f"{result.failback_seconds:.1f} s"),
        (
            "orders left unfinished all published",
            ", ".join(f"{s:.1f} s after the {m} began" for m, s in result.caught_up_seconds.items()) or "-",
        ),
    ]
    lines = [console.table([{"census": name, "": value} for name, value in rows], headers="keys"), ""]
    lines += [f"  {phase.at:6.1f} s  {phase.name} {phase.detail}".rstrip() for phase in result.phases]
    lines += ["", *result.notes]
    for key, cause in list(result.published_twice.items())[:10]:
        lines.append(f"  published twice: {key}: {cause}")
    for line in result.passive_publishes[:10]:
        lines.append(f"  published while not the owner: {line}")
    for key in result.lost[:10]:
        lines.append(f"  lost: {key}")
    for key in result.processed_twice[:10]:
        lines.append(f"  processed twice: {key}")
    lines.append("")
    lines.append("every guarantee held" if result.passed else "GUARANTEES BROKEN (see above)")
    return "\n".join(lines)
