"""cft/nested-stacks/dashboard.yaml, evaluated: the body against AWS's dashboard syntax, every
metric of the contract (disa_lambda.models.metrics) charted in its namespace with its one
dimension and its statistic, the grid, the alarm widget, and the SEARCH expression that finds
the subscribers' dead-letter queues."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from disa_lambda.models import metrics

from tests.support.templates import (
    DASHBOARD_SCHEMA,
    Evaluator,
    dashboard_expressions,
    dashboard_grid_faults,
    dashboard_metric_rows,
    template,
)

pytestmark = pytest.mark.templates
NAME = "dashboard"
REGION = "eu-west-1"
PREFIX = "disa-eu"
NAMESPACE = "Disa/Pipeline"
STATE_MACHINE = f"arn:aws:states:{REGION}:123456789012:stateMachine:{PREFIX}-publisher"
ALARMS = [
    f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{PREFIX}-{name}"
    for name in ("publish-failures", "abandoned-items", "trigger-failures", "stream-lag")
]
SAMPLE = {
    "NamePrefix": PREFIX,
    "MetricNamespace": NAMESPACE,
    "StateMachineArn": STATE_MACHINE,
    "TriggerFunctionName": f"{PREFIX}-trigger",
    "RetryFunctionName": f"{PREFIX}-retry",
    "MessageTopicName": f"{PREFIX}-messages",
    "TriggerFailureQueueName": f"{PREFIX}-trigger-failures",
    # CloudFormation resolves a CommaDelimitedList's Ref to a list.
    "AlarmArns": ALARMS,
}
ATTRIBUTES = {"AWS::Region": REGION, "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}


def _dashboard(**parameters) -> dict:
    stack = Evaluator(NAME, {**SAMPLE, **parameters}, ATTRIBUTES)
    return json.loads(stack.resolve(template(NAME)["Resources"]["Dashboard"]["Properties"]["DashboardBody"]))


def _ours(dashboard: dict) -> list[tuple[str, tuple[str, ...], dict]]:
    return [(m, dims, r) for ns, m, dims, r in dashboard_metric_rows(dashboard) if ns == NAMESPACE]


def _charted(dashboard: dict) -> set[tuple[str, str, tuple[str, ...], str | None]]:
    return {(ns, m, dims, r.get("stat")) for ns, m, dims, r in dashboard_metric_rows(dashboard)}


def test_takes_what_the_root_stack_passes_and_names_itself_after_the_prefix():
    dashboard = template(NAME)
    assert set(dashboard["Parameters"]) == set(SAMPLE)
    assert all("Default" not in p for p in dashboard["Parameters"].values()), "the root stack passes each"
    assert (
        dashboard["Parameters"]["NamePrefix"]["AllowedPattern"]
        == template("root-stack")["Parameters"]["NamePrefix"]["AllowedPattern"]
    )
    assert dashboard["Parameters"]["AlarmArns"]["Type"] == "CommaDelimitedList"
    [(logical_id, resource)] = dashboard["Resources"].items()
    assert resource["Type"] == "AWS::CloudWatch::Dashboard"
    stack = Evaluator(NAME, SAMPLE, ATTRIBUTES)
    # Dashboards are global to the account: each region's stack names its own.
    assert stack.resolve(resource["Properties"]["DashboardName"]) == f"{PREFIX}-pipeline-{REGION}"
    assert dashboard["Outputs"] == {"DashboardName": {"Value": {"Ref": logical_id}}}


@pytest.mark.parametrize(
    ("parameter", "good", "bad"),
    [
        ("StateMachineArn", STATE_MACHINE, f"{PREFIX}-publisher"),
        ("MessageTopicName", f"{PREFIX}-messages.fifo", f"arn:aws:sns:{REGION}:123456789012:{PREFIX}-messages"),
        ("TriggerFunctionName", f"{PREFIX}-trigger", f"arn:aws:lambda:{REGION}:123456789012:function:x"),
        ("AlarmArns", ALARMS[0], f"{PREFIX}-publish-failures"),
    ],
)
def test_parameters_refuse_an_arn_for_a_name_and_a_name_for_an_arn(parameter, good, bad):
    pattern = template(NAME)["Parameters"][parameter]["AllowedPattern"]
    assert re.fullmatch(pattern, good) and not re.fullmatch(pattern, bad)


@pytest.mark.parametrize("alarms", [ALARMS, ALARMS[:1]])
def test_body_follows_aws_dashboard_syntax_on_the_grid(alarms):
    dashboard = _dashboard(AlarmArns=alarms)
    jsonschema.Draft202012Validator.check_schema(DASHBOARD_SCHEMA)
    jsonschema.validate(dashboard, DASHBOARD_SCHEMA, cls=jsonschema.Draft202012Validator)
    assert dashboard_grid_faults(dashboard) == []


def test_grid_check_finds_an_overlap_and_a_widget_past_the_edge():
    widgets = [
        {"x": 0, "y": 0, "width": 12, "height": 2, "properties": {"title": "a"}},
        {"x": 11, "y": 1, "width": 14, "height": 2, "properties": {"title": "b"}},
    ]
    assert dashboard_grid_faults({"widgets": widgets}) == ["b ends past column 24", "b overlaps a at (11, 1)"]


def test_every_metric_widget_is_in_the_stacks_region_and_charts_by_the_minute():
    widgets = [w for w in _dashboard()["widgets"] if w["type"] == "metric"]
    assert len(widgets) >= 10
    for widget in widgets:
        assert (widget["properties"]["region"], widget["properties"]["period"]) == (REGION, 60), widget


def test_opens_with_what_it_shows_and_where_to_look_next():
    [first, *_] = sorted(_dashboard()["widgets"], key=lambda w: (w["y"], w["x"]))
    assert first["type"] == "text"
    markdown = first["properties"]["markdown"]
    assert PREFIX in markdown and "`disa status --watch`" in markdown and "Alarms" in markdown


def test_charts_every_metric_of_the_contract_and_nothing_else_in_our_namespace():
    charted = {metric for metric, _, _ in _ours(_dashboard())}
    assert charted == {str(m) for m in metrics.ALL}


def test_every_row_in_our_namespace_has_exactly_the_stack_name_dimension():
    rows = _ours(_dashboard())
    assert rows
    for metric, dims, _ in rows:
        assert dims == (metrics.DIMENSION, PREFIX), metric


def test_counts_are_summed_and_gauges_taken_at_their_maximum():
    stats = {(metric, rendering.get("stat")) for metric, _, rendering in _ours(_dashboard())}
    expected = {(str(c), "Sum") for c in metrics.Count} | {(str(g), "Maximum") for g in metrics.Gauge}
    assert stats == expected


def test_charts_the_aws_services_disa_runs_on():
    charted = _charted(_dashboard())
    machine = ("StateMachineArn", STATE_MACHINE)
    trigger, retry = ("FunctionName", f"{PREFIX}-trigger"), ("FunctionName", f"{PREFIX}-retry")
    expected = {
        ("AWS/SNS", "NumberOfMessagesPublished", ("TopicName", f"{PREFIX}-messages"), "Sum"),
        ("AWS/Lambda", "IteratorAge", trigger, "Maximum"),
        *{("AWS/States", "ExecutionTime", machine, p) for p in ("p50", "p95", "p99")},
        *{("AWS/Lambda", "Duration", f, "p95") for f in (trigger, retry)},
        *{("AWS/States", m, machine, "Sum") for m in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted")},
        # StartExecution throttles are counted per API, for the account: no execution exists.
        ("AWS/States", "ThrottledEvents", ("APIName", "StartExecution"), "Sum"),
        *{("AWS/Lambda", m, f, "Sum") for m in ("Errors", "Throttles") for f in (trigger, retry)},
        ("AWS/SQS", "NumberOfMessagesSent", ("QueueName", f"{PREFIX}-trigger-failures"), "Sum"),
    }
    assert expected <= charted, expected - charted
    others = {(ns, m, dims, s) for ns, m, dims, s in charted if ns != NAMESPACE}
    assert others == expected, "an AWS metric no test names"


def test_published_line_sits_with_the_item_counts():
    [widget] = [w for w in _dashboard()["widgets"] if w["properties"].get("title") == "Items per minute"]
    labels = {row[-1]["label"]: row[1] for row in widget["properties"]["metrics"]}
    assert labels["published"] == "NumberOfMessagesPublished"
    assert {"ItemsAccepted", "ItemsRejected", "StartsDeferred", "ItemsAbandoned"} <= set(labels.values())


@pytest.mark.parametrize("alarms", [ALARMS, ALARMS[1:2]])
def test_alarm_widget_lists_exactly_the_alarms_passed(alarms):
    [widget] = [w for w in _dashboard(AlarmArns=alarms)["widgets"] if w["type"] == "alarm"]
    assert widget["properties"]["alarms"] == alarms


# The search: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/search-expression-syntax.html
SEARCH = re.compile(r"^SEARCH\('\{(?P<schema>[^}]*)\} (?P<terms>.*)', '(?P<stat>\w+)', (?P<period>\d+)\)$")


def _tokens(text: str) -> list[str]:
    """AWS's tokens of a name, in order: non-alphanumerics delimit, a capital or a digit run
    starts a new token, all lowercase."""
    return [t.lower() for t in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+", text)]


def _partial_match(term: str, value: str) -> bool:
    """A partial-match term (possibly composite, like my-disa) against a value: its tokens
    appear consecutively among the value's."""
    wanted, tokens = _tokens(term), _tokens(value)
    return any(tokens[i : i + len(wanted)] == wanted for i in range(len(tokens) - len(wanted) + 1))


