"""`disa cost`: an itemized dollar estimate per million messages, Disa beside the seed design.

A pure model: the stack's parameters (the root template's defaults, or a deployed stack's
parameters read through CloudFormation) and the call counts in ``ASSUMPTIONS`` are priced
with ``prices.json`` (one file: every unit price, its source and the date it was read).
Nothing else is called; the figures are estimates from list prices, not a bill.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from disa_lambda.models import metrics
from disa_lambda.models.status import DUE_INDEX_SHARDS

from disa.common import console, paths
from disa.common.aws import Clients
from disa.common.errors import UserError
from disa.deploy import stacks
from disa.deploy.packaging import load_template

PRICES_PATH = Path(__file__).with_name("prices.json")
MILLION = 1_000_000
MONTH_MINUTES = 43_200  # a 30-day month
MONTH_SECONDS = MONTH_MINUTES * 60
GIB = 2**30
# The largest body Disa takes (PayloadMaxBytes' default, the extended clients' 2 GB). Bodies
# above the offload threshold are stored in S3; above DynamoDB's item limit they can only be
# an S3 object the item names (messageObject), so the item itself is small.
MAX_ITEM_BYTES = 2**31
DYNAMODB_ITEM_LIMIT_BYTES = 400 * 1024
GOAL_USD_PER_MILLION = 3.0
GOAL_ITEM_BYTES = 1024


@dataclass(frozen=True)
class Assumptions:
    """Every call count, size and duration the model prices, in one place. Figures marked
    (estimate) are not measured; change them here and every line follows."""

    # --- Disa, success path: one message whose first attempt succeeds -------------------
    # Trigger Lambda (arm64). Per record it makes 2 AWS calls: the conditional claim
    # (UpdateItem) and StartExecution. Each costs ~2 ms of CPU in the SDK (signing, JSON);
    # the calls of a batch overlap on threads, so the work is CPU-bound: billed seconds per
    # record = CPU seconds / vCPU share (memory / 1,769 MB), and GB-s per record come out
    # the same at any memory up to one vCPU (~0.0069 GB-s). Python's GIL keeps the work on
    # one core, so memory above 1,769 MB buys no speed and its GB-s grow. (estimate)
    trigger_calls_per_record: int = 2
    cpu_seconds_per_call: float = 0.002  # (estimate)
    trigger_batch_overhead_seconds: float = 0.050  # handler start, settings, summary (estimate)
    # Express execution: TakePublishRight (updateItem), sns:publish, RecordSuccess
    # (updateItem); 3 tasks take ~100-200 ms, billed as 200 ms at the 64 MB minimum. A failed
    # attempt runs 4 tasks (take the right, publish, RecordFailed, CountFailure): 300 ms.
    express_success_ms: int = 200  # (estimate)
    express_failure_ms: int = 300  # (estimate)
    express_memory_mb: int = 64
    # Standard execution: states entered, from state-machine/publisher.asl.json (with the
    # TakePublishRight task that the publish right adds in front of ChooseMessageShape).
    # Success: TakePublishRight, ChooseMessageShape, Publish, RecordSuccessWithExpiry,
    # RecordSuccess (or RecordSuccessExpiring), Delivered.
    standard_success_transitions: int = 6
    # Failure: TakePublishRight, ChooseMessageShape, Publish, ChooseFailureOutcome,
    # RecordFailed or RecordAbandoned, CountFailure or CountAbandoned, PublishFailed.
    standard_failure_transitions: int = 7
    # DynamoDB. A write is billed ceil(size / 1 KB) on the larger of the item before and
    # after it; every DueIndex change is a GSI write of its own (the index entry is < 1 KB:
    # keys plus status, attempt and claimToken). Disa's attributes on the item at their
    # largest, right after the claim: status 13 B, attempt 9, claimToken 42, dueShard 9,
    # dueAt 11, updatedAt 33, publishRight 44, acceptedAt 34 = 195 B, rounded to 200.
    disa_attribute_bytes: int = 200
    claim_index_writes: int = 1  # the claim puts the item into DueIndex
    success_index_writes: int = 1  # RecordSuccess removes it
    # Logs: the trigger writes one summary line per batch (~400 B), per-record lines only
    # for rejected or failed records; Lambda adds START, END and REPORT lines (~460 B with
    # the X-Ray line). The state machine logs at level ERROR: nothing on success.
    trigger_summary_line_bytes: int = 400  # (estimate)
    lambda_platform_lines_bytes: int = 460  # (estimate)
    # X-Ray: tracing is Active on both functions and enabled on the state machine. botocore
    # sends the trigger invocation's X-Amzn-Trace-Id with StartExecution, and Step Functions
    # uses it, so a batch's executions join its invocation's trace: one trace per sampled
    # invocation. The default rule samples 1 request a second (reservoir, a monthly ceiling
    # shown apart) and 5% of the rest, which is the per-message figure.

    # --- Disa, per failed attempt (failure rate f, at most MaxAttempts attempts) ---------
    # A failure adds lastError, lastCause (SNS's message, ~300 B) and statusReason. (estimate)
    failure_attribute_bytes: int = 400
    retry_claim_index_writes: int = 2  # dueAt (DueIndex sort key) changes: delete + put
    failed_index_writes: int = 2  # RecordFailed moves dueAt to the retry time: delete + put
    abandoned_index_writes: int = 1  # RecordAbandoned removes the entry
    retry_calls_per_item: int = 2  # the retry job's claim and StartExecution, CPU-bound as above
    index_entry_bytes: int = 130  # what a DueIndex query reads per due item (estimate)
    put_metric_data_per_failure: int = 1  # CountFailure or CountAbandoned: one request
    failed_execution_log_bytes: int = 700  # TaskFailed + ExecutionFailed events, no data (estimate)

    # --- Disa, fixed: one retry-job run every RetryIntervalMinutes ----------------------
    due_index_shards: int = DUE_INDEX_SHARDS
    # Per shard and run: the due items, the in-flight reading (logic/gauges.py) and the
    # attention index's count; idle, each is an empty Query (a BatchGetItem only with items).
    queries_per_shard: int = 3
    # Counts and heartbeat, then the readings: two requests, so a slow read cannot cost the heartbeat.
    put_metric_data_per_run: int = 2
    retry_idle_run_seconds: float = 1.0  # ~30 sequential calls (24 of them the readings), nothing due (estimate)
    retry_run_log_bytes: int = 700  # "retry run finished" line (estimate)
    custom_metrics: tuple[str, ...] = tuple(metrics.ALL)  # the contract, models/metrics.py
    dashboards: int = 1  # <prefix>-pipeline-<region> (the account's first 3 are free; not counted)
    # KMS: SNS reuses a data key for 5 minutes per publishing principal (2 requests each
    # time); DynamoDB caches the table key per caller (trigger, state machine, retry job) and
    # asks again after 5 minutes idle; the 3 log groups are encrypted with the key too. Upper
    # bound: every cache renewed every 5 minutes all month.
    kms_sns_publishing_principals: int = 1
    kms_table_callers: int = 3
    kms_log_groups: int = 3
    item_storage_overhead_bytes: int = 100  # DynamoDB adds 100 B per item (and index entry) for storage

    # --- Disa, large bodies (README, Large messages) -------------------------------------
    # A body above PayloadOffloadThreshold is stored before the execution starts: per attempt
    # a HeadObject of its stored key (the first finds nothing), then one PutObject (a body in
    # the item) or a ranged GetObject of the named object and a CopyObject. Each S3 call is
    # ~2 ms of SDK CPU like the others. An item naming an S3 object holds only the key, the
    # bucket and the object key. With S3 Bucket Keys, KMS is asked for a bucket key now and
    # then, not per object (~0 per message). Subscribers' GETs are theirs, like deliveries.
    reference_item_bytes: int = 200  # (estimate)
    # The named object is the producer's upload to the payload bucket's incoming/ (README,
    # Sending them): S3 bills its PUT to the bucket's owner, and the bucket's lifecycle rule
    # keeps it PayloadRetentionDays beside Disa's copy, so both are the stack's. An object in
    # a PayloadSourceBuckets bucket is its owner's cost instead.
    named_object_in_payload_bucket: bool = True

    # --- The seed design (../shared/seeds/004 and notes/reference-designs.md) -----------
    # Its trigger starts one STANDARD execution per record (no name). The state machine
    # reads the alarm state (DescribeAlarms), checks it (Choice), invokes the "process"
    # Lambda (sns:Publish, then PutMetricData with the HTTP status as value), checks the
    # result (Choice) and writes the status (updateItem): 5 state transitions. (The seed's
    # ASL is not in the seed documents: these states are read from their description.)
    seed_transitions: int = 5
    # Functions: no Architectures or MemorySize given, so the defaults: x86_64, 128 MB
    # (0.072 vCPU). A call costs ~2 ms CPU (27.6 ms at 128 MB) plus ~20 ms waiting on the
    # network, since each function makes its calls one after another. (estimate)
    seed_memory_mb: int = 128
    seed_network_wait_seconds: float = 0.020  # (estimate)
    seed_batch_size: int = 100  # no BatchSize given: the event source mapping's default
    seed_process_calls: int = 2  # sns:Publish, PutMetricData
    seed_handler_overhead_seconds: float = 0.005  # (estimate)
    # DynamoDB: one status update (sendStatus, ~20 B) that also writes the GSI on sendStatus;
    # the GSI's projection is not described: ALL is assumed, so the index write is as large
    # as the item. A retried attempt's update moves the item in the GSI (Failure ->
    # Successful: delete + put) or rewrites it in place (Failure -> Failure).
    seed_status_attribute_bytes: int = 20
    # Logs: no log-level setting is described; one ~200 B line per record in the trigger and
    # per invocation in the process function is assumed, plus Lambda's platform lines.
    seed_line_bytes: int = 200  # (estimate)
    # Fixed: an hourly retry Lambda (EventBridge Scheduler), ~1 s at 128 MB, one GSI query;
    # one custom metric (the status code), one alarm, a customer managed key (used by the
    # topic; the same SNS data-key rule applies).
    seed_retry_runs_per_month: int = 720
    seed_retry_run_seconds: float = 1.0  # (estimate)
    seed_custom_metrics: int = 1
    seed_alarms: int = 1


ASSUMPTIONS = Assumptions()


# --- prices ------------------------------------------------------------------------------


class Prices:
    """prices.json, read by key; remembers which keys the model used."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.used: set[str] = set()

    def unit(self, key: str) -> float:
        """US dollars per one unit (a request, a GB-second, ...)."""
        entry = self.document["prices"][key]
        self.used.add(key)
        return entry["usd"] / entry["per"]

    def rule(self, key: str) -> float:
        entry = self.document["billing_rules"][key]
        self.used.add(key)
        return entry["value"]

    @property
    def as_of(self) -> str:
        return max(entry["as_of"] for entry in self.document["prices"].values())


