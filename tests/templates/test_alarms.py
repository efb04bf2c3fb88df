"""Each alarm means one thing and says what to do (README, "Alarms"): read from the templates,
since the local engine does not evaluate metric math and AWS's own metrics never reach it."""

from __future__ import annotations

import json
import re

import pytest
from disa_lambda.models import metrics
from disa_lambda.models.status import ATTENTION_INDEX_NAME, Field

from tests.support.templates import ASL_PATH, ROOT, resources, template

pytestmark = pytest.mark.templates

ALARMS = resources("alarms", "AWS::CloudWatch::Alarm")
# What silence means for each alarm: most see no event as good news; the abandoned alarm
# keeps its state (its gauge is read by the retry job, whose silence the heartbeat reports);
# the heartbeat itself is the absence of data.
MISSING_DATA = {
    "PublishFailuresAlarm": "notBreaching",
    "AbandonedItemsAlarm": "ignore",
    "TriggerFailuresAlarm": "notBreaching",
    "StreamLagAlarm": "notBreaching",
    "RetryJobHeartbeatAlarm": "breaching",
    "OutcomesNotRecordedAlarm": "notBreaching",
    "ExecutionTimeoutsAlarm": "notBreaching",
    "StartThrottlesAlarm": "notBreaching",
    "DeferredStartsAlarm": "notBreaching",
    "StalledGroupsAlarm": "ignore",
}


def props(logical_id: str) -> dict:
    return ALARMS[logical_id]["Properties"]


def test_every_alarm_has_its_stated_meaning_for_missing_data_and_notifies_both_ways():
    assert set(ALARMS) == set(MISSING_DATA)
    for logical_id, treat in MISSING_DATA.items():
        assert props(logical_id)["TreatMissingData"] == treat, logical_id
        assert props(logical_id)["AlarmActions"] and props(logical_id)["OKActions"], logical_id


def test_every_alarm_description_says_what_to_do():
    for logical_id in ALARMS:
        description = props(logical_id)["AlarmDescription"]["Fn::Sub"]
        assert re.search(r"`disa [a-z]+|Check |Act: |Ask for|Read that queue", description), logical_id


def test_every_alarm_on_disa_metrics_reads_a_metric_of_the_contract_with_its_one_dimension():
    ours = [p for p in map(props, ALARMS) if p.get("Namespace") == {"Ref": "MetricNamespace"}]
    assert len(ours) == 6
    for alarm in ours:
        assert alarm["MetricName"] in set(metrics.ALL), alarm["MetricName"]
        assert alarm["Dimensions"] == [{"Name": metrics.DIMENSION, "Value": {"Ref": "NamePrefix"}}]
        expected = "Maximum" if alarm["MetricName"] in set(metrics.Gauge) else "Sum"
        assert alarm["Statistic"] == expected, alarm["MetricName"]


def test_the_abandoned_alarm_reads_the_waiting_gauge_so_it_stays_in_alarm_until_a_person_acts():
    alarm = props("AbandonedItemsAlarm")
    assert (alarm["MetricName"], alarm["Statistic"]) == (metrics.Gauge.ABANDONED_WAITING, "Maximum")
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert "disa abandoned" in alarm["AlarmDescription"]["Fn::Sub"]


