"""Canaries for engine patch 0005 (CloudWatch evaluates metric alarms on a timer and applies
TreatMissingData to periods without data). Each fails on ministack 1.5.33 as released, which
evaluates an alarm only when a datum or the alarm itself is put: an alarm never returns to OK
on silence, and an alarm whose missing data is breaching never leaves INSUFFICIENT_DATA.

The engine evaluates every ALARM_EVALUATION_INTERVAL_SECONDS (10 unless set); the alarms
use Period 10, so each test settles within about two intervals. They use alarms, metrics,
topics and queues of their own, not Disa's stack.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest

from disa.common.aws_helpers import alarm_state, received_messages, subscribe_queue, wait_until

pytestmark = pytest.mark.e2e

NAMESPACE = "DisaCanary/Alarms"
PERIOD = 10
# Longest a state change may take: the datum leaves the period, then the next tick.
INTERVAL = float(os.environ.get("ALARM_EVALUATION_INTERVAL_SECONDS", "10"))
SETTLE = PERIOD + 2 * INTERVAL + 10


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _put_alarm(cloudwatch, name: str, metric: str, treat_missing_data: str, actions: tuple[str, ...] = ()) -> None:
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace=NAMESPACE,
        MetricName=metric,
        Statistic="Sum",
        Period=PERIOD,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData=treat_missing_data,
        AlarmActions=list(actions),
        OKActions=list(actions),
    )


def _wait_state(cloudwatch, name: str, wanted: str) -> str:
    return wait_until(lambda: alarm_state(cloudwatch, name), lambda state: state == wanted, SETTLE, interval=1)


def test_alarm_returns_to_ok_on_silence_when_missing_data_is_not_breaching(local_cloud):
    # The publish-failures and abandoned-items alarms: OK again once failures stop.
    cloudwatch = local_cloud.clients()("cloudwatch")
    name, metric = _unique("canary-silence-ok"), _unique("Failures")
    cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=[{"MetricName": metric, "Value": 1}])
    _put_alarm(cloudwatch, name, metric, "notBreaching")
    assert _wait_state(cloudwatch, name, "ALARM") == "ALARM"

    assert _wait_state(cloudwatch, name, "OK") == "OK", "no datum since the failure: the alarm should be OK"


def test_alarm_with_breaching_missing_data_and_no_data_goes_to_alarm(local_cloud):
    # The retry job's heartbeat alarm: no heartbeat at all is an alarm.
    cloudwatch = local_cloud.clients()("cloudwatch")
    name = _unique("canary-heartbeat")
    _put_alarm(cloudwatch, name, _unique("Heartbeat"), "breaching")

    assert _wait_state(cloudwatch, name, "ALARM") == "ALARM", "no data, treated as breaching: ALARM"


def test_timer_transitions_notify_each_action_once(local_cloud):
    # OK on a datum, then ALARM when it stops (missing data is breaching): one notification
    # per transition, none repeated by later evaluations in the same state.
    clients = local_cloud.clients()
    cloudwatch, sns, sqs = clients("cloudwatch"), clients("sns"), clients("sqs")
    topic_arn = sns.create_topic(Name=_unique("canary-alarm-topic"))["TopicArn"]
    queue_url = subscribe_queue(sqs, sns, topic_arn, _unique("canary-alarm-watcher"))
    name, metric = _unique("canary-notify"), _unique("Heartbeat")
    cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=[{"MetricName": metric, "Value": 0}])
    _put_alarm(cloudwatch, name, metric, "breaching", actions=(topic_arn,))
    assert _wait_state(cloudwatch, name, "OK") == "OK"
    assert _wait_state(cloudwatch, name, "ALARM") == "ALARM"

    time.sleep(INTERVAL + 2)  # at least one more evaluation in ALARM
    bodies = [json.loads(m["Body"]) for m in received_messages(sqs, queue_url, wait_seconds=2)]
    assert [(b["AlarmName"], b["OldStateValue"], b["NewStateValue"]) for b in bodies] == [
        (name, "INSUFFICIENT_DATA", "OK"),
        (name, "OK", "ALARM"),
    ]