def load_prices(path: Path = PRICES_PATH) -> Prices:
    return Prices(json.loads(path.read_text(encoding="utf-8")))


# --- the stack's settings ----------------------------------------------------------------

# Used when neither the stack nor the template has the parameter (two are being added).
PARAMETER_DEFAULTS: dict[str, str] = {
    "WorkflowType": "EXPRESS",
    "StreamBatchSize": "100",
    "MaxAttempts": "5",
    "StreamParallelizationFactor": "1",
    "TriggerMemorySize": "1024",
    "RetryIntervalMinutes": "1",
    "SweepSegments": "60",
    "PayloadOffloadThreshold": "262144",
    "PayloadRetentionDays": "30",
}


@dataclass(frozen=True)
class StackSettings:
    workflow_type: str = "EXPRESS"
    stream_batch_size: int = 100
    max_attempts: int = 5
    stream_parallelization_factor: int = 1
    trigger_memory_mb: int = 1024
    retry_interval_minutes: int = 1
    sweep_segments: int = 60
    retry_memory_mb: int = 256
    alarms: int = 3
    payload_offload_threshold: int = 262_144  # "always" is 0
    payload_retention_days: int = 30
    source: str = "built-in defaults"
    assumed: tuple[str, ...] = ()  # parameters found nowhere: PARAMETER_DEFAULTS used

    @property
    def retry_runs_per_month(self) -> float:
        return MONTH_MINUTES / self.retry_interval_minutes


def settings_from(parameters: Mapping[str, str], source: str, nested: Mapping[str, int] | None = None) -> StackSettings:
    """Settings from parameter values (strings, as CloudFormation keeps them)."""
    nested = nested if nested is not None else nested_template_facts()
    assumed = tuple(name for name in PARAMETER_DEFAULTS if name not in parameters)
    values = {**PARAMETER_DEFAULTS, **{k: v for k, v in parameters.items() if k in PARAMETER_DEFAULTS}}
    workflow_type = values["WorkflowType"].upper()
    if workflow_type not in ("EXPRESS", "STANDARD"):
        raise UserError(f"WorkflowType {values['WorkflowType']!r} is neither EXPRESS nor STANDARD; check the stack")
    if values["PayloadOffloadThreshold"] == "always":
        values["PayloadOffloadThreshold"] = "0"
    try:
        numbers = {name: int(values[name]) for name in PARAMETER_DEFAULTS if name != "WorkflowType"}
    except ValueError as error:
        raise UserError(f"a numeric stack parameter is not a number ({error}); check the stack's parameters") from error
    return StackSettings(
        workflow_type=workflow_type,
        stream_batch_size=max(1, numbers["StreamBatchSize"]),
        max_attempts=max(1, numbers["MaxAttempts"]),
        stream_parallelization_factor=numbers["StreamParallelizationFactor"],
        trigger_memory_mb=numbers["TriggerMemorySize"],
        retry_interval_minutes=max(1, numbers["RetryIntervalMinutes"]),
        sweep_segments=numbers["SweepSegments"],
        payload_offload_threshold=numbers["PayloadOffloadThreshold"],
        payload_retention_days=numbers["PayloadRetentionDays"],
        retry_memory_mb=nested["retry_memory_mb"],
        alarms=nested["alarms"],
        source=source,
        assumed=assumed,
    )


