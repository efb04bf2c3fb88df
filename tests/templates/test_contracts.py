"""What the ASL and the templates reference is bound, declared and used."""

from __future__ import annotations

import json
import re

import pytest
from disa_lambda import contracts
from disa_lambda.dal import clients
from disa_lambda.logic import dedup
from disa_lambda.logic.ports import (
    EXECUTION_TIMEOUT_SECONDS,
    STAGING_RESERVE_MS,
    TIME_RESERVE_MS,
    WORST_CALL_SECONDS,
)
from disa_lambda.logic.validation import pipeline_owned_fields
from disa_lambda.models.group import SEQUENCE_ATTRIBUTE
from disa_lambda.models.settings import READ_BY_POWERTOOLS, RetrySettings, TriggerSettings
from disa_lambda.models.status import DUE_INDEX_NAME, Field, Status

from tests.support.templates import ROOT, asl_text, resources, template, template_names

pytestmark = pytest.mark.templates


def test_every_asl_placeholder_is_bound_and_every_binding_used():
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9]+)\}", asl_text()))
    bindings = resources("state-machine", "AWS::StepFunctions::StateMachine")["Publisher"]["Properties"][
        "DefinitionSubstitutions"
    ]
    assert placeholders == set(bindings)


def test_asl_writes_only_attributes_the_contract_reserves_for_the_pipeline():
    asl = json.loads(asl_text())
    reserved = pipeline_owned_fields()
    written = set()
    for state in asl["States"].values():
        params = state.get("Parameters", {})
        if "UpdateExpression" in params:
            names = params.get("ExpressionAttributeNames", {})
            set_part, _, remove_part = (" " + params["UpdateExpression"]).partition(" REMOVE ")
            targets = re.findall(r"([#\w]+)\s*=", set_part.removeprefix("SET "))
            targets += [t.strip() for t in remove_part.split(",") if t.strip()]
            written.update(names.get(t, t) for t in targets)
    assert written >= {Field.STATUS, Field.MESSAGE_ID, Field.LAST_ERROR, Field.DUE_AT, Field.PUBLISH_RIGHT}
    assert written <= reserved, written - reserved


def test_asl_status_literals_are_the_status_vocabulary():
    literals = set()
    for state in json.loads(asl_text())["States"].values():
        values = state.get("Parameters", {}).get("ExpressionAttributeValues", {})
        literals |= {value["S"] for value in values.values() if isinstance(value.get("S"), str)}
    assert literals == {Status.PENDING, Status.SUCCESSFUL, Status.FAILED, Status.ABANDONED}


@pytest.mark.parametrize(
    ("function", "settings"), [("TriggerFunction", TriggerSettings), ("RetryFunction", RetrySettings)]
)
def test_function_environment_matches_its_settings_model(function, settings):
    variables = set(template("functions")["Resources"][function]["Properties"]["Environment"]["Variables"])
    assert variables - READ_BY_POWERTOOLS == settings.variable_names()
    assert variables >= READ_BY_POWERTOOLS


def test_lease_outlasts_any_execution():
    timeout = json.loads(asl_text())["TimeoutSeconds"]
    for function in ("TriggerFunction", "RetryFunction"):
        lease = int(
            template("functions")["Resources"][function]["Properties"]["Environment"]["Variables"]["LEASE_SECONDS"]
        )
        assert lease > timeout
    assert timeout <= 300, "EXPRESS workflows run at most five minutes"


def _function(name: str) -> dict:
    return template("functions")["Resources"][name]["Properties"]


def test_no_batch_or_retry_run_outlives_its_function():
    """An item begun is at most three calls (claim, start, deferral) of at most
    worst_call_seconds each, and nothing is begun with less than TIME_RESERVE_MS left."""
    worst_item_ms = 3 * clients.worst_call_seconds() * 1000
    assert worst_item_ms <= TIME_RESERVE_MS
    trigger_ms = 1000 * int(_function("TriggerFunction")["Timeout"])
    assert trigger_ms > TIME_RESERVE_MS, "the trigger has time to begin records at all"
    sweep_budget = template("functions")["Parameters"]["SweepSecondsPerRun"]
    retry_ms = 1000 * int(_function("RetryFunction")["Timeout"])
    # The sweep's budget comes off the top; the sweep itself begins nothing with less than the reserve left.
    assert 1000 * int(sweep_budget["MaxValue"]) + TIME_RESERVE_MS < retry_ms


