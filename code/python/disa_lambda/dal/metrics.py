"""Puts Disa's CloudWatch metrics: one PutMetricData request per call, whatever the count."""

from __future__ import annotations

from typing import Any, Mapping

from disa_lambda.dal import clients


class MetricsSink:
    def __init__(self, namespace: str, stack_name: str, client: Any | None = None) -> None:
        self._namespace = namespace
        self._dimensions = [{"Name": "StackName", "Value": stack_name}]
        self._client = client or clients.client("cloudwatch")

    def put(self, values: Mapping[str, float]) -> None:
        """Counts and gauges (models/metrics.py) in one request; a metric named ...Seconds is
        in seconds."""
        self._client.put_metric_data(
            Namespace=self._namespace,
            MetricData=[
                {"MetricName": name, "Value": float(value), "Unit": _unit(name), "Dimensions": self._dimensions}
                for name, value in values.items()
            ],
        )


def _unit(name: str) -> str:
    return "Seconds" if name.endswith("Seconds") else "Count"