@cache
def _template(path: Path) -> dict[str, Any]:
    return load_template(path)


def template_defaults() -> dict[str, str]:
    """The root template's parameter defaults, as strings."""
    parameters = _template(paths.ROOT_TEMPLATE)["Parameters"]
    return {name: str(spec["Default"]) for name, spec in parameters.items() if "Default" in spec}


def nested_template_facts() -> dict[str, int]:
    """What the nested templates fix rather than the root's parameters: the retry function's
    memory and the number of alarms."""
    nested = paths.CFT_DIR / "nested-stacks"
    functions = _template(nested / "functions.yaml")["Resources"]
    memory = functions.get("RetryFunction", {}).get("Properties", {}).get("MemorySize", 256)
    alarms = _template(nested / "alarms.yaml")["Resources"].values()
    return {
        "retry_memory_mb": memory if isinstance(memory, int) else 256,
        "alarms": sum(1 for resource in alarms if resource["Type"] == "AWS::CloudWatch::Alarm"),
    }


def deployed_parameters(clients: Clients, stack: str) -> dict[str, str]:
    """A deployed root stack's parameter values, read through CloudFormation."""
    described = stacks.described(
        clients,
        stack,
        f"stack {stack} does not exist in {clients.region}; check --stack and --region, "
        "or leave out --stack to price the template's defaults",
    )
    return {p["ParameterKey"]: p.get("ResolvedValue", p.get("ParameterValue", "")) for p in described["Parameters"]}


# --- the model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    settings: StackSettings = field(default_factory=StackSettings)
    messages: int = MILLION
    item_bytes: int = 1024
    failure_rate: float = 0.0

    def validate(self) -> Inputs:
        if self.messages < 1:
            raise UserError(f"--messages {self.messages} must be at least 1")
        if not 1 <= self.item_bytes <= MAX_ITEM_BYTES:
            raise UserError(
                f"--item-size {self.item_bytes} must be 1 to {MAX_ITEM_BYTES:,} bytes "
                "(the body size; PayloadMaxBytes is at most 2 GB)"
            )
        if not 0 <= self.failure_rate < 1:
            raise UserError(
                f"--failure-rate {self.failure_rate:g} must be at least 0 and below 1 "
                "(the share of publish attempts SNS refuses, e.g. 0.05)"
            )
        return self


@dataclass(frozen=True)
class Line:
    """One line item: what it is per message (``calls``) and its dollars per message."""

    calls: str
    usd_per_message: float
    write_units: float = 0.0  # DynamoDB write units in the line, per message


@dataclass(frozen=True)
class Attempts:
    """Expected attempts of one message when each attempt fails with probability f."""

    total: float  # executions (and publishes) per message
    retried: float  # attempts after the first: the retry job claims each
    failed: float  # failed attempts that leave the item FAILED, due again
    abandoned: float  # the last allowed attempt failed
    succeeded: float
    succeeded_first: float  # succeeded at the first attempt (the item is still small)


def attempts(failure_rate: float, max_attempts: int | None) -> Attempts:
    """``max_attempts`` None: retried until it succeeds (the seed design has no cap)."""
    f = failure_rate
    if max_attempts is None:
        total = 1 / (1 - f)
        return Attempts(total, total - 1, total - 1, 0.0, 1.0, 1 - f)
    total = sum(f**k for k in range(max_attempts))
    abandoned = f**max_attempts
    failed = sum(f**k for k in range(1, max_attempts))
    return Attempts(total, total - 1, failed, abandoned, 1 - abandoned, 1 - f)


def _fmt(value: float) -> str:
    """A count as people read it: 43,200; 1.053; 0.0125; 9.4e-07."""
    if value == 0:
        return "0"
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.4g}" if value >= 0.001 else f"{value:.2g}"


