"""`disa chaos`: items inserted while faults are injected at seeded, reproducible points,
then a census of every delivery guarantee (drills/census.py) once retries have settled.

Faults, each real on the local cloud and none touching Disa's code:
- sns-outage           SNS refuses publishes for a whole chunk of inserts (drills/faults.py)
- trigger-crash        the trigger's Lambda worker processes are killed (SIGKILL) mid-batch
- redelivery           a batch read from the table's stream is delivered to the trigger again
- overlapping-retries  two retry jobs run at once, twice
- engine-restart       the local cloud is stopped cleanly and started again mid-chunk
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from disa_lambda.models.status import NO_STATUS, Status

from disa.common import console
from disa.common.aws import Clients
from disa.common.aws_helpers import received_messages, scan_items, subscribe_queue, wait_until, write_items
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
FAULTS = ("sns-outage", "trigger-crash", "redelivery", "overlapping-retries", "engine-restart")
CHUNKS = 10
INVALID_SHARE = 0.05


@dataclass(frozen=True)
class ChaosResult:
    census: Census
    settle_seconds: float
    fault_log: list[str]  # the faults injected, in order

    @property
    def passed(self) -> bool:
        return self.census.holds() and self.census.unsettled == 0


class Chaos:
    def __init__(self, clients: Clients, cloud: LocalCloud, seed: int, log: Callable[[str], None] = progress):
        self.clients, self.cloud, self.log = clients, cloud, log
        self.rng = random.Random(seed)
        self.run_id = f"{seed}-{uuid.uuid4().hex[:6]}"
        self.inserted: list[str] = []
        self.fault_log: list[str] = []

    def deploy(self) -> None:
        packaged = packaging.package(self.clients, packaging.default_bucket(self.clients), log=lambda _: None)
        stacks.deploy(self.clients, STACK, packaged, PARAMETERS, log=lambda _: None)
        self.info = StackInfo.of(self.clients, STACK)
        self.queue_url = subscribe_queue(
            self.clients("sqs"), self.clients("sns"), self.info.topic_arn, f"{STACK}-subscriber"
        )
        self.outage = TopicRemovalOutage(self.clients("sns"), self.info.topic_arn, self.cloud.fault_snapshots)
        self.outage.off()  # a previous run may have stopped mid-outage

    # -- workload --------------------------------------------------------------------------------
    def insert(self, keys: list[str]) -> None:
        write_items(
            self.clients("dynamodb"),
            self.info.table,
            (
                {
                    self.info.key_name: {"S": key},
                    "message": {"N": "1"} if key.endswith("-bad") else {"S": f"chaos {self.run_id} {key}"},
                }
                for key in keys
            ),
        )
        self.inserted.extend(keys)

    def keys(self, count: int, offset: int) -> list[str]:
        return [
            f"{self.run_id}-{offset + n}" + ("-bad" if self.rng.random() < INVALID_SHARE else "") for n in range(count)
        ]

    # -- faults ------------------------------------------------------------------------------------
    def with_fault(self, fault: str, keys: list[str]) -> None:
        self.fault_log.append(fault)
        self.log(f"  chunk of {len(keys)} items with fault: {fault}")
        if fault == "sns-outage":
            self.outage.on()
            self.insert(keys)
            time.sleep(self.rng.uniform(1, 6))
            self.outage.off()
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
            if r["eventName"] == "INSERT"
        ]
        response = self.clients("lambda").invoke(
            FunctionName=self.info.trigger_function, Payload=json.dumps({"Records": inserts}).encode()
        )
        self.log(f"    redelivered {len(inserts)} stream records: {response['Payload'].read().decode()[:80]}")

    # -- settle and census ----------------------------------------------------------------------
    def census(self, deliveries: Counter[str]) -> Census:
        found = {
            item[self.info.key_name]["S"]: item
            for item in scan_items(self.clients("dynamodb"), self.info.table)
            if item[self.info.key_name]["S"].startswith(self.run_id)
        }
        return take_census(found, self.inserted, deliveries, time.time())

    def read_deliveries(self, deliveries: Counter[str]) -> None:
        for message in received_messages(self.clients("sqs"), self.queue_url, wait_seconds=1):
            parts = message["Body"].split(" ")
            if len(parts) == 3 and parts[1] == self.run_id:
                deliveries[parts[2]] += 1

    def settle(self, timeout: float) -> tuple[Census, float]:
        """Run the retry job until every item is final (or ``timeout``), reading deliveries;
        returns the census and the seconds it took."""
        started, deliveries = time.time(), Counter()

        def take_census_now() -> Census:
            self.read_deliveries(deliveries)
            return self.census(deliveries)

        def retry_now(census: Census, _: float) -> None:
            self.log(
                f"  settling: {census.unsettled} items not final "
                f"({census.statuses[Status.PENDING]} PENDING, {census.statuses[Status.FAILED]} FAILED, "
                f"{census.statuses[NO_STATUS]} without status), {sum(deliveries.values())} delivered"
            )
            run_retry(self.clients, self.info)

        wait_until(take_census_now, lambda census: census.unsettled == 0, timeout, interval=3, on_wait=retry_now)
        return take_census_now(), time.time() - started  # with deliveries still on their way


def _epoch(value: Any) -> Any:
    return value.timestamp() if hasattr(value, "timestamp") else str(value)


def run(
    clients: Clients,
    cloud: LocalCloud,
    count: int,
    seed: int,
    enabled: tuple[str, ...] = FAULTS,
    settle_timeout: float = 1800,
    log: Callable[[str], None] = progress,
) -> ChaosResult:
    chaos = Chaos(clients, cloud, seed, log)
    log(f"== chaos run {chaos.run_id}: {count} items, faults {', '.join(enabled)}, seed {seed}")
    chaos.deploy()
    plan = [enabled[i % len(enabled)] for i in range(CHUNKS)]
    chaos.rng.shuffle(plan)
    size = max(1, count // CHUNKS)
    offset = 0
    for chunk_number, fault in enumerate(plan):
        chunk = size if chunk_number < CHUNKS - 1 else count - offset
        keys = chaos.keys(chunk, offset)
        offset += chunk
        chaos.with_fault(fault, keys)
    log("== faults over; settling")
    census, seconds = chaos.settle(settle_timeout)
    return ChaosResult(census, seconds, chaos.fault_log)


def report(result: ChaosResult) -> str:
    census = result.census
    rows = [
        *census.rows(),
        ("time to settle", f"{result.settle_seconds:.1f}s"),
        ("faults injected", ", ".join(result.fault_log)),
    ]
    verdict = "every guarantee of Disa held" if census.holds() else "GUARANTEE BROKEN"
    if census.lost_after_sns:
        verdict += (
            f"; the engine lost {len(census.lost_after_sns)} message(s) after SNS accepted them "
            f"(e.g. {census.lost_after_sns[0]}): see docs/engine-differences.md"
        )
    return f"{console.table(rows, indent=2)}\n  {verdict}"