def test_a_group_waiting_on_a_sequence_that_never_comes_raises_the_stalled_alarm_on_fifo_topics_only():
    alarm = props("StalledGroupsAlarm")
    assert (alarm["MetricName"], alarm["Statistic"]) == (metrics.Gauge.OLDEST_WAITING_AGE, "Maximum")
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (
        {"Ref": "StalledGroupSeconds"},
        "GreaterThanThreshold",
    )
    # Read every retry run; a sample, so it returns to OK only after three readings below.
    assert alarm["Period"] == props("AbandonedItemsAlarm")["Period"]
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3, 1)
    assert "disa group" in alarm["AlarmDescription"]["Fn::Sub"]
    alarms = template("alarms")
    assert ALARMS["StalledGroupsAlarm"]["Condition"] == "TopicIsFifo"
    assert alarms["Conditions"]["TopicIsFifo"] == {"Fn::Equals": [{"Ref": "TopicIsFifo"}, "true"]}
    root = template("root-stack")
    passed = root["Resources"]["Alarms"]["Properties"]["Parameters"]
    assert passed["TopicIsFifo"] == {"Fn::GetAtt": ["Topics", "Outputs.MessageTopicIsFifo"]}
    assert passed["StalledGroupSeconds"] == {"Ref": "StalledGroupSeconds"}
    assert root["Parameters"]["StalledGroupSeconds"]["Default"] == 900
    interface = root["Metadata"]["AWS::CloudFormation::Interface"]
    assert any("StalledGroupSeconds" in group["Parameters"] for group in interface["ParameterGroups"])


def test_publish_failures_alarm_over_m_of_n_periods_three_of_five_by_default():
    alarm = props("PublishFailuresAlarm")
    assert alarm["DatapointsToAlarm"] == {"Ref": "PublishFailureDatapoints"}
    assert alarm["EvaluationPeriods"] == {"Ref": "PublishFailurePeriods"}
    root = template("root-stack")
    defaults = {
        name: root["Parameters"][name]["Default"] for name in ("PublishFailureDatapoints", "PublishFailurePeriods")
    }
    assert defaults == {"PublishFailureDatapoints": 3, "PublishFailurePeriods": 5}
    assert root["Resources"]["Alarms"]["Properties"]["Parameters"]["PublishFailureDatapoints"] == {
        "Ref": "PublishFailureDatapoints"
    }


def test_rules_refuse_more_failing_periods_than_periods_before_anything_changes():
    root = template("root-stack")
    highest = root["Parameters"]["PublishFailureDatapoints"]["MaxValue"]
    periods = root["Parameters"]["PublishFailurePeriods"]
    rules = [r for r in root["Rules"].values() if "PublishFailurePeriods" in json.dumps(r["RuleCondition"])]

    def accepted(m: int, n: int) -> bool:
        for rule in rules:
            _, value = rule["RuleCondition"]["Fn::Equals"]
            if value == str(n):
                [assertion] = rule["Assertions"]
                allowed, _ = assertion["Assert"]["Fn::Contains"]
                return str(m) in allowed
        return True

    for n in range(periods["MinValue"], periods["MaxValue"] + 1):
        for m in range(1, highest + 1):
            assert accepted(m, n) == (m <= n), (m, n)


def test_the_retry_job_heartbeat_breaches_after_three_intervals_without_a_finished_run():
    alarm = props("RetryJobHeartbeatAlarm")
    assert (alarm["MetricName"], alarm["Statistic"]) == (metrics.Count.RETRY_JOB_RUNS, "Sum")
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 1)
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 3
    assert alarm["Period"] == {"Fn::FindInMap": ["HeartbeatPeriodSeconds", {"Ref": "RetryIntervalMinutes"}, "Seconds"]}
    mapping = template("alarms")["Mappings"]["HeartbeatPeriodSeconds"]
    intervals = template("root-stack")["Parameters"]["RetryIntervalMinutes"]["AllowedValues"]
    assert {str(minutes): {"Seconds": 60 * minutes} for minutes in intervals} == mapping
    # Only where a schedule runs the job: the secondary's first deploy has none.
    assert ALARMS["RetryJobHeartbeatAlarm"]["Condition"] == "RetryJobScheduled"