def test_the_lease_outlasts_storing_a_large_body_and_the_execution_after_it():
    assert clients.worst_call_seconds() == WORST_CALL_SECONDS
    asl_timeout = json.loads(asl_text())["TimeoutSeconds"]
    assert asl_timeout == EXECUTION_TIMEOUT_SECONDS
    for name in ("TriggerFunction", "RetryFunction"):
        lease = int(_function(name)["Environment"]["Variables"]["LEASE_SECONDS"])
        assert lease > WORST_CALL_SECONDS + STAGING_RESERVE_MS / 1000 + EXECUTION_TIMEOUT_SECONDS, name


def test_a_large_body_is_stored_only_when_its_calls_fit_in_what_is_left():
    """After the claim, storing a body is at most the stored object's HeadObject, the
    source's HeadObject and one CopyObject (or a PutObject), then the start and a deferral or
    rejection: begun only with STAGING_RESERVE_MS left, and both functions leave room to."""
    worst_ms = (4 * clients.worst_call_seconds() + clients.worst_copy_seconds()) * 1000
    assert worst_ms <= STAGING_RESERVE_MS
    claim_ms = clients.worst_call_seconds() * 1000
    trigger_ms = 1000 * int(_function("TriggerFunction")["Timeout"])
    assert trigger_ms - TIME_RESERVE_MS > 0 and trigger_ms > STAGING_RESERVE_MS + claim_ms, "the trigger stores bodies"
    # With the sweep's default budget; near its maximum (120 s) a retry run sets large bodies
    # back (uncounted) when its first claim was slow, and a later run or the trigger stores them.
    sweep_budget_ms = 1000 * int(template("root-stack")["Parameters"]["SweepSecondsPerRun"]["Default"])
    assert 1000 * int(_function("RetryFunction")["Timeout"]) - sweep_budget_ms > STAGING_RESERVE_MS + claim_ms


def test_every_worker_thread_has_a_connection_of_its_own():
    for name in ("TriggerFunction", "RetryFunction"):
        assert int(_function(name)["Environment"]["Variables"]["WORKERS"]) <= clients.MAX_POOL_CONNECTIONS, name


def test_due_index_projects_what_the_retry_job_reads():
    gsi = resources("table", "AWS::DynamoDB::Table")["Table"]["Properties"]["GlobalSecondaryIndexes"]
    [index] = [g for g in gsi if g["IndexName"] == DUE_INDEX_NAME]
    assert [k["AttributeName"] for k in index["KeySchema"]] == [Field.DUE_SHARD, Field.DUE_AT]
    assert set(index["Projection"]["NonKeyAttributes"]) == {Field.STATUS, Field.ATTEMPT, Field.CLAIM_TOKEN}


def test_stream_mapping_is_filtered_bounded_and_reports_partial_failures():
    mapping = template("functions")["Resources"]["StreamMapping"]["Properties"]
    assert json.loads(mapping["FilterCriteria"]["Filters"][0]["Pattern"]) == {"eventName": ["INSERT"]}
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "OnFailure" in mapping["DestinationConfig"]
    assert "MaximumRetryAttempts" in mapping and "BatchSize" in mapping
    assert mapping["ParallelizationFactor"] == {"Ref": "StreamParallelizationFactor"}
    assert mapping["MaximumRecordAgeInSeconds"] == -1, "records are given up by the retry limit, not by age"


def test_the_trigger_hears_of_every_item_of_a_group_becoming_final():
    """The MODIFY pattern the trigger passes a group's turn on matches what the pipeline
    writes: every final status, on items that carry a sequence number."""
    mapping = template("functions")["Resources"]["StreamMapping"]["Properties"]
    [modify] = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"][1:]]
    assert modify["eventName"] == ["MODIFY"]
    image = modify["dynamodb"]["NewImage"]
    assert set(image["status"]["S"]) == {status.value for status in Status if status.is_final}
    assert image[SEQUENCE_ATTRIBUTE] == {"N": [{"exists": True}]}


def _span_seconds(state: dict) -> float:
    """From the ASL: a task's calls (1 + MaxAttempts, each up to TimeoutSeconds) and the
    longest backoff between them."""
    [rule] = state["Retry"]
    waits = [
        min(rule["MaxDelaySeconds"], rule["IntervalSeconds"] * rule["BackoffRate"] ** n)
        for n in range(rule["MaxAttempts"])
    ]
    return (1 + rule["MaxAttempts"]) * state["TimeoutSeconds"] + sum(waits)


def _fifo_publish_span_seconds() -> float:
    states = json.loads(asl_text())["States"].values()
    spans = {
        _span_seconds(state)
        for state in states
        if state.get("Resource") == "arn:aws:states:::sns:publish" and "MessageGroupId.$" in state["Parameters"]
    }
    [span] = spans
    return span


