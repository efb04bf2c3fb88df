"""Canaries for engine patch 0006 (a Lambda function's log lines in CloudWatch Embedded Metric
Format become metrics, at the line's Timestamp). Each fails on ministack 1.5.33 as released,
which writes the lines to CloudWatch Logs and creates no metric.

A function of their own prints the lines its event carries, as a handler using Powertools
Metrics prints its EMF document; the tests then read the metrics the way `disa status` does.
"""

from __future__ import annotations

import io
import json
import textwrap
import uuid
import zipfile
from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.e2e

ROLE = "arn:aws:iam::000000000000:role/canary"
PRINTER = textwrap.dedent(
    """
    def handler(event, context):
        for line in event["lines"]:
            print(line)
        return "printed"
    """
)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def printer(local_cloud) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("printer.py", PRINTER)
    name = _unique("canary-emf-printer")
    local_cloud.clients()("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler="printer.handler",
        Code={"ZipFile": buffer.getvalue()},
    )
    return name


def _print(lam, function: str, lines: list[str]) -> dict:
    """Invokes the printer; what it answered, which must be a success."""
    response = lam.invoke(FunctionName=function, Payload=json.dumps({"lines": lines}).encode())
    answer = {"status": response["StatusCode"], "error": response.get("FunctionError")}
    answer["payload"] = json.loads(response["Payload"].read())
    return answer


def _emf(namespace: str, at: datetime, dimensions: list[list[str]], metrics: dict[str, str], **members) -> str:
    """One EMF document as Powertools Metrics prints it."""
    directive = {
        "Namespace": namespace,
        "Dimensions": dimensions,
        "Metrics": [{"Name": name, "Unit": unit} for name, unit in metrics.items()],
    }
    return json.dumps({"_aws": {"Timestamp": int(at.timestamp() * 1000), "CloudWatchMetrics": [directive]}, **members})


def _statistics(cloudwatch, namespace: str, metric: str, at: datetime, dimensions: dict[str, str], **wanted) -> dict:
    """The one datapoint of the minute holding ``at``."""
    minute = at.replace(second=0, microsecond=0)
    points = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
        StartTime=minute,
        EndTime=minute + timedelta(minutes=1),
        Period=60,
        **wanted,
    )["Datapoints"]
    assert len(points) == 1, f"{namespace} {metric} {dimensions} at {at:%H:%M}: {len(points)} datapoints, not one"
    return points[0]


def test_emf_lines_become_metrics_at_their_timestamp_with_percentiles_over_every_value(local_cloud, printer):
    clients = local_cloud.clients()
    cloudwatch, namespace = clients("cloudwatch"), _unique("DisaCanary/Emf")
    # Ten minutes ago: a metric stored at invocation time instead would miss the query's minute.
    # At second 10 of it, so that the second line (a second later) falls in the same minute.
    at = (datetime.now(UTC) - timedelta(minutes=10)).replace(second=10, microsecond=0)
    stage = {"Stage": "publish"}
    lines = [
        _emf(namespace, at, [["Stage"], []], {"Latency": "Milliseconds"}, Stage="publish", Latency=list(range(1, 101))),
        _emf(
            namespace, at + timedelta(seconds=1), [["Stage"]], {"Latency": "Milliseconds"}, Stage="publish", Latency=200
        ),
    ]

    answer = _print(clients("lambda"), printer, lines)

    assert answer == {"status": 200, "error": None, "payload": "printed"}
    basic = _statistics(cloudwatch, namespace, "Latency", at, stage, Statistics=["Sum", "SampleCount", "Maximum"])
    assert (basic["SampleCount"], basic["Sum"], basic["Maximum"]) == (101, 5050 + 200, 200)
    assert basic["Unit"] == "Milliseconds"
    extended = _statistics(cloudwatch, namespace, "Latency", at, stage, ExtendedStatistics=["p50", "p99"])
    assert extended["ExtendedStatistics"] == {"p50": 51, "p99": 100}, "1..100 and 200: each value a sample"
    metrics = cloudwatch.list_metrics(Namespace=namespace)["Metrics"]
    assert sorted(json.dumps(m["Dimensions"]) for m in metrics) == [
        "[]",
        json.dumps([{"Name": "Stage", "Value": "publish"}]),
    ]


def test_malformed_emf_lines_are_ignored_and_the_invocation_still_succeeds(local_cloud, printer):
    clients = local_cloud.clients()
    cloudwatch, namespace = clients("cloudwatch"), _unique("DisaCanary/Emf")
    at = datetime.now(UTC).replace(microsecond=0)
    no_metrics = json.loads(_emf(namespace, at, [[]], {}, NoMetrics=1))
    del no_metrics["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    lines = [
        '{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [',  # bad JSON
        json.dumps(no_metrics),
        _emf(namespace, at, [[]], {"NotANumber": "Count"}, NotANumber="seven"),
        _emf(namespace, at, [["Missing"]], {"NoDimensionValue": "Count"}, NoDimensionValue=1),
        _emf(namespace, at, [[]], {"Good": "Count"}, Good=7),
    ]

    answer = _print(clients("lambda"), printer, lines)

    assert answer == {"status": 200, "error": None, "payload": "printed"}
    assert [m["MetricName"] for m in cloudwatch.list_metrics(Namespace=namespace)["Metrics"]] == ["Good"]
    assert _statistics(cloudwatch, namespace, "Good", at, {}, Statistics=["Sum"])["Sum"] == 7