class _Model:
    def __init__(self, inputs: Inputs, prices: Prices, assumptions: Assumptions) -> None:
        self.i, self.p, self.a = inputs, prices, assumptions
        self.s = inputs.settings

    # helpers
    def wru(self, item_bytes: float) -> int:
        return math.ceil(item_bytes / self.p.rule("dynamodb.write_unit_bytes"))

    def cpu_bound_gb_seconds(self, cpu_seconds: float, memory_mb: int) -> float:
        share = min(memory_mb / self.p.rule("lambda.mb_per_vcpu"), 1.0)
        return cpu_seconds / share * memory_mb / 1024

    def express_gb_seconds(self, ms: int) -> float:
        step = self.p.rule("stepfunctions.express.duration_increment_ms")
        chunk = self.p.rule("stepfunctions.express.memory_increment_mb")
        billed_ms = math.ceil(ms / step) * step
        billed_mb = math.ceil(self.a.express_memory_mb / chunk) * chunk
        return billed_ms / 1000 * billed_mb / 1024

    @property
    def stored_in_s3(self) -> bool:
        """The body goes to S3 and the message published is a pointer to it."""
        return self.i.item_bytes > self.s.payload_offload_threshold

    @property
    def named_object(self) -> bool:
        """Too large for an item: the item names an S3 object (messageObject)."""
        return self.i.item_bytes + self.a.disa_attribute_bytes > DYNAMODB_ITEM_LIMIT_BYTES

    @property
    def table_item_bytes(self) -> int:
        return self.a.reference_item_bytes if self.named_object else self.i.item_bytes

    def body_chunks(self) -> int:
        return math.ceil(self.i.item_bytes / self.p.rule("sns.payload_chunk_bytes"))

    def sns_chunks(self) -> int:
        """What Disa publishes: the body, or only the pointer to it."""
        return 1 if self.stored_in_s3 else self.body_chunks()

    def writes(self, count: float, base: int, index: int) -> Line:
        units = count * (base + index)
        calls = f"{_fmt(units)} WRU" + (f" ({_fmt(count * index)} GSI)" if index else "")
        return Line(calls, units * self.p.unit("dynamodb.ondemand.write_request_unit"), units)

    def logs(self, bytes_per_message: float) -> Line:
        return Line(f"{_fmt(bytes_per_message)} B", bytes_per_message / GIB * self.p.unit("logs.ingestion.gb"))

    def traces(self, per_message: float) -> Line:
        return Line(f"{_fmt(per_message)} trace", per_message * self.p.unit("xray.trace_recorded"))

    # Disa
    def disa(self) -> dict[str, Line]:
        return {
            **self._disa_workflow(),
            **self._disa_functions(),
            **self._disa_table(),
            **self._disa_rest(),
            **self._disa_payloads(),
        }

    def _disa_payloads(self) -> dict[str, Line]:
        if not self.stored_in_s3:
            return {}
        n = attempts(self.i.failure_rate, self.s.max_attempts)
        uploaded = self.named_object and self.a.named_object_in_payload_bucket
        writes = 1  # PutObject, or CopyObject of the named object
        reads = n.total + (1 if self.named_object else 0)  # a HeadObject per attempt, the source's ranged GET
        gb_months = self.i.item_bytes / GIB * self.s.payload_retention_days / 30
        storage = Line(f"{gb_months:.6f} GB-month", gb_months * self.p.unit("s3.standard.storage.gb_month"))
        calls = f"{writes} {'COPY' if self.named_object else 'PUT'} + {_fmt(reads)} HEAD/GET"
        if uploaded:  # the producer's PutObject to incoming/, priced as Disa's COPY is
            writes, calls = writes + 1, f"1 PUT + {calls}"
        lines = {
            "s3.requests": Line(
                calls, writes * self.p.unit("s3.standard.put_request") + reads * self.p.unit("s3.standard.get_request")
            ),
            "s3.storage": storage,
        }
        if uploaded:  # the producer's upload, kept as long as Disa's copy
            lines["s3.incoming"] = storage
        return lines

    def _disa_workflow(self) -> dict[str, Line]:
        n = attempts(self.i.failure_rate, self.s.max_attempts)
        failures = n.failed + n.abandoned
        if self.s.workflow_type == "STANDARD":
            count = n.succeeded * self.a.standard_success_transitions + failures * self.a.standard_failure_transitions
            return {
                "sfn.transitions": Line(
                    f"{_fmt(count)} transitions", count * self.p.unit("stepfunctions.standard.state_transition")
                )
            }
        gb_s = n.succeeded * self.express_gb_seconds(self.a.express_success_ms)
        gb_s += failures * self.express_gb_seconds(self.a.express_failure_ms)
        return {
            "sfn.requests": Line(f"{_fmt(n.total)}", n.total * self.p.unit("stepfunctions.express.request")),
            "sfn.duration": Line(f"{_fmt(gb_s)} GB-s", gb_s * self.p.unit("stepfunctions.express.gb_second")),
        }

    def _disa_functions(self) -> dict[str, Line]:
        batch, memory = self.s.stream_batch_size, self.s.trigger_memory_mb
        calls = self.a.trigger_calls_per_record + (self._s3_calls() if self.stored_in_s3 else 0)
        gb_s = self.cpu_bound_gb_seconds(calls * self.a.cpu_seconds_per_call, memory)
        gb_s += self.a.trigger_batch_overhead_seconds * memory / 1024 / batch
        lines = {
            "trigger.requests": Line(f"{_fmt(1 / batch)}", self.p.unit("lambda.arm64.request") / batch),
            "trigger.duration": Line(f"{_fmt(gb_s)} GB-s", gb_s * self.p.unit("lambda.arm64.gb_second")),
        }
        retried = attempts(self.i.failure_rate, self.s.max_attempts).retried
        if retried:
            cpu = self.a.retry_calls_per_item * self.a.cpu_seconds_per_call
            retry_gb_s = retried * self.cpu_bound_gb_seconds(cpu, self.s.retry_memory_mb)
            lines["retry.duration"] = Line(
                f"{_fmt(retry_gb_s)} GB-s", retry_gb_s * self.p.unit("lambda.arm64.gb_second")
            )
        return lines

    def _s3_calls(self) -> int:
        return 3 if self.named_object else 2  # HeadObject, then PutObject, or GetObject and CopyObject

    def _disa_table(self) -> dict[str, Line]:
        n = attempts(self.i.failure_rate, self.s.max_attempts)
        first = self.wru(self.table_item_bytes + self.a.disa_attribute_bytes)
        later = self.wru(self.table_item_bytes + self.a.disa_attribute_bytes + self.a.failure_attribute_bytes)
        take_right_units = first + n.retried * later
        index = self.a.success_index_writes
        success_units = n.succeeded_first * (first + index) + (n.succeeded - n.succeeded_first) * (later + index)
        lines = {
            "ddb.claim": self.writes(1, first, self.a.claim_index_writes),
            "ddb.take_right": Line(
                f"{_fmt(take_right_units)} WRU",
                take_right_units * self.p.unit("dynamodb.ondemand.write_request_unit"),
                take_right_units,
            ),
            "ddb.success": Line(
                f"{_fmt(success_units)} WRU ({_fmt(n.succeeded * self.a.success_index_writes)} GSI)",
                success_units * self.p.unit("dynamodb.ondemand.write_request_unit"),
                success_units,
            ),
        }
        if n.retried or n.abandoned:
            rru = n.retried * self.a.index_entry_bytes / self.p.rule("dynamodb.read_unit_bytes") * 0.5
            lines |= {
                "ddb.retry_claim": self.writes(n.retried, later, self.a.retry_claim_index_writes),
                "ddb.failed": self.writes(n.failed, later, self.a.failed_index_writes),
                "ddb.abandoned": self.writes(n.abandoned, later, self.a.abandoned_index_writes),
                "ddb.index_reads": Line(f"{_fmt(rru)} RRU", rru * self.p.unit("dynamodb.ondemand.read_request_unit")),
            }
        return lines

    def _disa_rest(self) -> dict[str, Line]:
        n = attempts(self.i.failure_rate, self.s.max_attempts)
        failures = n.failed + n.abandoned
        publishes = n.total * self.sns_chunks()
        log_bytes = (self.a.trigger_summary_line_bytes + self.a.lambda_platform_lines_bytes) / self.s.stream_batch_size
        log_bytes += failures * self.a.failed_execution_log_bytes
        metric_requests = failures * self.a.put_metric_data_per_failure
        return {
            "sns.publish": Line(f"{_fmt(publishes)}", publishes * self.p.unit("sns.standard.publish_request")),
            "cw.metrics": Line(
                f"{_fmt(metric_requests)}", metric_requests * self.p.unit("cloudwatch.put_metric_data.request")
            ),
            "logs": self.logs(log_bytes),
            "xray": self.traces(self.p.rule("xray.default_rule_fixed_rate") / self.s.stream_batch_size),
            # Keys are cached (see the monthly KMS line): no request follows a message.
            "kms": Line("~0 (cached keys)", 0.0 * self.p.unit("kms.request")),
        }

    # the seed design
    def seed(self) -> dict[str, Line]:
        a, n = self.a, attempts(self.i.failure_rate, None)
        per_call = a.cpu_seconds_per_call / min(a.seed_memory_mb / self.p.rule("lambda.mb_per_vcpu"), 1.0)
        per_call += a.seed_network_wait_seconds
        gb = a.seed_memory_mb / 1024
        trigger_gb_s = per_call * gb + a.trigger_batch_overhead_seconds * gb / a.seed_batch_size
        process_gb_s = n.total * (a.seed_process_calls * per_call + a.seed_handler_overhead_seconds) * gb
        size = self.wru(self.i.item_bytes + a.seed_status_attribute_bytes)
        index = size  # projection ALL (assumed): the GSI entry is the whole item
        retry_index = n.retried * ((1 - self.i.failure_rate) * 2 + self.i.failure_rate) * index
        publishes = n.total * self.body_chunks()
        log_bytes = a.seed_line_bytes + a.lambda_platform_lines_bytes / a.seed_batch_size
        log_bytes += n.total * (a.seed_line_bytes + a.lambda_platform_lines_bytes)
        traces = n.total * self.p.rule("xray.default_rule_fixed_rate")
        traces += self.p.rule("xray.default_rule_fixed_rate") / a.seed_batch_size
        lines = {
            "sfn.transitions": Line(
                f"{_fmt(n.total * a.seed_transitions)} transitions",
                n.total * a.seed_transitions * self.p.unit("stepfunctions.standard.state_transition"),
            ),
            "trigger.requests": Line(
                f"{_fmt(1 / a.seed_batch_size)}", self.p.unit("lambda.x86_64.request") / a.seed_batch_size
            ),
            "trigger.duration": Line(
                f"{_fmt(trigger_gb_s)} GB-s", trigger_gb_s * self.p.unit("lambda.x86_64.gb_second")
            ),
            "process.requests": Line(f"{_fmt(n.total)}", n.total * self.p.unit("lambda.x86_64.request")),
            "process.duration": Line(
                f"{_fmt(process_gb_s)} GB-s", process_gb_s * self.p.unit("lambda.x86_64.gb_second")
            ),
            "ddb.status": self.writes(1, size, index),
            "sns.publish": Line(f"{_fmt(publishes)}", publishes * self.p.unit("sns.standard.publish_request")),
            "cw.describe_alarms": Line(f"{_fmt(n.total)}", n.total * self.p.unit("cloudwatch.describe_alarms.request")),
            "cw.metrics": Line(f"{_fmt(n.total)}", n.total * self.p.unit("cloudwatch.put_metric_data.request")),
            "logs": self.logs(log_bytes),
            "xray": self.traces(traces),
            "kms": Line("~0 (cached keys)", 0.0),
        }
        if n.retried:
            retry_gb_s = n.retried * per_call * gb
            item = self.i.item_bytes + a.seed_status_attribute_bytes
            rru = n.retried * item / self.p.rule("dynamodb.read_unit_bytes") * 0.5
            wru_price = self.p.unit("dynamodb.ondemand.write_request_unit")
            lines |= {
                "retry.duration": Line(f"{_fmt(retry_gb_s)} GB-s", retry_gb_s * self.p.unit("lambda.x86_64.gb_second")),
                "ddb.retry_status": Line(
                    f"{_fmt(n.retried * size + retry_index)} WRU ({_fmt(retry_index)} GSI)",
                    (n.retried * size + retry_index) * wru_price,
                    n.retried * size + retry_index,
                ),
                "ddb.index_reads": Line(f"{_fmt(rru)} RRU", rru * self.p.unit("dynamodb.ondemand.read_request_unit")),
            }
        return lines

    # fixed monthly costs
    def disa_fixed(self) -> dict[str, Line]:
        a, s, runs = self.a, self.s, self.s.retry_runs_per_month
        gb_s = runs * a.retry_idle_run_seconds * s.retry_memory_mb / 1024
        rru = runs * a.due_index_shards * a.queries_per_shard * 0.5  # an empty eventually consistent Query: 0.5 RRU
        log_bytes = runs * (a.retry_run_log_bytes + a.lambda_platform_lines_bytes)
        kms = self.kms_requests(a.kms_sns_publishing_principals, a.kms_table_callers + a.kms_log_groups)
        return {
            "retry.requests": Line(f"{_fmt(runs)} runs", runs * self.p.unit("lambda.arm64.request")),
            "retry.duration": Line(f"{_fmt(gb_s)} GB-s", gb_s * self.p.unit("lambda.arm64.gb_second")),
            "retry.queries": Line(f"{_fmt(rru)} RRU", rru * self.p.unit("dynamodb.ondemand.read_request_unit")),
            "retry.metrics": Line(
                f"{_fmt(runs * a.put_metric_data_per_run)}",
                runs * a.put_metric_data_per_run * self.p.unit("cloudwatch.put_metric_data.request"),
            ),
            "retry.logs": Line(f"{_fmt(log_bytes / 1e6)} MB", log_bytes / GIB * self.p.unit("logs.ingestion.gb")),
            "retry.xray": Line(f"{_fmt(runs)} traces", runs * self.p.unit("xray.trace_recorded")),
            "custom_metrics": Line(
                f"{len(a.custom_metrics)}", len(a.custom_metrics) * self.p.unit("cloudwatch.custom_metric.month")
            ),
            "alarms": Line(f"{s.alarms}", s.alarms * self.p.unit("cloudwatch.alarm.month")),
            "dashboard": Line(f"{a.dashboards}", a.dashboards * self.p.unit("cloudwatch.dashboard.month")),
            "kms.key": Line("1", self.p.unit("kms.key.month")),
            "kms.requests": Line(f"<= {_fmt(kms)}", kms * self.p.unit("kms.request")),
        }

    def seed_fixed(self) -> dict[str, Line]:
        a, runs = self.a, self.a.seed_retry_runs_per_month
        gb_s = runs * a.seed_retry_run_seconds * a.seed_memory_mb / 1024
        kms = self.kms_requests(1, 0)
        return {
            "retry.requests": Line(f"{_fmt(runs)} runs", runs * self.p.unit("lambda.x86_64.request")),
            "retry.duration": Line(f"{_fmt(gb_s)} GB-s", gb_s * self.p.unit("lambda.x86_64.gb_second")),
            "retry.queries": Line(
                f"{_fmt(runs * 0.5)} RRU", runs * 0.5 * self.p.unit("dynamodb.ondemand.read_request_unit")
            ),
            "custom_metrics": Line(
                f"{a.seed_custom_metrics}", a.seed_custom_metrics * self.p.unit("cloudwatch.custom_metric.month")
            ),
            "alarms": Line(f"{a.seed_alarms}", a.seed_alarms * self.p.unit("cloudwatch.alarm.month")),
            "kms.key": Line("1", self.p.unit("kms.key.month")),
            "kms.requests": Line(f"<= {_fmt(kms)}", kms * self.p.unit("kms.request")),
        }

    def kms_requests(self, sns_principals: int, other_caches: int) -> float:
        sns = MONTH_SECONDS / self.p.rule("sns.kms_data_key_reuse_seconds") * 2 * sns_principals
        return sns + MONTH_SECONDS / self.p.rule("dynamodb.kms_table_key_cache_seconds") * other_caches

    def xray_reservoir_ceiling(self) -> float:
        """The trigger's reservoir: one trace a second when it runs every second."""
        return (
            MONTH_SECONDS * self.p.rule("xray.default_rule_reservoir_per_second") * self.p.unit("xray.trace_recorded")
        )

    # what keeping items costs, per million items and month
    def stored(self) -> dict[str, Line]:
        a, s = self.a, self.s
        item = self.table_item_bytes + a.disa_attribute_bytes
        gib = MILLION * (item + a.item_storage_overhead_bytes) / GIB
        lines = {
            "storage": Line(f"{gib:.2f} GB", gib * self.p.unit("dynamodb.storage.gb_month")),
            "pitr": Line(f"{gib:.2f} GB", gib * self.p.unit("dynamodb.pitr.gb_month")),
        }
        if s.sweep_segments:
            passes = MONTH_MINUTES / (s.sweep_segments * s.retry_interval_minutes)
            rru = passes * MILLION * item / self.p.rule("dynamodb.read_unit_bytes") * 0.5
            lines["sweep"] = Line(f"{_fmt(passes)} scans", rru * self.p.unit("dynamodb.ondemand.read_request_unit"))
        return lines

    def seed_stored(self) -> dict[str, Line]:
        item = self.i.item_bytes + self.a.seed_status_attribute_bytes
        gib = 2 * MILLION * (item + self.a.item_storage_overhead_bytes) / GIB  # table + GSI (ALL)
        return {"storage": Line(f"{gib:.2f} GB", gib * self.p.unit("dynamodb.storage.gb_month"))}

    def producer_put(self) -> Line:
        units = self.wru(self.table_item_bytes)
        return Line(f"{units} WRU", units * self.p.unit("dynamodb.ondemand.write_request_unit"))


