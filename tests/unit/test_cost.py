"""`disa cost`: the model's figures follow the billing rules, the prices file is complete and
sourced, and the settings come from the root template or a deployed stack."""

from __future__ import annotations

import argparse
import json
import math
import re

import boto3
import pytest

from disa.common.aws import Clients, Target
from disa.common.errors import UserError
from disa.operate import cost
from disa.operate.cost import ASSUMPTIONS, Inputs, StackSettings, attempts, estimate, load_prices
from tests.support.moto_stack import REGION
from tests.support.templates import template

pytestmark = pytest.mark.unit

WRU = 0.625 / 1e6  # the file's price, restated: a change to prices.json shows up here
FAILURE_ONLY = ("ddb.retry_claim", "ddb.failed", "ddb.abandoned", "ddb.index_reads", "retry.duration")


def _estimate(**changes) -> cost.Estimate:
    settings = changes.pop("settings", StackSettings())
    return estimate(Inputs(settings=settings, **changes), load_prices())


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cost.add_arguments(parser)
    return parser.parse_args(argv)


def _no_aws() -> Clients:
    raise AssertionError("the model must not reach AWS without --stack")


def _table_rows(text: str, title: str, end: str) -> list[list[str]]:
    """Rows of a printed table: the lines after ``title``'s header up to ``end``."""
    lines = text.splitlines()
    start = lines.index(title) + 2
    stop = next(i for i in range(start, len(lines)) if lines[i].startswith(end))
    return [re.split(r"\s{2,}", line.strip()) for line in lines[start:stop]]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"failure_rate": 0.05},
        {"failure_rate": 0.4, "item_bytes": 70_000},
        {"settings": StackSettings(workflow_type="STANDARD"), "messages": 12_345},
    ],
)
def test_totals_are_the_sums_of_their_lines(changes):
    result = _estimate(**changes)
    n = result.inputs.messages
    assert result.disa_total == pytest.approx(sum(line.usd_per_message for line in result.disa.values()) * n)
    assert result.seed_total == pytest.approx(sum(line.usd_per_message for line in result.seed.values()) * n)

    printed = cost.report(result, load_prices())
    rows = _table_rows(printed, f"Per {n:,} messages:", "Not in either total")
    lines, (total,) = rows[:-1], rows[-1:]
    for column in (2, 4):
        shown = sum(float(row[column].replace(",", "")) for row in lines if row[column] != "-")
        assert float(total[-1 if column == 4 else 1].replace(",", "")) == pytest.approx(shown, abs=1e-3)


@pytest.mark.parametrize("item_bytes", [1, 500, 824, 825, 1024, 2048, 5000, 100_000])
def test_write_units_follow_the_item_size_in_whole_kilobytes(item_bytes):
    result = _estimate(item_bytes=item_bytes)
    per_write = math.ceil((item_bytes + ASSUMPTIONS.disa_attribute_bytes) / 1024)
    assert result.disa["ddb.claim"].write_units == per_write + 1  # + the DueIndex put
    assert result.disa["ddb.take_right"].write_units == per_write
    assert result.disa["ddb.success"].write_units == per_write + 1  # + the DueIndex delete
    for key in ("ddb.claim", "ddb.take_right", "ddb.success"):
        assert result.disa[key].usd_per_message == pytest.approx(result.disa[key].write_units * WRU)
    seed_write = math.ceil((item_bytes + ASSUMPTIONS.seed_status_attribute_bytes) / 1024)
    assert result.seed["ddb.status"].write_units == 2 * seed_write  # projection ALL: the GSI entry is the item


def test_the_producers_put_is_shown_but_not_counted():
    small, large = _estimate(item_bytes=1000), _estimate(item_bytes=3000)
    assert small.producer_put.usd_per_message == pytest.approx(1 * WRU)
    assert large.producer_put.usd_per_message == pytest.approx(3 * WRU)
    assert "producer" not in " ".join(small.disa) + " ".join(small.seed)


