"""`disa status`: counts per status, the oldest PENDING item, alarm states, and the latest
problems with their reasons; with --watch, the figures of a live view, from CloudWatch."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from disa_lambda.consumer import stages
from disa_lambda.models.metrics import Count, Gauge
from disa_lambda.models.status import NO_STATUS, Field, Status

from disa.common.aws import Clients
from disa.common.aws_helpers import scan_items
from disa.operate import regions as ownership
from disa.operate import subscribers as subscriber_stacks
from disa.operate.items import show_key
from disa.operate.stack import StackInfo
from disa.operate.subscribers import SubscriberInfo

PROBLEMS = (Status.FAILED, Status.ABANDONED, Status.REJECTED)


def status_report(clients: Clients, info: StackInfo, recent: int = 10) -> dict[str, Any]:
    """Reads the whole table (a paginated Scan of a few attributes): meant for people, not
    for a loop."""
    counts: Counter[str] = Counter()
    oldest_pending: str | None = None
    problems: list[dict[str, str]] = []
    items = scan_items(
        clients("dynamodb"),
        info.table,
        ProjectionExpression=f"#k, #s, {Field.STATUS_REASON}, {Field.ACCEPTED_AT}, {Field.UPDATED_AT}, {Field.ATTEMPT}",
        ExpressionAttributeNames={"#k": info.key_name, "#s": Field.STATUS},
    )
    for item in items:
        status = Status.of(item)
        counts[status or NO_STATUS] += 1
        if status is Status.PENDING:
            accepted = item.get(Field.ACCEPTED_AT, {}).get("S")
            if accepted and (oldest_pending is None or accepted < oldest_pending):
                oldest_pending = accepted
        if status in PROBLEMS:
            problems.append(
                {
                    "key": show_key(item[info.key_name]),
                    "status": status,
                    "attempt": item.get(Field.ATTEMPT, {}).get("N", "-"),
                    "updated": item.get(Field.UPDATED_AT, {}).get("S", ""),
                    "reason": item.get(Field.STATUS_REASON, {}).get("S", ""),
                }
            )
    problems.sort(key=lambda p: p["updated"], reverse=True)
    alarms = clients("cloudwatch").describe_alarms(AlarmNames=list(info.alarm_names))["MetricAlarms"]
    return {
        "counts": {str(s): counts.get(s, 0) for s in (*Status, *sorted(set(counts) - set(Status)))},
        "oldestPending": oldest_pending,
        "alarms": {a["AlarmName"]: a["StateValue"] for a in alarms},
        "recentProblems": problems[:recent],
    }


# --- `disa status --watch`: the figures of one refresh ---------------------------------------
#
# Read from CloudWatch, not the table: a Scan every few seconds would read the whole table
# each time. One GetMetricData call per refresh carries every metric below, priced per metric
# requested ($0.01 per 1,000), so a refresh costs METRICS x $0.00001 whatever the window.
# Alarm states (DescribeAlarms) are not request-priced; dead-letter depths come from SQS
# (GetQueueAttributes, $0.40 per million requests), which knows them now, where CloudWatch's
# SQS metrics are a minute or more behind; the ownership record is one GetItem per region.

GET_METRIC_DATA_USD_PER_METRIC = 0.01 / 1000
PERCENTILES = ("p50", "p95", "p99")
# The retry job's readings are taken at the end of each run: a window at least this much
# longer than its interval holds the last one.
GAUGE_SLACK_MINUTES = 2
# AWS's metrics beside Disa's counts: what SNS accepted from the topic.
PUBLISHED = "NumberOfMessagesPublished"


@dataclass(frozen=True)
class Rate:
    """A count per minute: in the minute now running (partial), the one before, and the
    average minute of the window."""

    this_minute: float
    last_minute: float
    per_minute: float


@dataclass(frozen=True)
class Reading:
    """A gauge's last reading (the retry job's, at the end of a run) and the start of the
    minute it was taken in (CloudWatch keeps one-minute periods)."""

    value: float
    at: datetime


@dataclass(frozen=True)
class Percentiles:
    """Milliseconds; None where the window holds no sample (or the endpoint has no
    percentiles). ``samples`` is how many the percentiles were taken over, when known."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    samples: int | None = None

    @property
    def empty(self) -> bool:
        return self.p50 is None and self.p95 is None and self.p99 is None


@dataclass(frozen=True)
class SubscriberLine:
    name: str
    dead_letters: int
    end_to_end: Percentiles  # accepted -> consumer done (the consumer helper's EndToEnd)