@dataclass(frozen=True)
class Estimate:
    inputs: Inputs
    disa: dict[str, Line]
    seed: dict[str, Line]
    disa_fixed: dict[str, Line]
    seed_fixed: dict[str, Line]
    disa_stored: dict[str, Line]
    seed_stored: dict[str, Line]
    producer_put: Line
    xray_reservoir_ceiling: float
    success_path: dict[str, Line]  # Disa at the goal's item size, no failures
    success_path_item_bytes: int
    small_items_success_path: dict[str, Line]  # the same with items that fit 1 KB with Disa's attributes
    small_item_bytes: int
    express_success_path: dict[str, Line]

    def total(self, lines: Mapping[str, Line]) -> float:
        """Dollars for the estimate's messages."""
        return _sum(lines) * self.inputs.messages

    @property
    def disa_total(self) -> float:
        return self.total(self.disa)

    @property
    def seed_total(self) -> float:
        return self.total(self.seed)


def _sum(lines: Mapping[str, Line]) -> float:
    return sum(line.usd_per_message for line in lines.values())


def estimate(inputs: Inputs, prices: Prices | None = None, assumptions: Assumptions = ASSUMPTIONS) -> Estimate:
    inputs.validate()
    prices = prices or load_prices()
    model = _Model(inputs, prices, assumptions)
    goal_bytes = min(inputs.item_bytes, GOAL_ITEM_BYTES)
    success = replace(inputs, failure_rate=0.0, item_bytes=goal_bytes)
    small_bytes = prices.rule("dynamodb.write_unit_bytes") - assumptions.disa_attribute_bytes
    express = replace(success, settings=replace(inputs.settings, workflow_type="EXPRESS"))
    return Estimate(
        inputs=inputs,
        disa=model.disa(),
        seed=model.seed(),
        disa_fixed=model.disa_fixed(),
        seed_fixed=model.seed_fixed(),
        disa_stored=model.stored(),
        seed_stored=model.seed_stored(),
        producer_put=model.producer_put(),
        xray_reservoir_ceiling=model.xray_reservoir_ceiling(),
        success_path=_Model(success, prices, assumptions).disa(),
        success_path_item_bytes=goal_bytes,
        small_items_success_path=_Model(replace(success, item_bytes=int(small_bytes)), prices, assumptions).disa(),
        small_item_bytes=int(small_bytes),
        express_success_path=_Model(express, prices, assumptions).disa(),
    )