@pytest.mark.parametrize(("item_bytes", "chunks"), [(1, 1), (65_536, 1), (65_537, 2), (200_000, 4), (262_144, 4)])
def test_sns_requests_count_64_kb_chunks(item_bytes, chunks):
    result = _estimate(item_bytes=item_bytes)
    for design in (result.disa, result.seed):
        assert design["sns.publish"].usd_per_message == pytest.approx(chunks * 0.5 / 1e6)


def test_failures_add_the_failure_path_lines_to_disa():
    clean, failing = _estimate(), _estimate(failure_rate=0.05)
    assert not set(FAILURE_ONLY) & set(clean.disa)
    for key in FAILURE_ONLY:
        assert failing.disa[key].usd_per_message > 0, key
    assert clean.disa["cw.metrics"].usd_per_message == 0 < failing.disa["cw.metrics"].usd_per_message
    for key in ("trigger.requests", "trigger.duration", "ddb.claim"):  # once per message, failures or not
        assert failing.disa[key] == clean.disa[key]
    executions = (1 - 0.05**5) / (1 - 0.05)  # MaxAttempts 5
    assert failing.disa["sfn.requests"].usd_per_message == pytest.approx(executions * 1.0 / 1e6)
    assert failing.disa_total > clean.disa_total
    added = sum(
        failing.disa[k].usd_per_message - clean.disa.get(k, cost.Line("", 0)).usd_per_message for k in failing.disa
    )
    assert failing.disa_total - clean.disa_total == pytest.approx(added * 1e6)


def test_attempts_are_capped_for_disa_and_not_for_the_seed():
    capped = attempts(0.5, 3)
    assert (capped.total, capped.retried, capped.failed, capped.abandoned) == (1.75, 0.75, 0.75, 0.125)
    assert capped.succeeded == 0.875
    assert attempts(0.5, 1).total == 1 and attempts(0.5, 1).abandoned == 0.5
    assert attempts(0.5, None).total == pytest.approx(2.0)
    assert attempts(0.0, 5).total == 1 and attempts(0.0, 5).retried == 0


def test_standard_workflows_are_priced_per_state_transition():
    express, standard = _estimate(), _estimate(settings=StackSettings(workflow_type="STANDARD"))
    assert {"sfn.requests", "sfn.duration"} <= set(express.disa) and "sfn.transitions" not in express.disa
    assert "sfn.transitions" in standard.disa and not {"sfn.requests", "sfn.duration"} & set(standard.disa)
    per_transition = 0.025 / 1000
    # TakePublishRight, ChooseMessageShape, Publish, RecordSuccessWithExpiry, RecordSuccess, Delivered
    assert standard.disa["sfn.transitions"].usd_per_message == pytest.approx(6 * per_transition)
    failing = _estimate(settings=StackSettings(workflow_type="STANDARD", max_attempts=1), failure_rate=0.5)
    assert failing.disa["sfn.transitions"].usd_per_message == pytest.approx((0.5 * 6 + 0.5 * 7) * per_transition)
    assert standard.disa_total - express.disa_total == pytest.approx(150.0 - 1.0 - 0.2084, abs=0.01)


def test_the_workflow_type_can_be_overridden(capsys):
    assert cost.run(_args("--workflow-type", "standard"), _no_aws) == 0
    assert "WorkflowType STANDARD" in capsys.readouterr().out


def test_every_price_has_a_source_and_a_date_and_the_model_uses_each():
    document = json.loads(cost.PRICES_PATH.read_text(encoding="utf-8"))
    entries = {**document["prices"], **document["billing_rules"]}
    for key, entry in entries.items():
        assert entry["source"].startswith("https://"), key
        assert re.fullmatch(r"\d{4}-\d{2}", entry["as_of"]), key
        assert entry["note"] and isinstance(entry["confirmed"], bool), key
    for key, entry in document["prices"].items():
        assert entry["usd"] >= 0 and entry["per"] > 0 and entry["unit"], key

    prices = load_prices()  # a price the model asks for but the file lacks fails here (KeyError)
    for settings in (StackSettings(), StackSettings(workflow_type="STANDARD")):
        estimate(Inputs(settings=settings, failure_rate=0.1), prices)
    estimate(Inputs(item_bytes=5_000_000), prices)  # a body stored in S3
    assert prices.used == set(entries), "prices.json holds entries the model does not use"


