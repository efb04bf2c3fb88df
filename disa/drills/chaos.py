"""`disa chaos`: items inserted while faults are injected at seeded, reproducible points,
then a census of every delivery guarantee (drills/census.py) once retries have settled.

Faults, each real on the local cloud and none touching Disa's code:
- sns-outage           SNS refuses publishes for a whole chunk of inserts (drills/faults.py)
- trigger-crash        the trigger's Lambda worker processes are killed (SIGKILL) mid-batch
- redelivery           a batch read from the table's stream is delivered to the trigger again
- overlapping-retries  two retry jobs run at once, twice
- engine-restart       the local cloud is stopped cleanly and started again mid-chunk

A share of the items (``--large-share``) is large, spread evenly over the chunks, and the
two kinds alternate within each fault's chunks, so that every fault meets both once there are
enough: a body of about 300 KB in the item, or a messageObject naming an object of 300 KB to
1 MB uploaded to the payload bucket's incoming/<run>/ just before the insert. Each is read at
the subscriber as a consumer built on Disa's helper reads it, and its SHA-256 compared with
the body sent.

``--fifo`` runs the same faults and workload on a FIFO stack of its own (TopicType=fifo) with
a FIFO subscriber queue. Each item gets one of ``--groups`` message groups and that group's
next messageSequence in the order the keys are generated; invalid items keep theirs, so their
group must pass over them. The census then also requires each group received in sequence
order and each message received once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from disa_lambda.consumer.payloads import PayloadReader, PayloadUnreadable
from disa_lambda.models.group import FIRST_SEQUENCE, GROUP_ATTRIBUTE, SEQUENCE_ATTRIBUTE, GroupPosition
from disa_lambda.models.status import NO_STATUS, Field, Status

from disa.common import console
from disa.common.aws import Clients
from disa.common.aws_helpers import (
    as_consumed,
    received_messages,
    scan_items,
    subscribe_queue,
    wait_until,
    write_items,
)
from disa.common.console import progress
from disa.deploy import packaging, stacks
from disa.drills.census import Census, take_census
from disa.drills.faults import TopicRemovalOutage
from disa.local_cloud.engine import LocalCloud
from disa.operate.retry_job import run_retry
from disa.operate.stack import StackInfo

STACK = "disa-chaos"
PARAMETERS = {
    "NamePrefix": STACK,
    "TableDeletionProtection": "false",
    "MaxAttempts": "10",
    "RetryBaseDelaySeconds": "1",
    "RetryMaxDelaySeconds": "4",
    "SweepSegments": "1",
    "SweepGraceSeconds": "20",
}
# Its own stack, so that a FIFO run never updates the standard one (TopicType cannot change
# in place: the topic is replaced).
FIFO_STACK = "disa-chaos-fifo"
FIFO_PARAMETERS = {**PARAMETERS, "NamePrefix": FIFO_STACK, "TopicType": "fifo"}
# Message groups of a FIFO run (at most one per item): about 100 items each in 2,000.
GROUPS = 20
FAULTS = ("sns-outage", "trigger-crash", "redelivery", "overlapping-retries", "engine-restart")
CHUNKS = 10
INVALID_SHARE = 0.05
# 10 of the CI's 200 items (5 of each kind), 500 of the default 10,000.
LARGE_SHARE = 0.05
# A body in the item must pass the 256 KiB offload threshold and fit DynamoDB's 400 KB item.
INLINE_BYTES = (280_000, 320_000)
OBJECT_BYTES = (300_000, 1_000_000)
INLINE, OBJECT = "large", "object"  # the key's suffix: how its large body is sent


@dataclass(frozen=True)
class ChaosResult:
    census: Census
    settle_seconds: float
    fault_log: list[str]  # the faults injected, in order
    large_sent: Counter[str]  # large items by how their body was sent (INLINE, OBJECT)
    groups: int | None = None  # FIFO runs: the message groups the items were spread over
    details: tuple[str, ...] = ()  # FIFO runs: what the items behind a broken guarantee hold

    @property
    def passed(self) -> bool:
        return self.census.holds() and self.census.unsettled == 0


class Chaos:
    def __init__(
        self,
        clients: Clients,
        cloud: LocalCloud,
        seed: int,
        log: Callable[[str], None] = progress,
        large_share: float = LARGE_SHARE,
        groups: int | None = None,
    ):
        self.clients, self.cloud, self.log = clients, cloud, log
        self.large_share = large_share
        self.groups = groups  # None: a standard topic
        self.stack, self.parameters = (STACK, PARAMETERS) if groups is None else (FIFO_STACK, FIFO_PARAMETERS)
        self.rng = random.Random(seed)
        # Its own generator, so a seed's fault schedule and invalid items do not depend on
        # the large share.
        self.large_rng = random.Random(f"large-{seed}")
        self.run_id = f"{seed}-{uuid.uuid4().hex[:6]}"
        self.inserted: list[str] = []
        self.fault_log: list[str] = []
        self.large_sent: Counter[str] = Counter()  # INLINE, OBJECT
        self.large_per_fault: Counter[str] = Counter()
        self.sent_digests: dict[str, str] = {}  # large key -> SHA-256 of the body sent
        self.received_digests: defaultdict[str, list[str]] = defaultdict(list)  # ... of each copy received
        self.unreadable = 0
        # FIFO: its own generator too, so that the standard run's draws stay as they were.
        self.group_rng = random.Random(f"groups-{seed}")
        self.positions: dict[str, GroupPosition] = {}  # key -> its group and messageSequence
        self.numbered: Counter[str] = Counter()  # sequence numbers given out, per group
        # FIFO: each message the queue returned, in receive order: its key and MessageGroupId.
        self.received: list[tuple[str, str | None]] = []
        # key -> when each copy was sent to the queue, and its MessageDeduplicationId
        self.sent_at: defaultdict[str, list[tuple[float, str]]] = defaultdict(list)
        # FIFO: when the engine lost its deduplication memory (census.py): the SNS outage
        # re-created the topic (a clean engine restart keeps it).
        self.dedup_forgotten_at: list[float] = []
        self.found: dict[str, dict[str, Any]] = {}  # the run's items as the last census read them

    @property
    def fifo(self) -> bool:
        return self.groups is not None

    def deploy(self) -> None:
        packaged = packaging.package(self.clients, packaging.default_bucket(self.clients), log=lambda _: None)
        stacks.deploy(self.clients, self.stack, packaged, self.parameters, log=lambda _: None)
        self.info = StackInfo.of(self.clients, self.stack)
        queue = f"{self.stack}-subscriber" + (".fifo" if self.fifo else "")
        self.queue_url = subscribe_queue(self.clients("sqs"), self.clients("sns"), self.info.topic_arn, queue)
        self.outage = TopicRemovalOutage(self.clients("sns"), self.info.topic_arn, self.cloud.fault_snapshots)
        self.outage.off()  # a previous run may have stopped mid-outage
        self.reader = PayloadReader(frozenset({self.info.payload_bucket}), None, self.clients("s3"))

    # -- workload --------------------------------------------------------------------------------
    def insert(self, keys: list[str]) -> None:
        write_items(self.clients("dynamodb"), self.info.table, [self._item(key) for key in keys])
        self.inserted.extend(keys)

    def _item(self, key: str) -> dict[str, Any]:
        item: dict[str, Any] = {self.info.key_name: {"S": key}}
        if key in self.positions:
            position = self.positions[key]
            item[GROUP_ATTRIBUTE] = {"S": position.group}
            item[SEQUENCE_ATTRIBUTE] = {"N": str(position.sequence)}
        if key.endswith("-bad"):
            return {**item, "message": {"N": "1"}}
        kind = key.rsplit("-", 1)[1]
        if kind not in (INLINE, OBJECT):
            return {**item, "message": {"S": f"chaos {self.run_id} {key}"}}
        body = self._large_body(key, *(INLINE_BYTES if kind == INLINE else OBJECT_BYTES))
        self.sent_digests[key] = hashlib.sha256(body).hexdigest()
        if kind == INLINE:
            return {**item, "message": {"S": body.decode("utf-8")}}
        object_key = f"incoming/{self.run_id}/{key}"
        self.clients("s3").put_object(Bucket=self.info.payload_bucket, Key=object_key, Body=body)
        return {**item, "messageObject": {"M": {"bucket": {"S": self.info.payload_bucket}, "key": {"S": object_key}}}}

    def _large_body(self, key: str, smallest: int, largest: int) -> bytes:
        """UTF-8 text of a seeded size, named like a small item's body, then random base64
        (a body cut short, or two bodies swapped, changes its digest)."""
        size = self.large_rng.randint(smallest, largest)
        head = f"chaos {self.run_id} {key} ✓ ".encode()
        filler = base64.b64encode(self.large_rng.randbytes(math.ceil(size * 3 / 4)))
        return (head + filler)[:size]

    def keys(self, count: int, offset: int, fault: str) -> list[str]:
        """The keys of the chunk of ``count`` items after the first ``offset``, which meets
        ``fault``; rounding the share at each chunk's end keeps the run's total at
        round(items x share)."""
        large = round((offset + count) * self.large_share) - round(offset * self.large_share)
        chosen = set(self.large_rng.sample(range(count), large))
        keys = []
        for n in range(count):
            invalid = self.rng.random() < INVALID_SHARE  # drawn for every item, large or not
            suffix = "-bad" if invalid else ""
            if n in chosen:
                kind = (INLINE, OBJECT)[self.large_per_fault[fault] % 2]
                self.large_per_fault[fault] += 1
                self.large_sent[kind] += 1
                suffix = f"-{kind}"
            keys.append(f"{self.run_id}-{offset + n}{suffix}")
            if self.fifo:
                self.positions[keys[-1]] = self._next_position()
        return keys

    def _next_position(self) -> GroupPosition:
        """A seeded group (named after the run: the group ledger outlives it) and its next
        sequence number."""
        group = f"{self.run_id}-g{self.group_rng.randrange(self.groups):03d}"
        position = GroupPosition(group, FIRST_SEQUENCE + self.numbered[group])
        self.numbered[group] += 1
        return position

    # -- faults ------------------------------------------------------------------------------------
    def with_fault(self, fault: str, keys: list[str]) -> None:
        self.fault_log.append(fault)
        large = sum(key.endswith((f"-{INLINE}", f"-{OBJECT}")) for key in keys)
        self.log(f"  chunk of {len(keys)} items ({large} large) with fault: {fault}")
        if fault == "sns-outage":
            self.outage.on()
            self.insert(keys)
            time.sleep(self.rng.uniform(1, 6))
            self.outage.off()
            self.dedup_forgotten_at.append(time.time())
        elif fault == "trigger-crash":
            stop = threading.Event()
            killer = threading.Thread(target=self._kill_trigger_workers, args=(stop,))
            killer.start()
            self.insert(keys)
            time.sleep(2)
            stop.set()
            killer.join()
        elif fault == "redelivery":
            self.insert(keys)
            time.sleep(2)
            self._redeliver()
        elif fault == "overlapping-retries":
            self.insert(keys)
            for _ in range(2):
                runs = [threading.Thread(target=run_retry, args=(self.clients, self.info)) for _ in range(2)]
                for run in runs:
                    run.start()
                for run in runs:
                    run.join()
        elif fault == "engine-restart":
            half = len(keys) // 2
            self.insert(keys[:half])
            self.cloud.down()
            self.cloud.up()
            self.insert(keys[half:])
        else:
            raise ValueError(fault)

    def _kill_trigger_workers(self, stop: threading.Event) -> None:
        marker = f"ministack-lambda-{self.info.trigger_function}-"
        while not stop.wait(self.rng.uniform(0.2, 0.8)):
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                        os.kill(int(proc.name), signal.SIGKILL)
                except OSError:
                    continue

    def _redeliver(self) -> None:
        """Deliver a batch read from the table's stream to the trigger a second time."""
        streams = self.clients("dynamodbstreams")
        stream_arn = self.clients("dynamodb").describe_table(TableName=self.info.table)["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        records = streams.get_records(ShardIterator=iterator, Limit=100)["Records"]
        inserts = [
            {**json.loads(json.dumps(r, default=_epoch)), "eventSourceARN": stream_arn}
            for r in records
            if r["eventName"] == "INSERT" or (self.fifo and _passes_a_turn(r))
        ]
        response = self.clients("lambda").invoke(
            FunctionName=self.info.trigger_function, Payload=json.dumps({"Records": inserts}).encode()
        )
        self.log(f"    redelivered {len(inserts)} stream records: {response['Payload'].read().decode()[:80]}")

    # -- settle and census ----------------------------------------------------------------------
    def census(self, deliveries: Counter[str]) -> Census:
        self.found = {
            item[self.info.key_name]["S"]: item
            for item in scan_items(self.clients("dynamodb"), self.info.table)
            if item[self.info.key_name]["S"].startswith(self.run_id)
        }
        return take_census(
            self.found,
            self.inserted,
            deliveries,
            time.time(),
            self.sent_digests,
            self.received_digests,
            self.unreadable,
            self.positions if self.fifo else None,
            [key for key, _ in self.received],
            self.sent_at,
            self.dedup_forgotten_at,
        )

    def details(self, census: Census, most: int = 5) -> tuple[str, ...]:
        """FIFO: for the first keys behind each broken order or single-delivery guarantee
        (and any ABANDONED item), the item's place, status and reason, and what its group's
        queue returned, in order."""
        if not self.fifo:
            return ()
        abandoned = [key for key in self.inserted if Status.of(self.found.get(key, {})) is Status.ABANDONED]
        lines = []
        for label, keys in (
            ("out of order", census.out_of_order),
            ("duplicate", census.subscriber_duplicates),
            ("a copy AWS would have dropped", census.dropped_on_aws),
            ("abandoned", abandoned),
        ):
            for key in list(dict.fromkeys(keys))[:most]:
                lines.append(f"{label}: {self._describe(key)}")
        return tuple(lines)

    def _describe(self, key: str) -> str:
        item, position = self.found.get(key, {}), self.positions[key]
        reason = item.get(Field.STATUS_REASON, {}).get("S", "-")
        received = [
            f"{self.positions[k].sequence}" + ("" if group == position.group else f"(as {group})")
            for k, group in self.received
            if k in self.positions and self.positions[k].group == position.group
        ]
        return (
            f"{key} {position.describe()}: {Status.of(item) or NO_STATUS}, attempt "
            f"{item.get(Field.ATTEMPT, {}).get('N', '-')}, statusReason {reason!r}; "
            f"the group's queue returned sequences {' '.join(received) or 'none'}"
        )

    def read_deliveries(self, deliveries: Counter[str]) -> None:
        """Count each message the subscriber received, its body read as the consumer helper
        reads it (from S3 for a pointer), and the digest of each large one."""
        for received in received_messages(self.clients("sqs"), self.queue_url, wait_seconds=1):
            try:
                body = as_consumed(self.reader, received).body
            except PayloadUnreadable as error:
                self.unreadable += 1
                self.log(f"    pointer not readable: {error}")
                continue
            parts = body.split(" ", 3)  # chaos <run> <key>, then a large body's own text
            if len(parts) >= 3 and parts[0] == "chaos" and parts[1] == self.run_id:
                key = parts[2]
                deliveries[key] += 1
                attributes = received.get("Attributes", {})
                self.received.append((key, attributes.get("MessageGroupId")))
                if "SentTimestamp" in attributes:
                    sent = int(attributes["SentTimestamp"]) / 1000
                    self.sent_at[key].append((sent, attributes.get("MessageDeduplicationId", "")))
                if key in self.sent_digests:
                    self.received_digests[key].append(hashlib.sha256(body.encode("utf-8")).hexdigest())

    def settle(self, timeout: float) -> tuple[Census, float]:
        """Run the retry job until every item is final (or ``timeout``), reading deliveries;
        returns the census and the seconds it took."""
        started, deliveries = time.time(), Counter()

        def take_census_now() -> Census:
            self.read_deliveries(deliveries)
            return self.census(deliveries)

        def retry_now(census: Census, _: float) -> None:
            waiting = f"{census.statuses[Status.WAITING]} WAITING, " if self.fifo else ""
            self.log(
                f"  settling: {census.unsettled} items not final "
                f"({waiting}{census.statuses[Status.PENDING]} PENDING, {census.statuses[Status.FAILED]} FAILED, "
                f"{census.statuses[NO_STATUS]} without status), {sum(deliveries.values())} delivered"
            )
            run_retry(self.clients, self.info)

        wait_until(take_census_now, lambda census: census.unsettled == 0, timeout, interval=3, on_wait=retry_now)
        return take_census_now(), time.time() - started  # with deliveries still on their way


def _epoch(value: Any) -> Any:
    return value.timestamp() if hasattr(value, "timestamp") else str(value)


def _passes_a_turn(record: dict[str, Any]) -> bool:
    """A record the FIFO stack's stream mapping also delivers (cft/nested-stacks/functions.yaml):
    the write that made an item of a message group final, which passes the group's turn on."""
    image = record.get("dynamodb", {}).get("NewImage", {})
    status = Status.of(image)
    final = isinstance(status, Status) and status.is_final
    return record["eventName"] == "MODIFY" and SEQUENCE_ATTRIBUTE in image and final


def run(
    clients: Clients,
    cloud: LocalCloud,
    count: int,
    seed: int,
    enabled: tuple[str, ...] = FAULTS,
    settle_timeout: float = 1800,
    log: Callable[[str], None] = progress,
    large_share: float = LARGE_SHARE,
    groups: int | None = None,
) -> ChaosResult:
    """``groups``: run on the FIFO stack, the items spread over that many message groups
    (at most one per item); None: the standard stack."""
    groups = None if groups is None else min(groups, count)
    chaos = Chaos(clients, cloud, seed, log, large_share, groups)
    on = "" if groups is None else f" on a FIFO topic ({groups} message groups)"
    log(
        f"== chaos run {chaos.run_id}: {count} items ({round(count * large_share)} large){on}, "
        f"faults {', '.join(enabled)}, seed {seed}"
    )
    chaos.deploy()
    plan = [enabled[i % len(enabled)] for i in range(CHUNKS)]
    chaos.rng.shuffle(plan)
    size = max(1, count // CHUNKS)
    offset = 0
    for chunk_number, fault in enumerate(plan):
        chunk = size if chunk_number < CHUNKS - 1 else count - offset
        keys = chaos.keys(chunk, offset, fault)
        offset += chunk
        chaos.with_fault(fault, keys)
    log("== faults over; settling")
    census, seconds = chaos.settle(settle_timeout)
    return ChaosResult(census, seconds, chaos.fault_log, chaos.large_sent, groups, chaos.details(census))


def report(result: ChaosResult) -> str:
    census = result.census
    rows = [
        *([] if result.groups is None else [("topic", f"FIFO, {result.groups} message groups")]),
        *census.rows(),
        (
            "large messages sent as",
            f"{result.large_sent[INLINE]} bodies in the item (280-320 KB), "
            f"{result.large_sent[OBJECT]} messageObject references (300 KB-1 MB)",
        ),
        ("time to settle", f"{result.settle_seconds:.1f}s"),
        ("faults injected", ", ".join(result.fault_log)),
    ]
    verdict = "every guarantee of Disa held" if census.holds() else "GUARANTEE BROKEN"
    if census.large_not_exact:
        verdict += (
            f"; {len(census.large_not_exact)} large message(s) not received byte-exact "
            f"(e.g. {census.large_not_exact[0]})"
        )
    if census.lost_after_sns:
        verdict += (
            f"; the engine lost {len(census.lost_after_sns)} message(s) after SNS accepted them "
            f"(e.g. {census.lost_after_sns[0]}): see docs/engine-differences.md"
        )
    details = "".join(f"\n  {line}" for line in result.details)
    return f"{console.table(rows, indent=2)}\n  {verdict}{details}"