def _finds(terms: str, queue_name: str) -> bool:
    """Whether the SEARCH terms (implicit AND; exact "MetricName" and partial QueueName= or bare
    terms) find ApproximateNumberOfMessagesVisible of the queue."""
    for term in terms.split():
        if term == 'MetricName="ApproximateNumberOfMessagesVisible"':
            continue
        value = term.removeprefix("QueueName=")
        assert value == term or not value.startswith('"'), "an exact QueueName match needs the whole name"
        if not _partial_match(value, queue_name):
            return False
    return True


def _subscriber_queues(prefix: str, subscriber: str, queue_type: str) -> tuple[str, str]:
    """The queue and dead-letter queue names cft/subscriber-stack.yaml gives a subscriber."""
    stack = Evaluator(
        "subscriber-stack",
        {"NamePrefix": prefix, "SubscriberName": subscriber, "QueueType": queue_type, "TopicType": "fifo"},
        ATTRIBUTES,
    )
    resources = template("subscriber-stack")["Resources"]
    return tuple(stack.resolve(resources[q]["Properties"]["QueueName"]) for q in ("Queue", "DeadLetterQueue"))


@pytest.mark.parametrize("prefix", ["disa", PREFIX])
def test_search_expression_finds_the_subscribers_dead_letter_queues_of_this_prefix(prefix):
    [expression] = dashboard_expressions(_dashboard(NamePrefix=prefix))
    match = SEARCH.fullmatch(expression["expression"])
    assert match, expression
    assert match["schema"] == "AWS/SQS,QueueName"
    assert (match["stat"], match["period"]) == ("Maximum", "60")
    assert f"QueueName={prefix}" in match["terms"].split() and "dlq" in match["terms"].split()
    for queue_type in ("standard", "fifo"):
        queue, dead_letters = _subscriber_queues(prefix, "orders", queue_type)
        assert _finds(match["terms"], dead_letters), dead_letters
        assert not _finds(match["terms"], queue), queue
        _, other_dead_letters = _subscriber_queues("other", "orders", queue_type)
        assert not _finds(match["terms"], other_dead_letters)
    assert not _finds(match["terms"], f"{prefix}-trigger-failures")


def test_token_model_follows_aws_examples():
    # The examples of the syntax page's tokenization and non-alphanumeric sections.
    assert _tokens("CustomCount1") == ["custom", "count", "1"]
    assert _tokens("Project2-trial333") == ["project", "2", "trial", "333"]
    assert _tokens("SDBFailure") == ["sdb", "failure"]
    assert all(_partial_match(t, "Network-Errors-2") for t in ("network/errors", "network-errors", "Network_Errors"))
    assert not _partial_match("orders", "disa-order-dlq")