def test_settings_default_to_the_root_templates_defaults(capsys):
    defaults = {name: spec.get("Default") for name, spec in template("root-stack")["Parameters"].items()}
    settings = cost.settings_from(cost.template_defaults(), "the template")
    assert settings.workflow_type == defaults["WorkflowType"]
    assert settings.stream_batch_size == int(defaults["StreamBatchSize"])
    assert settings.max_attempts == int(defaults["MaxAttempts"])
    assert settings.retry_interval_minutes == int(defaults["RetryIntervalMinutes"])
    assert settings.sweep_segments == int(defaults["SweepSegments"])
    for name, fallback in (("TriggerMemorySize", 1024), ("StreamParallelizationFactor", 1)):
        expected = int(defaults[name]) if name in defaults else fallback
        assert (name in settings.assumed) is (name not in defaults)
        value = settings.trigger_memory_mb if name == "TriggerMemorySize" else settings.stream_parallelization_factor
        assert value == expected
    functions = template("functions")["Resources"]
    assert settings.retry_memory_mb == functions["RetryFunction"]["Properties"]["MemorySize"]

    assert cost.run(_args(), _no_aws) == 0
    assert "cft/root-stack.yaml defaults" in capsys.readouterr().out


def test_the_trigger_memory_changes_little_below_one_vcpu():
    small = _estimate(settings=StackSettings(trigger_memory_mb=512)).disa["trigger.duration"].usd_per_message
    large = _estimate(settings=StackSettings(trigger_memory_mb=1769)).disa["trigger.duration"].usd_per_message
    huge = _estimate(settings=StackSettings(trigger_memory_mb=4096)).disa["trigger.duration"].usd_per_message
    assert large == pytest.approx(small, rel=0.15)  # only the per-batch overhead grows with memory
    assert huge > 2 * large  # beyond one vCPU, memory buys no speed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--failure-rate", "1.5"], "--failure-rate 1.5 must be at least 0 and below 1"),
        (["--failure-rate", "-0.1"], "--failure-rate -0.1 must be at least 0"),
        (["--item-size", "0"], "--item-size 0 must be 1 to 2,147,483,648 bytes"),
        (["--item-size", "3000000000"], "--item-size 3000000000 must be 1 to 2,147,483,648 bytes (the body size"),
        (["--messages", "0"], "--messages 0 must be at least 1"),
    ],
)
def test_mistakes_say_what_to_do(argv, message):
    with pytest.raises(UserError, match=re.escape(message)):
        cost.run(_args(*argv), _no_aws)


def test_a_goal_line_names_the_biggest_lines(capsys):
    cost.run(_args(), _no_aws)
    out = capsys.readouterr().out
    goal = next(line for line in out.splitlines() if line.startswith("Goal: <= $3.00"))
    total = float(re.search(r"no failures\): \$([\d.]+)", goal).group(1))
    clean = _estimate()
    assert total == pytest.approx(clean.disa_total, abs=0.01)  # a million messages: dollars per million
    assert "- DynamoDB writes:" in out  # the largest line of the default success path