@dataclass(frozen=True)
class WatchFrame:
    """One refresh of `disa status --watch`, as plain data (screens.py draws it)."""

    stack: str
    region: str
    taken_at: datetime
    window_minutes: int
    rates: dict[str, Rate]  # metric name -> its counts per minute (Disa's counts, then SNS's published)
    gauges: dict[str, Reading | None]  # Gauge name -> the last reading in the window, None if none
    execution_time: Percentiles  # the state machine's ExecutionTime
    subscribers: list[SubscriberLine]
    alarms: dict[str, str]  # alarm name -> OK, ALARM or INSUFFICIENT_DATA
    ownership: dict[str, dict[str, Any]]  # two regions: each replica's view of who publishes
    metrics_requested: int

    def usd_per_hour(self, every_seconds: float) -> float:
        return self.metrics_requested * GET_METRIC_DATA_USD_PER_METRIC * 3600 / every_seconds


@dataclass(frozen=True)
class _Query:
    id: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str
    period: int

    def request(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "MetricStat": {
                "Metric": {
                    "Namespace": self.namespace,
                    "MetricName": self.metric,
                    "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
                },
                "Period": self.period,
                "Stat": self.stat,
            },
            "ReturnData": True,
        }


def watch_window_minutes(info: StackInfo, minutes: int) -> int:
    """The window of the averages and percentiles: ``minutes``, widened to hold the retry
    job's last reading."""
    return max(minutes, info.retry_interval_minutes + GAUGE_SLACK_MINUTES)


def watch_queries(info: StackInfo, subscribers: list[SubscriberInfo], window_minutes: int) -> list[_Query]:
    """Every metric one refresh requests (one GetMetricData call)."""
    ours = tuple((d["Name"], d["Value"]) for d in info.metric_dimensions)
    window = window_minutes * 60
    queries = [_Query(f"count_{i}", info.metric_namespace, name, ours, "Sum", 60) for i, name in enumerate(Count)]
    queries.append(_Query("published", "AWS/SNS", PUBLISHED, (("TopicName", info.topic_name),), "Sum", 60))
    queries += [_Query(f"gauge_{i}", info.metric_namespace, name, ours, "Maximum", 60) for i, name in enumerate(Gauge)]
    if info.state_machine_arn:
        machine = (("StateMachineArn", info.state_machine_arn),)
        queries += _distribution("sfn", "AWS/States", "ExecutionTime", machine, window)
    for i, subscriber in enumerate(subscribers):
        who = ((stages.DIMENSION, subscriber.metric_name),)
        queries += _distribution(f"sub{i}", stages.NAMESPACE, stages.END_TO_END.metric, who, window)
    return queries


def _distribution(
    prefix: str, namespace: str, metric: str, dimensions: tuple[tuple[str, str], ...], window: int
) -> list[_Query]:
    """The percentiles of ``metric`` over the whole window (one period), and its sample count."""
    stats = (*PERCENTILES, "SampleCount")
    return [_Query(f"{prefix}_{stat[:3].lower()}", namespace, metric, dimensions, stat, window) for stat in stats]