def test_executions_that_end_without_the_items_fate_are_counted_by_the_state_machine_and_timeouts_by_aws():
    # AWS/States ExecutionsFailed also counts every refused publish (the Fail state
    # PublishFailed), so the state machine counts what its failed writes leave undecided.
    alarm = props("OutcomesNotRecordedAlarm")
    assert (alarm["MetricName"], alarm["Statistic"]) == (metrics.Count.OUTCOMES_NOT_RECORDED, "Sum")
    asl = json.loads(ASL_PATH.read_text())["States"]
    count = asl["CountOutcomeNotRecorded"]
    assert [m["MetricName"] for m in count["Parameters"]["MetricData"]] == [metrics.Count.OUTCOMES_NOT_RECORDED]
    assert count["Next"] == count["Catch"][0]["Next"] == "OutcomeNotRecorded"
    routes_to_the_end = {
        name
        for name, state in asl.items()
        if "OutcomeNotRecorded" in {state.get("Next"), *(c.get("Next") for c in state.get("Catch", []))}
    }
    assert routes_to_the_end == {"CountOutcomeNotRecorded"}, "every way there passes the count"
    timeouts = props("ExecutionTimeoutsAlarm")
    assert (timeouts["Namespace"], timeouts["MetricName"], timeouts["Statistic"]) == (
        "AWS/States",
        "ExecutionsTimedOut",
        "Sum",
    )
    assert timeouts["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": "StateMachineArn"}}]


def test_throttled_starts_and_deferred_starts_alarm_when_they_last():
    # A refused StartExecution creates no execution: only the per-API count sees it.
    throttles, deferred = props("StartThrottlesAlarm"), props("DeferredStartsAlarm")
    assert (throttles["Namespace"], throttles["MetricName"]) == ("AWS/States", "ThrottledEvents")
    assert throttles["Dimensions"] == [{"Name": "APIName", "Value": "StartExecution"}]
    assert deferred["MetricName"] == metrics.Count.STARTS_DEFERRED
    for alarm in (throttles, deferred):
        assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (5, 3)


def test_the_attention_index_holds_abandoned_items_by_their_shard_and_only_the_retry_job_counts_it():
    table = resources("table", "AWS::DynamoDB::Table")["Table"]["Properties"]
    [index] = [i for i in table["GlobalSecondaryIndexes"] if i["IndexName"] == ATTENTION_INDEX_NAME]
    assert [k["AttributeName"] for k in index["KeySchema"]] == [Field.DUE_SHARD, Field.ABANDONED_AT]
    assert {"AttributeName": Field.ABANDONED_AT, "AttributeType": "S"} in table["AttributeDefinitions"]
    statements = {
        s["Sid"]: s
        for role in resources("roles", "AWS::IAM::Role").values()
        for policy in role["Properties"].get("Policies", [])
        for s in policy["PolicyDocument"]["Statement"]
        if "Sid" in s
    }
    assert statements["CountAbandonedItems"]["Action"] == "dynamodb:Query"
    assert statements["CountAbandonedItems"]["Resource"] == {"Fn::Sub": "${TableArn}/index/AttentionIndex"}


def test_the_stack_lists_every_alarm_for_the_cli_and_the_dashboard():
    outputs = template("alarms")["Outputs"]
    names = outputs["AlarmNames"]["Value"]["Fn::Join"][1]
    arns = outputs["AlarmArns"]["Value"]["Fn::Join"][1]

    def logical_ids(entries: list, reference: str) -> set[str]:
        found = set()
        for entry in entries:
            if "Fn::If" in entry:
                entry = entry["Fn::If"][1]
            found.add(entry["Ref"] if reference == "Ref" else entry["Fn::GetAtt"][0])
        return found

    assert logical_ids(names, "Ref") == logical_ids(arns, "GetAtt") == set(ALARMS)
    root = template("root-stack")
    assert root["Outputs"]["AlarmNames"]["Value"] == {"Fn::GetAtt": ["Alarms", "Outputs.AlarmNames"]}
    assert root["Resources"]["Dashboard"]["Properties"]["Parameters"]["AlarmArns"] == {
        "Fn::GetAtt": ["Alarms", "Outputs.AlarmArns"]
    }


def test_the_readme_alarm_table_names_every_alarm():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Alarms", 1)[1].split("\n## ", 1)[0]
    for logical_id in ALARMS:
        suffix = props(logical_id)["AlarmName"]["Fn::Sub"].removeprefix("${NamePrefix}")
        assert f"`<prefix>{suffix}`" in table, suffix