# --- the report --------------------------------------------------------------------------

# Rows in order: key, label, footnote.
ROWS: tuple[tuple[str, str, int | None], ...] = (
    ("sfn.requests", "Step Functions Express: executions", 2),
    ("sfn.duration", "Step Functions Express: duration", 2),
    ("sfn.transitions", "Step Functions Standard: state transitions", 3),
    ("trigger.requests", "trigger Lambda: invocations", 1),
    ("trigger.duration", "trigger Lambda: duration", 1),
    ("process.requests", "process Lambda (seed): invocations", 9),
    ("process.duration", "process Lambda (seed): duration", 9),
    ("retry.duration", "retry Lambda: claim + start per retried attempt", 6),
    ("ddb.claim", "DynamoDB: trigger's claim (+ DueIndex put)", 4),
    ("ddb.take_right", "DynamoDB: take the publish right", 4),
    ("ddb.success", "DynamoDB: RecordSuccess (+ DueIndex delete)", 4),
    ("ddb.status", "DynamoDB (seed): status update (+ GSI)", 10),
    ("ddb.retry_claim", "DynamoDB: retry job's claim (+ DueIndex move)", 6),
    ("ddb.failed", "DynamoDB: RecordFailed (+ DueIndex move)", 6),
    ("ddb.abandoned", "DynamoDB: RecordAbandoned (+ DueIndex delete)", 6),
    ("ddb.retry_status", "DynamoDB (seed): retried attempt's status update", 10),
    ("ddb.index_reads", "DynamoDB: retry job's index reads", 6),
    ("sns.publish", "SNS: publish requests (64 KB chunks)", None),
    ("cw.describe_alarms", "CloudWatch: DescribeAlarms (seed)", 11),
    ("cw.metrics", "CloudWatch: PutMetricData", 5),
    ("logs", "CloudWatch Logs: ingestion", 5),
    ("xray", "X-Ray: traces recorded", 7),
    ("kms", "KMS: requests", 8),
    ("s3.requests", "S3: upload or store the body, find it again per attempt", 12),
    ("s3.storage", "S3: the stored body (payloads/), for PayloadRetentionDays", 12),
    ("s3.incoming", "S3: the producer's upload (incoming/), for PayloadRetentionDays", 12),
)
FIXED_ROWS: tuple[tuple[str, str], ...] = (
    ("retry.requests", "retry job: invocations"),
    ("retry.duration", "retry job: duration of idle runs"),
    ("retry.queries", "retry job: index queries"),
    ("retry.metrics", "retry job: PutMetricData, two per run"),
    ("retry.logs", "retry job: logs"),
    ("retry.xray", "retry job: X-Ray, a trace per run"),
    ("custom_metrics", "CloudWatch custom metrics"),
    ("alarms", "CloudWatch alarms"),
    ("dashboard", "CloudWatch dashboard"),
    ("kms.key", "KMS customer managed key"),
    ("kms.requests", "KMS requests (keys renewed every 5 min)"),
)
STORED_ROWS: tuple[tuple[str, str], ...] = (
    ("storage", "DynamoDB storage (table + index)"),
    ("pitr", "DynamoDB point-in-time recovery"),
    ("sweep", "the sweep's scans (SweepSegments)"),
)
GROUPS = {
    "sfn": "Step Functions",
    "trigger": "trigger Lambda",
    "retry": "retry Lambda",
    "ddb": "DynamoDB writes",
    "sns": "SNS",
    "cw": "CloudWatch metrics",
    "logs": "CloudWatch Logs",
    "xray": "X-Ray",
    "kms": "KMS",
    "s3": "S3 (large bodies)",
}