def test_a_fifo_republish_ends_inside_the_deduplication_window():
    """The deadline an attempt in doubt gets (ambiguousSince + REPUBLISH_WITHIN_SECONDS) leaves
    its whole publish span inside SNS's 5 minutes; the short lease after the right is claimed
    again (one retry interval later at most) with room to spare."""
    assert _fifo_publish_span_seconds() == dedup.FIFO_PUBLISH_SPAN_SECONDS
    assert dedup.REPUBLISH_WITHIN_SECONDS + dedup.FIFO_PUBLISH_SPAN_SECONDS < dedup.DEDUPLICATION_WINDOW_SECONDS
    one_retry_interval = 60
    assert (
        dedup.FIFO_PUBLISH_LEASE_SECONDS + one_retry_interval + dedup.START_MARGIN_SECONDS
        < dedup.REPUBLISH_WITHIN_SECONDS
    )
    rule = template("root-stack")["Rules"]["FifoRetriesComeInsideTheDeduplicationWindow"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "TopicType"}, "fifo"]}
    assert [a["Assert"] for a in rule["Assertions"]] == [{"Fn::Equals": [{"Ref": "RetryIntervalMinutes"}, "1"]}]


def test_a_fifo_item_is_taken_over_only_after_its_execution_can_publish_no_more():
    """From entering TakeFifoPublishRight, an execution's last SNS call starts within the
    right's span and the publish span; the retry job waits that long (and the lease lasts it)."""
    right = _span_seconds(json.loads(asl_text())["States"]["TakeFifoPublishRight"])
    assert right == dedup.FIFO_RIGHT_SPAN_SECONDS
    assert right + _fifo_publish_span_seconds() < dedup.TAKEOVER_AFTER_SECONDS
    assert dedup.FIFO_PUBLISH_LEASE_SECONDS >= dedup.TAKEOVER_AFTER_SECONDS


def test_trigger_failures_alarm_counts_messages_sent_not_messages_waiting():
    props = resources("alarms", "AWS::CloudWatch::Alarm")["TriggerFailuresAlarm"]["Properties"]
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == ("AWS/SQS", "NumberOfMessagesSent", "Sum")


def test_stream_lag_alarm_watches_the_trigger_iterator_age_well_inside_the_stream_retention():
    props = resources("alarms", "AWS::CloudWatch::Alarm")["StreamLagAlarm"]["Properties"]
    assert (props["Namespace"], props["MetricName"]) == ("AWS/Lambda", "IteratorAge")
    assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "TriggerFunctionName"}}]
    assert 60_000 <= props["Threshold"] <= 3_600_000, "minutes of lag, hours before records leave the stream"


@pytest.mark.parametrize("name", template_names())
def test_every_parameter_is_constrained(name):
    for param, spec in template(name).get("Parameters", {}).items():
        constrained = "AllowedValues" in spec or "AllowedPattern" in spec or {"MinValue", "MaxValue"} <= set(spec)
        assert constrained, f"{name}: {param} accepts anything"
        if "AllowedPattern" in spec:
            assert spec.get("ConstraintDescription"), f"{name}: {param} has a pattern but no ConstraintDescription"


def test_root_parameters_are_all_grouped_and_labelled():
    root = template("root-stack")
    interface = root["Metadata"]["AWS::CloudFormation::Interface"]
    grouped = [p for g in interface["ParameterGroups"] for p in g["Parameters"]]
    assert sorted(grouped) == sorted(root["Parameters"])
    assert set(interface["ParameterLabels"]) == set(root["Parameters"])


def test_no_account_region_or_email_literals():
    for name in template_names():
        text = json.dumps(template(name))
        assert not re.search(r"\b\d{12}\b", text), f"{name} has an account id literal"
        assert not re.search(r"\b(us|eu|ap|sa|ca|me|af)-[a-z]+-\d\b", text), f"{name} has a region literal"
        assert not re.search(r"[\w.]+@[\w-]+\.[a-z]{2,}", text), f"{name} has an email literal"


def test_every_contract_is_loaded_by_the_code_it_describes():
    code = "\n".join(p.read_text() for p in (ROOT / "code" / "python").rglob("*.py"))
    references = "\n".join(p.read_text() for p in (ROOT / "code" / "python").rglob("*.schema.json"))
    assert contracts.names() == ["execution-input", "item", "published-message"]
    for name in contracts.names():
        loaded = f'contracts.load("{name}")' in code or f'"$ref": "{name}.schema.json"' in references
        assert loaded, f"no code loads the {name} contract"
