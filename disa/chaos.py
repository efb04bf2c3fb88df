"""`disa chaos`: items inserted while faults are injected at seeded, reproducible points,
then a census of every delivery guarantee (disa/invariants.py) once retries have drained.

Faults, each real on the local cloud and none touching Disa's code:
- sns-outage           SNS refuses publishes for a whole chunk of inserts (disa/faults.py)
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
from pathlib import Path
from typing import Any, Callable

from disa import faults, items, packaging, stacks
from disa.aws import Clients
from disa.console import progress
from disa.demo import subscribe_queue
from disa.invariants import Census, take_census
from disa.local_cloud import LocalCloud

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


class Chaos:
    def __init__(self, clients: Clients, cloud: LocalCloud, seed: int, log: Callable[[str], None] = progress):
        self.clients, self.cloud, self.log = clients, cloud, log
        self.rng = random.Random(seed)
        self.run_id = f"{seed}-{uuid.uuid4().hex[:6]}"
        self.inserted: list[str] = []
        self.fault_log: list[str] = []

    def deploy(self) -> None:
        packaged = packaging.package(self.clients, packaging.default_bucket(self.clients), log=lambda _: None)
        stacks.deploy_disposable(self.clients, STACK, packaged, PARAMETERS, log=lambda _: None)
        self.info = items.StackInfo.of(self.clients, STACK)
        self.outputs = stacks.outputs(self.clients, STACK)
        self.queue_url = subscribe_queue(self.clients, self.info.topic_arn, f"{STACK}-subscriber")
        self.snapshots = self.cloud.home / "faults"
        faults.sns_outage(self.clients, self.info, False, self.snapshots)

    # -- workload --------------------------------------------------------------------------------
    def insert(self, keys: list[str]) -> None:
        ddb = self.clients("dynamodb")
        for start in range(0, len(keys), 25):
            chunk = keys[start : start + 25]
            requests = [
                {
                    "PutRequest": {
                        "Item": {
                            self.info.key_name: {"S": key},
                            "message": {"N": "1"} if key.endswith("-bad") else {"S": f"chaos {self.run_id} {key}"},
                        }
                    }
                }
                for key in chunk
            ]
            pending = {self.info.table: requests}
            while pending:
                pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            self.inserted.extend(chunk)

    def keys(self, count: int, offset: int) -> list[str]:
        return [
            f"{self.run_id}-{offset + n}" + ("-bad" if self.rng.random() < INVALID_SHARE else "") for n in range(count)
        ]

    # -- faults ------------------------------------------------------------------------------------
    def with_fault(self, fault: str, keys: list[str]) -> None:
        self.fault_log.append(fault)
        self.log(f"  chunk of {len(keys)} items with fault: {fault}")
        if fault == "sns-outage":
            faults.sns_outage(self.clients, self.info, True, self.snapshots)
            self.insert(keys)
            time.sleep(self.rng.uniform(1, 6))
            faults.sns_outage(self.clients, self.info, False, self.snapshots)
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
                runs = [threading.Thread(target=items.run_retry, args=(self.clients, self.info)) for _ in range(2)]
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
        marker = f"ministack-lambda-{self.outputs['TriggerFunctionName']}-"
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
            FunctionName=self.outputs["TriggerFunctionName"], Payload=json.dumps({"Records": inserts}).encode()
        )
        self.log(f"    redelivered {len(inserts)} stream records: {response['Payload'].read().decode()[:80]}")

    # -- drain and census ----------------------------------------------------------------------
    def census(self, deliveries: Counter[str]) -> Census:
        ddb, found = self.clients("dynamodb"), {}
        for page in ddb.get_paginator("scan").paginate(TableName=self.info.table):
            for item in page["Items"]:
                key = item[self.info.key_name]["S"]
                if key.startswith(self.run_id):
                    found[key] = item
        return take_census(found, self.inserted, deliveries, time.time())

    def read_deliveries(self, deliveries: Counter[str]) -> None:
        sqs = self.clients("sqs")
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
            if not batch:
                return
            for message in batch:
                parts = message["Body"].split(" ")
                if len(parts) == 3 and parts[1] == self.run_id:
                    deliveries[parts[2]] += 1
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def drain(self, timeout: float) -> tuple[Census, float]:
        started, deliveries = time.time(), Counter()
        while True:
            self.read_deliveries(deliveries)
            census = self.census(deliveries)
            if census.unsettled == 0 or time.time() - started > timeout:
                self.read_deliveries(deliveries)
                return self.census(deliveries), time.time() - started
            self.log(
                f"  draining: {census.unsettled} items not final "
                f"({census.statuses['PENDING']} PENDING, {census.statuses['FAILED']} FAILED, "
                f"{census.statuses['NONE']} without status), {sum(deliveries.values())} delivered"
            )
            items.run_retry(self.clients, self.info)
            time.sleep(3)


def _epoch(value: Any) -> Any:
    return value.timestamp() if hasattr(value, "timestamp") else str(value)


def run(
    clients: Clients,
    cloud: LocalCloud,
    count: int,
    seed: int,
    enabled: tuple[str, ...] = FAULTS,
    drain_timeout: float = 1800,
    log: Callable[[str], None] = progress,
) -> tuple[Census, float, list[str]]:
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
    log("== faults over; draining")
    census, seconds = chaos.drain(drain_timeout)
    return census, seconds, chaos.fault_log


def report(census: Census, seconds: float, fault_log: list[str]) -> str:
    rows = [*census.rows(), ("time to drain", f"{seconds:.1f}s"), ("faults injected", ", ".join(fault_log))]
    width = max(len(r[0]) for r in rows)
    verdict = "every guarantee of Disa held" if census.holds() else "GUARANTEE BROKEN"
    if census.lost_after_sns:
        verdict += (
            f"; the engine lost {len(census.lost_after_sns)} message(s) after SNS accepted them "
            f"(e.g. {census.lost_after_sns[0]}): see docs/engine-differences.md"
        )
    return "\n".join([*(f"  {n.ljust(width)}  {v}" for n, v in rows), f"  {verdict}"])