def _usd(value: float) -> str:
    return f"{value:,.4f}"


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _table(
    rows: tuple[tuple[str, str], ...],
    disa: Mapping[str, Line],
    seed: Mapping[str, Line],
    scale: float,
    quantities: tuple[str, str],
    dollars: tuple[str, str],
) -> str:
    """Disa and the seed design side by side; a row neither design has is left out; last, the totals."""
    table = []
    for key, label in rows:
        mine, theirs = disa.get(key), seed.get(key)
        if mine is None and theirs is None:
            continue
        table.append(
            [
                label,
                mine.calls if mine else "-",
                _usd(mine.usd_per_message * scale) if mine else "-",
                theirs.calls if theirs else "-",
                _usd(theirs.usd_per_message * scale) if theirs else "-",
            ]
        )
    table.append(["total", "", _usd(_sum(disa) * scale), "", _usd(_sum(seed) * scale)])
    headers = ["line item", quantities[0], dollars[0], quantities[1], dollars[1]]
    return console.table(table, headers=headers, right_aligned_from=2)


def _header(e: Estimate, prices: Prices) -> list[str]:
    i, s = e.inputs, e.inputs.settings
    star = set(s.assumed)

    def shown(name: str, value: object) -> str:
        return f"{name} {value}{'*' if name in star else ''}"

    lines = [
        f"disa cost: {i.messages:,} messages, items of {i.item_bytes:,} bytes, failure rate {i.failure_rate:g}; "
        f"{prices.document['region']} list prices as of {prices.as_of} (disa/operate/prices.json)",
        f"Disa's settings from {s.source}: "
        + ", ".join(
            [
                shown("WorkflowType", s.workflow_type),
                shown("StreamBatchSize", s.stream_batch_size),
                shown("MaxAttempts", s.max_attempts),
                shown("RetryIntervalMinutes", s.retry_interval_minutes),
                shown("SweepSegments", s.sweep_segments),
                shown("PayloadOffloadThreshold", s.payload_offload_threshold or "always"),
                shown("PayloadRetentionDays", s.payload_retention_days),
            ]
        ),
        f"  {shown('TriggerMemorySize', s.trigger_memory_mb)}, "
        f"{shown('StreamParallelizationFactor', s.stream_parallelization_factor)}; "
        f"retry function {s.retry_memory_mb} MB and {s.alarms} alarms (cft/nested-stacks)",
    ]
    if s.assumed:
        lines.append(
            f"  * not a parameter of the {'stack' if s.source.startswith('stack') else 'template'}: "
            "its default is assumed"
        )
    return lines


def _goal(e: Estimate) -> list[str]:
    per_million = {key: line.usd_per_message * MILLION for key, line in e.success_path.items()}
    total = sum(per_million.values())
    size = e.success_path_item_bytes
    verdict = "within the goal" if total <= GOAL_USD_PER_MILLION else f"{_money(total - GOAL_USD_PER_MILLION)} above it"
    out = [
        f"Goal: <= {_money(GOAL_USD_PER_MILLION)} per million messages of <= 1 KB. Disa's success path "
        f"({e.inputs.settings.workflow_type}, {size:,}-byte items, no failures): {_money(total)} per million, "
        f"{verdict}."
    ]
    if total <= GOAL_USD_PER_MILLION:
        return out
    groups: dict[str, float] = {}
    for key, value in per_million.items():
        groups[key.split(".")[0]] = groups.get(key.split(".")[0], 0.0) + value
    biggest = sorted(groups.items(), key=lambda kv: kv[1], reverse=True)[:3]
    out.append("  the biggest lines, and what the figures say would remove them:")
    for group, value in biggest:
        out.append(f"  - {GROUPS[group]}: {_money(value)} ({value / total:.0%}). {_remedy(e, group, total)}")
    return out


def _remedy(e: Estimate, group: str, total: float) -> str:
    a = ASSUMPTIONS
    if group == "ddb":
        units = sum(line.write_units for line in e.success_path.values())
        small = {k: v.usd_per_message * MILLION for k, v in e.small_items_success_path.items()}
        small_ddb = sum(v for k, v in small.items() if k.startswith("ddb."))
        if e.success_path_item_bytes > e.small_item_bytes:
            return (
                f"{_fmt(units)} WRU per message: three writes (claim, take the publish right, RecordSuccess) of "
                f"ceil((item + {a.disa_attribute_bytes} B of Disa's attributes) / 1 KB) each, plus 2 DueIndex writes. "
                f"Items of <= {e.small_item_bytes} B write 1 WRU each: DynamoDB {_money(small_ddb)}, "
                f"total {_money(sum(small.values()))}."
            )
        return (
            f"{_fmt(units)} WRU per message (three 1-WRU writes plus 2 DueIndex writes) is the floor of this design: "
            f"{_money(small_ddb)} on its own."
        )
    if group == "sfn" and e.inputs.settings.workflow_type == "STANDARD":
        express = sum(v.usd_per_message for v in e.express_success_path.values()) * MILLION
        return f"WorkflowType EXPRESS (the default) prices an execution per request: total {_money(express)}."
    if group == "sfn":
        return (
            "$1.00 per million executions is the list price of one execution per message; the duration is "
            f"{a.express_success_ms} ms at the 64 MB minimum."
        )
    if group == "sns":
        return "One publish request per 64 KB chunk: the floor for publishing a message at all."
    return "A small share; no single change removes it."


