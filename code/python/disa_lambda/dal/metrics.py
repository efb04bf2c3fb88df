"""Puts Disa's CloudWatch metrics: one PutMetricData request per call, whatever the count."""

from __future__ import annotations

from typing import Any, Mapping

from disa_lambda.dal import clients


class MetricsSink:
    def __init__(self, namespace: str, stack_name: str, client: Any | None = None) -> None:
        self._namespace = namespace
        self._dimensions = [{"Name": "StackName", "Value": stack_name}]
        self._client = client or clients.client("cloudwatch")

    def put_counts(self, counts: Mapping[str, float]) -> None:
        self._client.put_metric_data(
            Namespace=self._namespace,
            MetricData=[
                {"MetricName": name, "Value": float(value), "Unit": "Count", "Dimensions": self._dimensions}
                for name, value in counts.items()
            ],
        )