def watch_frame(
    clients: Clients,
    info: StackInfo,
    subscribers: list[SubscriberInfo],
    minutes: int = 60,
    now: float | None = None,
) -> WatchFrame:
    """The figures of one refresh: one GetMetricData call, one DescribeAlarms call, one SQS
    GetQueueAttributes per subscriber, one GetItem per region of a two-region deployment."""
    taken = time.time() if now is None else now
    window_minutes = watch_window_minutes(info, minutes)
    end = (int(taken) // 60 + 1) * 60  # the end of the minute now running
    start = end - window_minutes * 60
    queries = watch_queries(info, subscribers, window_minutes)
    results = _metric_data(clients, queries, start, end)
    alarm_names = [*info.alarm_names, *(n for s in subscribers for n in (s.dead_letter_alarm, s.oldest_message_alarm))]
    return WatchFrame(
        stack=info.name,
        region=info.region,
        taken_at=datetime.fromtimestamp(taken, tz=UTC),
        window_minutes=window_minutes,
        rates=_rates(results, end, window_minutes),
        gauges={name: _last_reading(results.get(f"gauge_{i}")) for i, name in enumerate(Gauge)},
        execution_time=_percentiles(results, "sfn"),
        subscribers=[
            SubscriberLine(
                name=subscriber.name,
                dead_letters=subscriber_stacks.depth(clients, subscriber.dead_letter)["waiting"],
                end_to_end=_percentiles(results, f"sub{i}"),
            )
            for i, subscriber in enumerate(subscribers)
        ],
        alarms=_alarm_states(clients, alarm_names),
        ownership=ownership.describe(clients, info),
        metrics_requested=len(queries),
    )


def _metric_data(clients: Clients, queries: list[_Query], start: int, end: int) -> dict[str, dict[str, Any]]:
    """Results by query id, values keyed by their timestamp. A NextToken follows only past
    100,800 data points, which a window of a day does not reach."""
    request: dict[str, Any] = {
        "MetricDataQueries": [q.request() for q in queries],
        "StartTime": datetime.fromtimestamp(start, tz=UTC),
        "EndTime": datetime.fromtimestamp(end, tz=UTC),
        "ScanBy": "TimestampDescending",
    }
    found: dict[str, dict[str, Any]] = {}
    while True:
        answer = clients("cloudwatch").get_metric_data(**request)
        for result in answer["MetricDataResults"]:
            values = found.setdefault(result["Id"], {})
            for stamp, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                if value is not None:
                    values[stamp] = float(value)
        if not answer.get("NextToken"):
            return found
        request["NextToken"] = answer["NextToken"]


def _rates(results: dict[str, dict[Any, float]], end: int, window_minutes: int) -> dict[str, Rate]:
    def rate(values: dict[Any, float]) -> Rate:
        by_minute: dict[int, float] = {}
        for stamp, value in values.items():
            minute = int(stamp.timestamp()) // 60 * 60
            by_minute[minute] = by_minute.get(minute, 0.0) + value
        return Rate(
            this_minute=by_minute.get(end - 60, 0.0),
            last_minute=by_minute.get(end - 120, 0.0),
            per_minute=sum(by_minute.values()) / window_minutes,
        )

    rates = {str(name): rate(results.get(f"count_{i}", {})) for i, name in enumerate(Count)}
    rates[PUBLISHED] = rate(results.get("published", {}))
    return rates


def _last_reading(values: dict[Any, float] | None) -> Reading | None:
    if not values:
        return None
    at = max(values)
    return Reading(values[at], at.astimezone(UTC))


def _percentiles(results: dict[str, dict[Any, float]], prefix: str) -> Percentiles:
    """The window is one period, so each percentile has one value (the latest, should the
    endpoint split the window)."""

    def latest(query_id: str) -> float | None:
        values = results.get(query_id) or {}
        return values[max(values)] if values else None

    samples = latest(f"{prefix}_sam")
    return Percentiles(
        *(latest(f"{prefix}_{p}") for p in PERCENTILES), samples=None if samples is None else int(samples)
    )


def _alarm_states(clients: Clients, names: list[str]) -> dict[str, str]:
    """In the order given; an alarm that does not exist (yet) is left out. DescribeAlarms
    takes 100 names a call."""
    states: dict[str, str] = {}
    for begin in range(0, len(names), 100):
        answer = clients("cloudwatch").describe_alarms(
            AlarmNames=names[begin : begin + 100], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
        )
        for alarm in (*answer.get("MetricAlarms", []), *answer.get("CompositeAlarms", [])):
            states[alarm["AlarmName"]] = alarm["StateValue"]
    return {name: states[name] for name in names if name in states}


DEFAULT_EVERY_SECONDS = 10
METRICS_PER_DISTRIBUTION = len(PERCENTILES) + 1  # p50, p95, p99 and the sample count


def watch_cost_note(every: float = DEFAULT_EVERY_SECONDS) -> str:
    """What --watch costs, for its help: GetMetricData is priced per metric requested."""
    base = len(Count) + 1 + len(Gauge) + METRICS_PER_DISTRIBUTION
    per_hour = base * GET_METRIC_DATA_USD_PER_METRIC * 3600 / every
    per_subscriber = METRICS_PER_DISTRIBUTION * GET_METRIC_DATA_USD_PER_METRIC * 3600 / every
    return (
        f"one GetMetricData call of {base} metrics a refresh ({METRICS_PER_DISTRIBUTION} more per subscriber) "
        f"at $0.01 per 1,000 metrics requested: ${per_hour:.3f} an hour at the default {every:g} s "
        f"(+${per_subscriber:.3f} per subscriber), five times that at 2 s"
    )