def _footnotes(e: Estimate) -> list[str]:
    a, s = ASSUMPTIONS, e.inputs.settings
    first = e.inputs.item_bytes + a.disa_attribute_bytes
    return [
        "Notes (every count and estimate is in disa/operate/cost.py ASSUMPTIONS):",
        f" [1] Trigger: 1/StreamBatchSize invocations per message (full batches; under light traffic the 1 s batching "
        f"window sends smaller ones). Per record 2 AWS calls x ~{a.cpu_seconds_per_call * 1000:g} ms CPU, CPU-bound: "
        f"~{a.trigger_calls_per_record * a.cpu_seconds_per_call * 1769 / 1024:.4f} GB-s at any memory up to 1,769 MB "
        f"(1 vCPU), plus ~{a.trigger_batch_overhead_seconds * 1000:g} ms per batch at {s.trigger_memory_mb} MB; arm64. "
        "StreamParallelizationFactor changes throughput, not the cost per message. Stream reads by Lambda are free.",
        f" [2] Express: 1 request per attempt; 3 tasks take ~100-200 ms, billed {a.express_success_ms} ms at 64 MB "
        f"({a.express_failure_ms} ms for a failed attempt's 4 tasks).",
        f" [3] Standard: {a.standard_success_transitions} transitions on success, "
        f"{a.standard_failure_transitions} on a failed attempt (Disa); the seed's {a.seed_transitions} per attempt "
        "are read from its description (DescribeAlarms, Choice, process Lambda, Choice, status update).",
        f" [4] A write is ceil(size / 1 KB) WRU on the larger of the item before and after; Disa's attributes add "
        f"~{a.disa_attribute_bytes} B ({e.inputs.item_bytes:,} + {a.disa_attribute_bytes} = {first:,} B here). "
        "Each DueIndex change is 1 more WRU (projection INCLUDE status, attempt, claimToken: entries < 1 KB); "
        "a sort-key change (dueAt) is a delete plus a put.",
        " [5] Success costs no metric request and no log line per message (the trigger logs one summary line per "
        "batch; the state machine logs at level ERROR); each failed attempt puts 1 PutMetricData and "
        f"~{a.failed_execution_log_bytes} B of ERROR events.",
        f" [6] Failure rate f: each attempt fails with probability f, independently; at most MaxAttempts "
        f"({s.max_attempts}) for Disa, unbounded for the seed (no cap). A refused publish is counted as billed and "
        "is not retried inside the execution (as with a denied topic policy). Retried attempts carry ~"
        f"{a.failure_attribute_bytes} B more (lastError, lastCause, statusReason).",
        " [7] X-Ray default rule: 1 request/s reservoir + 5% of the rest. Disa's executions join their trigger "
        "invocation's trace (botocore forwards X-Amzn-Trace-Id), so 5% of invocations; the seed's process Lambda, "
        "invoked by a state machine without tracing, is sampled per invocation. The reservoir is shown apart below.",
        " [8] DynamoDB caches table keys, SNS reuses a data key for 5 minutes (fixed; KmsDataKeyReusePeriodSeconds "
        "exists for SQS queues only, and topics.yaml sets nothing): KMS requests follow time, not messages; see the "
        "monthly lines.",
        f" [9] Seed functions: x86_64, {a.seed_memory_mb} MB (defaults; the seed sets none), one call after another: "
        f"~2 ms CPU (/0.072 vCPU) + ~{a.seed_network_wait_seconds * 1000:g} ms network per call; the process Lambda "
        "makes 2 (sns:Publish, PutMetricData with the HTTP status as value).",
        f" [10] Seed: one status update (sendStatus, ~{a.seed_status_attribute_bytes} B) that also writes its GSI on "
        "sendStatus; the projection is not described, ALL is assumed (the GSI write is as large as the item).",
        " [11] DescribeAlarms is counted as free (not a request-priced CloudWatch API as far as the pricing page was "
        "read); at PutMetricData's price it would add $10.00 per million to the seed.",
        f" [12] Bodies above PayloadOffloadThreshold ({s.payload_offload_threshold:,} B) are stored in S3: a "
        "HeadObject per attempt, then a PutObject (a body in the item) or a ranged GetObject and a CopyObject "
        "(an S3 object the item names: bodies above DynamoDB's 400 KB item limit, the item then "
        f"~{a.reference_item_bytes} B), "
        f"kept {s.payload_retention_days} days (PayloadRetentionDays); SNS publishes only the pointer. A named "
        "object is taken to be the producer's upload to the payload bucket's incoming/: its PUT is billed to the "
        "bucket's owner and the lifecycle rule keeps it as long as Disa's copy, so both are counted (in a "
        "PayloadSourceBuckets bucket they are that bucket owner's). Each subscriber that reads the body pays a "
        "GET. The seed design cannot publish a body above 256 KiB: its column prices what it would attempt.",
        " Not counted: the first-tier free allowances, cold starts (INIT is billed since 2025-08), deliveries to "
        "subscribers, data transfer, the on-failure queue (used only on trigger failures), EventBridge schedules "
        "(free), the job-state table being added (a few items).",
    ]


def report(e: Estimate, prices: Prices) -> str:
    n = e.inputs.messages
    monthly = (("Disa", "Disa $/month"), ("seed", "seed $/month"))
    labelled = tuple((key, f"{label} [{note}]" if note else label) for key, label, note in ROWS)
    put = e.producer_put
    return "\n".join(
        [
            *_header(e, prices),
            "",
            f"Per {n:,} messages:",
            _table(labelled, e.disa, e.seed, n, ("Disa calls/msg", "seed calls/msg"), ("Disa $", "seed $")),
            f"Not in either total: the producer's own PutItem, {put.calls} per message, "
            f"${_usd(put.usd_per_message * n)} per {n:,} messages (the user's cost in either design).",
            "",
            *_goal(e),
            "",
            "Fixed monthly costs, whatever the traffic:",
            _table(FIXED_ROWS, e.disa_fixed, e.seed_fixed, 1, *zip(*monthly, strict=True)),
            "Not in the total: X-Ray's reservoir records up to 1 trigger invocation a second, at most "
            f"{_money(e.xray_reservoir_ceiling)} a month when the trigger runs every second.",
            "",
            "Per million items kept in the table, per month (this grows with retention, not traffic):",
            _table(STORED_ROWS, e.disa_stored, e.seed_stored, 1, *zip(*monthly, strict=True)),
            "",
            *_footnotes(e),
        ]
    )


# --- the command -------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack", help="price a deployed root stack's parameters (default: cft/root-stack.yaml defaults)"
    )
    parser.add_argument("--messages", type=int, default=MILLION, help="messages to price (default 1000000)")
    parser.add_argument(
        "--item-size", type=int, default=1024, metavar="BYTES", help="item size in bytes (default 1024)"
    )
    parser.add_argument(
        "--failure-rate", type=float, default=0.0, metavar="F", help="share of publish attempts SNS refuses, 0 to <1"
    )
    parser.add_argument(
        "--workflow-type", type=str.upper, choices=["EXPRESS", "STANDARD"], help="override the stack's WorkflowType"
    )


def settings_for(args: argparse.Namespace, clients: Callable[[], Clients]) -> StackSettings:
    if args.stack:
        settings = settings_from(deployed_parameters(clients(), args.stack), f"stack {args.stack}")
    else:
        settings = settings_from(template_defaults(), "cft/root-stack.yaml defaults")
    if args.workflow_type:
        settings = replace(settings, workflow_type=args.workflow_type)
    return settings


def run(args: argparse.Namespace, clients: Callable[[], Clients]) -> int:
    """``clients`` builds the target's clients; called only with --stack."""
    inputs = Inputs(
        messages=args.messages, item_bytes=args.item_size, failure_rate=args.failure_rate
    ).validate()  # before any AWS call
    prices = load_prices()
    result = estimate(replace(inputs, settings=settings_for(args, clients)), prices)
    print(report(result, prices))
    return 0