def test_a_deployed_stacks_parameters_are_priced(moto_engine, capsys):
    body = {
        "Parameters": {
            name: {"Type": "String", "Default": default}
            for name, default in {
                "WorkflowType": "STANDARD",
                "StreamBatchSize": "10",
                "MaxAttempts": "3",
                "TriggerMemorySize": "2048",
            }.items()
        },
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName="priced", TemplateBody=json.dumps(body))
    clients = Clients(Target(region=REGION))

    assert cost.run(_args("--stack", "priced"), lambda: clients) == 0
    out = capsys.readouterr().out
    assert "settings from stack priced" in out
    assert "WorkflowType STANDARD, StreamBatchSize 10, MaxAttempts 3" in out
    assert "TriggerMemorySize 2048, StreamParallelizationFactor 1*;" in out

    with pytest.raises(UserError, match="stack missing does not exist in us-east-1; check --stack and --region"):
        cost.run(_args("--stack", "missing"), lambda: clients)


def test_a_body_above_the_threshold_adds_s3_and_publishes_only_the_pointer():
    below, above = _estimate(item_bytes=262_144), _estimate(item_bytes=262_145)
    assert "s3.requests" not in below.disa and "s3.storage" not in below.disa
    assert below.disa["sns.publish"].calls == "4"  # 64 KB chunks of the body
    assert above.disa["sns.publish"].calls == "1", "the pointer"
    put, head = 0.005 / 1000, 0.0004 / 1000  # the file's prices, restated
    assert above.disa["s3.requests"].usd_per_message == pytest.approx(put + head)
    gb_month = 262_145 / 2**30
    assert above.disa["s3.storage"].usd_per_message == pytest.approx(gb_month * 0.023)


def test_stored_bodies_cost_storage_for_the_retention_and_a_head_per_attempt():
    longer = StackSettings(payload_retention_days=60)
    base, kept = _estimate(item_bytes=300_000), _estimate(item_bytes=300_000, settings=longer)
    assert kept.disa["s3.storage"].usd_per_message == pytest.approx(2 * base.disa["s3.storage"].usd_per_message)
    retried = _estimate(item_bytes=300_000, failure_rate=0.5)
    assert retried.disa["s3.requests"].usd_per_message > base.disa["s3.requests"].usd_per_message
    always = _estimate(item_bytes=100, settings=StackSettings(payload_offload_threshold=0))
    assert "s3.requests" in always.disa


def test_a_body_too_large_for_an_item_is_a_named_object_so_the_table_writes_stay_small():
    in_item, named = _estimate(item_bytes=300_000), _estimate(item_bytes=5_000_000)
    assert in_item.disa["ddb.claim"].write_units > 290, "a 300 KB body in the item is rewritten by every write"
    assert named.disa["ddb.claim"].write_units == 2  # the ~200 B item naming the object, and its index entry
    assert named.disa["s3.requests"].calls == "1 PUT + 1 COPY + 2 HEAD/GET"
    assert named.producer_put.calls == "1 WRU"


def test_a_named_object_in_the_payload_bucket_costs_its_upload_and_its_storage_beside_disas_copy():
    # Given a 5 MB body the producer uploaded to incoming/, which the bucket's lifecycle rule
    # keeps PayloadRetentionDays as it keeps Disa's copy in payloads/
    named, in_item = _estimate(item_bytes=5_000_000), _estimate(item_bytes=300_000)
    put, get, gb_month = 0.005 / 1000, 0.0004 / 1000, 5_000_000 / 2**30  # the file's prices, restated
    # Then both objects are stored for the retention, and the upload's PUT is counted with the COPY
    assert named.disa["s3.storage"].usd_per_message == pytest.approx(gb_month * 0.023)
    assert named.disa["s3.incoming"].usd_per_message == pytest.approx(gb_month * 0.023)
    assert named.disa["s3.requests"].usd_per_message == pytest.approx(2 * put + 2 * get)
    # And a body in the item has no upload: Disa's PutObject is its only write
    assert "s3.incoming" not in in_item.disa
    assert in_item.disa["s3.requests"].usd_per_message == pytest.approx(put + get)
    # And the report prints the second storage line
    out = cost.report(named, load_prices())
    assert "S3: the producer's upload (incoming/), for PayloadRetentionDays [12]" in out
