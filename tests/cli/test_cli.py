"""The `disa` command against moto: packaging into a private bucket, sending items in
every accepted form, status, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from disa_lambda.dal.groups import GroupLedger
from disa_lambda.models.group import GroupPosition
from disa_lambda.models.status import Field, Status

from disa.common.aws import Target
from disa.common.errors import UserError
from disa.deploy import subscribers
from disa.deploy.packaging import tls_only_policy
from tests.support.cli import disa
from tests.support.moto_stack import NAME_PREFIX
from tests.support.templates import template

pytestmark = pytest.mark.cli
ROOT = Path(__file__).resolve().parents[2]


def test_package_creates_a_private_encrypted_versioned_bucket_and_reuploads_nothing(moto_endpoint, capsys):
    code, out, _ = disa(capsys, "package", "--bucket", "disa-artifacts-test", "--endpoint-url", moto_endpoint)
    assert code == 0
    url, *parameters = out.strip().splitlines()
    assert url.startswith("https://s3.us-east-1.amazonaws.com/disa-artifacts-test/disa/")
    assert url.endswith("/cft/root-stack.yaml")
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    block = s3.get_public_access_block(Bucket="disa-artifacts-test")["PublicAccessBlockConfiguration"]
    assert all(block.values())
    assert s3.get_bucket_versioning(Bucket="disa-artifacts-test")["Status"] == "Enabled"
    assert s3.get_bucket_encryption(Bucket="disa-artifacts-test")["ServerSideEncryptionConfiguration"]["Rules"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="disa-artifacts-test")["Contents"]}
    prefix = dict(p.strip().split("=", 1) for p in parameters)["ArtifactPrefix"]
    for nested in ("encryption", "table", "topics", "roles", "state-machine", "functions", "alarms"):
        assert f"{prefix}cft/nested-stacks/{nested}.yaml" in keys
    assert f"{prefix}state-machine/publisher.asl.json" in keys

    code, again, _ = disa(capsys, "package", "--bucket", "disa-artifacts-test", "--endpoint-url", moto_endpoint)
    assert again == out, "unchanged content keeps its keys"
    assert len(s3.list_objects_v2(Bucket="disa-artifacts-test")["Contents"]) == len(keys)


def test_artifact_bucket_policy_on_aws_refuses_plain_http():
    statement = tls_only_policy("b")["Statement"][0]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]
    assert Target().uses_tls and not Target(endpoint_url="http://127.0.0.1:4566").uses_tls


def test_send_from_arguments_prints_the_key_of_a_well_formed_item(moto_stack, capsys):
    code, out, _ = disa(
        capsys, "send", "--stack", NAME_PREFIX, "hello there", "--subject", "Hi", "-a", "color=red", "--key", "k-1"
    )
    assert (code, out.strip()) == (0, "k-1")
    assert moto_stack.item("k-1") == {
        "id": {"S": "k-1"},
        "message": {"S": "hello there"},
        "subject": {"S": "Hi"},
        "attributes": {"M": {"color": {"S": "red"}}},
    }


@pytest.mark.parametrize("moto_stack", ["fifo"], indirect=True)
def test_send_on_a_fifo_stack_carries_the_group_and_the_sequence_given(moto_stack, capsys):
    code, out, _ = disa(
        capsys, "send", "--stack", NAME_PREFIX, "first", "--group-id", "g-1", "--sequence", "1", "--key", "k-1"
    )
    assert (code, out.strip()) == (0, "k-1")
    stored = moto_stack.item("k-1")
    assert stored["messageGroupId"] == {"S": "g-1"} and stored["messageSequence"] == {"N": "1"}
    assert "deduplicationId" not in stored

    code, _, err = disa(capsys, "send", "--stack", NAME_PREFIX, "x", "--group-id", "g-1", "--sequence", "0")
    assert code == 1 and err.startswith("disa: --sequence 0 must be a whole number from 1")


@pytest.mark.parametrize(
    "document",
    [
        {"message": "plain json", "attributes": {"n": 5}},
        {"message": {"S": "plain json"}, "attributes": {"M": {"n": {"N": "5"}}}},
    ],
)
def test_send_from_a_file_takes_plain_and_dynamodb_json(moto_stack, capsys, tmp_path, document):
    path = tmp_path / "item.json"
    path.write_text(json.dumps(document))
    code, out, _ = disa(capsys, "send", "--stack", NAME_PREFIX, "--file", str(path))
    assert code == 0
    assert moto_stack.item(out.strip())["attributes"] == {"M": {"n": {"N": "5"}}}


def test_send_never_overwrites_an_existing_item(moto_stack, capsys):
    disa(capsys, "send", "--stack", NAME_PREFIX, "first", "--key", "same")
    code, _, err = disa(capsys, "send", "--stack", NAME_PREFIX, "second", "--key", "same")
    assert code == 1
    assert err.strip() == "disa: an item with key 'same' exists already; Disa sends on insert only, so use a new key"
    assert moto_stack.item("same")["message"] == {"S": "first"}


def test_status_counts_items_and_lists_recent_problems_with_reasons(moto_stack, capsys):
    moto_stack.put({"id": {"S": "ok"}, "message": {"S": "m"}, "status": {"S": Status.SUCCESSFUL}})
    moto_stack.put(
        {
            "id": {"S": "bad"},
            "message": {"N": "1"},
            "status": {"S": Status.REJECTED},
            "statusReason": {"S": "message: must be a non-empty string"},
            "updatedAt": {"S": "2026-01-01"},
        }
    )
    moto_stack.put({"id": {"S": "new"}, "message": {"S": "m"}})
    moto_stack.put({"id": {"S": "mine"}, "message": {"S": "m"}, "status": {"S": "DONE"}})  # not Disa's word
    code, out, _ = disa(capsys, "status", "--stack", NAME_PREFIX, "--json")
    report = json.loads(out)
    assert code == 0
    assert report["counts"] == {
        Status.WAITING: 0,
        Status.PENDING: 0,
        Status.SUCCESSFUL: 1,
        Status.FAILED: 0,
        Status.ABANDONED: 0,
        Status.REJECTED: 1,
        "DONE": 1,
        "NO STATUS YET": 1,
    }
    assert report["recentProblems"] == [
        {
            "key": "bad",
            "status": Status.REJECTED,
            "attempt": "-",
            "updated": "2026-01-01",
            "reason": "message: must be a non-empty string",
        }
    ]
    assert report["alarms"] == dict.fromkeys(moto_stack.alarms_by_logical_id.values(), "OK")


def test_commands_on_a_missing_stack_say_what_to_do(moto_engine, capsys):
    code, out, err = disa(capsys, "status", "--stack", "nope")
    assert code == 1 and out == ""
    assert err == "disa: stack nope does not exist; deploy it first with `disa deploy --stack nope`\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["send", "--stack", "s", "--endpoint-url", "http://127.0.0.1:9", "x"],
            "disa: cannot reach http://127.0.0.1:9",
        ),
        (["deploy", "--bogus"], "disa: unrecognized arguments: --bogus"),
        ([], "disa: the following arguments are required: command"),
        (
            ["deploy", "-p", "no-equals-sign", "--endpoint-url", "http://127.0.0.1:9"],
            "disa: --parameter 'no-equals-sign' must look like Name=Value\n",
        ),
        (["chaos", "--groups", "5"], "disa: --groups applies to a FIFO run; add --fifo\n"),
        (["chaos", "--fifo", "--groups", "0"], "disa: --groups must be at least 1\n"),
    ],
)
def test_mistakes_print_one_line_and_no_traceback(args, expected):
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_CONFIG_FILE": "/dev/null",
    }
    result = subprocess.run(
        [sys.executable, "-m", "disa", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )
    assert result.returncode != 0
    assert result.stderr.startswith(expected)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_sns_outage_on_aws_is_a_deny_statement_in_the_topic_policy_and_off_removes_only_it(moto_stack, capsys):
    sns = moto_stack.clients["sns"]

    def statements() -> list[dict]:
        policy = sns.get_topic_attributes(TopicArn=moto_stack.topic_arn)["Attributes"]["Policy"]
        return json.loads(policy)["Statement"]

    before = statements()
    code, out, _ = disa(capsys, "fault", "sns-outage", "on", "--stack", NAME_PREFIX)
    assert (code, out) == (0, "SNS outage on: topic policy statement DisaFaultSnsOutage added\n")
    [deny] = [s for s in statements() if s not in before]
    assert deny == {
        "Sid": "DisaFaultSnsOutage",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sns:Publish",
        "Resource": moto_stack.topic_arn,
    }
    assert disa(capsys, "fault", "sns-outage", "off", "--stack", NAME_PREFIX)[0] == 0
    assert statements() == before


def test_status_prints_aligned_tables_for_people(moto_stack, capsys):
    moto_stack.put({"id": {"S": "007"}, "message": {"S": "m"}, "status": {"S": Status.FAILED}, "attempt": {"N": "2"}})
    code, out, _ = disa(capsys, "status", "--stack", NAME_PREFIX)
    lines = out.splitlines()
    assert code == 0
    assert lines[:7] == [
        "Status      Items",
        "WAITING     0",
        "PENDING     0",
        "SUCCESSFUL  0",
        "FAILED      1",
        "ABANDONED   0",
        "REJECTED    0",
    ]
    assert "oldest PENDING since: -" in lines
    assert lines[-2].split() == ["key", "status", "attempt", "updated", "reason"]
    assert lines[-1].split() == ["007", "FAILED", "2"], "a key that looks like a number stays as written"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--queue-type", "fifo"],
            "publishes to a standard topic and AWS refuses to subscribe a FIFO queue to it; drop --queue-type fifo",
        ),
        (["--handler", "orders.handler"], "--handler and --code go together"),
        (["--handler", "orders", "--code", "."], "--handler 'orders' must look like module.function"),
        (["--handler", "nowhere.handler", "--code", "."], "--handler nowhere.handler: no nowhere.py in ."),
        (["--filter-policy", "{kind"], "--filter-policy is not JSON"),
        (["--filter-policy", "[1]"], "--filter-policy must be a JSON object"),
        (["-p", "MessageRetentionSeconds=1209600"], "DeadLetterRetentionSeconds (1209600) must exceed"),
        (["--payload-bucket", "Team_Bodies"], "--payload-bucket 'Team_Bodies' is not an S3 bucket name"),
        (["--payload-bucket", "a..b"], "--payload-bucket 'a..b' is not an S3 bucket name"),
        (["--payload-bucket", "10.0.0.1"], "--payload-bucket '10.0.0.1' is not an S3 bucket name"),
        (["-p", "ExtraPayloadBuckets=ok-bucket,x"], "--payload-bucket 'x' is not an S3 bucket name"),
        (
            [arg for n in range(4) for arg in ("--payload-bucket", f"bodies-{n}")],
            "--payload-bucket takes at most 3 buckets (the subscriber stack grants each by its position); 4 were",
        ),
    ],
)
def test_subscribe_refuses_what_aws_or_the_consumer_would_refuse_in_one_line(moto_stack, capsys, args, expected):
    code, out, err = disa(capsys, "subscribe", "orders", "--stack", NAME_PREFIX, *args)
    assert (code, out) == (1, "")
    assert err.startswith(f"disa: {expected}") or expected in err, err
    assert len(err.strip().splitlines()) == 1


def test_subscribe_refuses_disas_own_payload_bucket_as_an_extra_one(moto_stack, capsys):
    # Read whole, it would let the consumer read producers' uploads in incoming/ too.
    code, out, err = disa(
        capsys, "subscribe", "orders", "--stack", NAME_PREFIX, "--payload-bucket", moto_stack.payload_bucket
    )
    assert (code, out) == (1, "")
    assert err == (
        f"disa: --payload-bucket {moto_stack.payload_bucket} is the Disa stack's own payload bucket, whose payloads/ "
        "the consumer reads already; name only buckets other producers' SNS extended clients write to\n"
    )


@pytest.mark.parametrize(
    ("request_", "passed"),
    [
        (subscribers.Subscription("orders"), None),  # as the stack has them
        (subscribers.Subscription("orders", payload_buckets=("team-bodies",)), "team-bodies,,"),
        (subscribers.Subscription("orders", payload_buckets=("a-b", "c.d", "a-b")), "a-b,c.d,"),
        (subscribers.Subscription("orders", parameters={"ExtraPayloadBuckets": "x-y, z-w"}), "x-y,z-w,"),
        (subscribers.Subscription("orders", parameters={"ExtraPayloadBuckets": ""}), ",,"),  # none any more
    ],
)
def test_extra_payload_buckets_are_passed_padded_to_every_position_the_template_grants(request_, passed):
    assert subscribers._extra_payload_buckets(request_, "disa-payloads-1") == passed
    if passed is not None:
        defaults = template("subscriber-stack")["Parameters"]["ExtraPayloadBuckets"]["Default"]
        assert len(passed.split(",")) == len(defaults.split(","))


def test_subscriber_commands_name_a_missing_subscriber_and_how_to_list_them(moto_stack, capsys):
    for command in (["redrive", "ghost"], ["unsubscribe", "ghost"]):
        code, _, err = disa(capsys, *command, "--stack", NAME_PREFIX)
        assert code == 1
        listing = f"disa subscribers --stack {NAME_PREFIX}"
        assert err == f"disa: no subscriber ghost on stack {NAME_PREFIX}; list them with `{listing}`\n"
    code, out, _ = disa(capsys, "subscribers", "--stack", NAME_PREFIX)
    assert code == 0 and out.startswith(f"stack {NAME_PREFIX} has no subscribers")
    code, _, err = disa(capsys, "subscribe", "Bad_Name", "--stack", NAME_PREFIX)
    assert code == 1 and "subscriber name 'Bad_Name' must start with a letter" in err


@pytest.mark.parametrize(
    ("queue_type", "handler", "longest"), [("standard", None, 75), ("fifo", None, 70), ("standard", "a.b", 54)]
)
def test_subscriber_names_stay_within_awss_queue_and_function_name_limits(queue_type, handler, longest):
    prefix = "p" * 31
    subscribers._check_names(prefix, subscribers.Subscription("n" * (longest - 31), handler=handler), queue_type)
    with pytest.raises(UserError, match=f"together they may have {longest} characters"):
        subscribers._check_names(prefix, subscribers.Subscription("n" * (longest - 30), handler=handler), queue_type)


def _in_group(stack, key: str, sequence: int, status: Status) -> None:
    """An item of group A at ``sequence``, holding its slot in the groups table."""
    GroupLedger(stack.groups_table, stack.clients["dynamodb"]).take_slot(GroupPosition("A", sequence), stack.key(key))
    stack.put(
        {
            **stack.key(key),
            "message": {"S": f"body of {key}"},
            "messageGroupId": {"S": "A"},
            "messageSequence": {"N": str(sequence)},
            "status": {"S": status},
            "statusReason": {"S": f"{key} is {status}"},
            "claimToken": {"S": "c" * 32},
            "dueShard": {"S": "1"},
            "dueAt": {"N": "9999999999"},
        }
    )


@pytest.mark.parametrize("moto_stack", ["fifo-hold"], indirect=True)
def test_group_release_passes_an_abandoned_head_and_makes_the_next_item_due(moto_stack, capsys):
    _in_group(moto_stack, "a1", 1, Status.ABANDONED)
    _in_group(moto_stack, "a2", 2, Status.WAITING)
    code, out, _ = disa(capsys, "group", "show", "A", "--stack", NAME_PREFIX)
    assert code == 0 and out.splitlines()[1].split()[:4] == ["A", "1", "a1", "ABANDONED"]

    code, out, _ = disa(capsys, "group", "release", "A", "--stack", NAME_PREFIX)
    assert code == 0 and out.startswith("message group 'A' released past sequence 1 (item a1, ABANDONED)")
    assert GroupLedger(moto_stack.groups_table, moto_stack.clients["dynamodb"]).next_sequence("A") == 2
    assert int(moto_stack.item("a2")[Field.DUE_AT]["N"]) <= time.time(), "the next retry run claims it"

    code, _, err = disa(capsys, "group", "release", "A", "--stack", NAME_PREFIX)
    assert code == 1
    assert err == (
        "disa: sequence 2 of message group 'A' is WAITING, not ABANDONED: "
        "only a group held by an ABANDONED item can be released\n"
    )


def test_group_commands_on_a_standard_stack_say_there_are_no_groups(moto_stack, capsys):
    code, _, err = disa(capsys, "group", "show", "A", "--stack", NAME_PREFIX)
    assert (code, err) == (1, f"disa: stack {NAME_PREFIX} publishes to a standard topic: it has no message groups\n")


def test_failover_of_a_one_region_stack_says_how_to_deploy_two(moto_stack, capsys):
    code, out, err = disa(capsys, "failover", "--stack", NAME_PREFIX, "--to", "us-west-2")
    assert code == 1 and out == ""
    expected = f"disa: stack {NAME_PREFIX} runs in one region; deploy it with `disa deploy --regions A,B` first"
    assert err.strip() == expected


@pytest.mark.parametrize("moto_stack", ["two-regions"], indirect=True)
def test_failover_to_a_region_outside_the_deployment_is_refused_in_one_line(moto_stack, capsys):
    code, _, err = disa(capsys, "failover", "--stack", NAME_PREFIX, "--to", "ap-south-1")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "ap-south-1" in err


@pytest.mark.parametrize("regions", ["us-east-1", "us-east-1,us-east-1"])
def test_deploy_with_a_malformed_region_pair_says_what_it_takes(capsys, regions):
    code, _, err = disa(capsys, "deploy", "--regions", regions, "--region", "us-east-1")
    assert code == 1
    assert "must name two different regions, primary first" in err


def test_destroy_with_delete_table_run_twice_deletes_the_tables_once_and_succeeds_both_times(moto_stack, capsys):
    code, out, err = disa(capsys, "destroy", "--stack", NAME_PREFIX, "--delete-table")
    assert code == 0, err
    assert f"deleted table {moto_stack.table}" in out and f"deleted table {moto_stack.groups_table}" in out
    tables = moto_stack.clients["dynamodb"].list_tables()["TableNames"]
    assert moto_stack.table not in tables and moto_stack.groups_table not in tables

    code, out, err = disa(capsys, "destroy", "--stack", NAME_PREFIX, "--delete-table")
    assert (code, err) == (0, "")
    assert f"table {moto_stack.table}: already gone" in out


def test_destroy_of_a_missing_stack_without_delete_table_says_so_in_one_line(moto_stack, capsys):
    code, _, err = disa(capsys, "destroy", "--stack", "no-such-stack")
    assert code == 1 and err.strip() == "disa: stack no-such-stack does not exist; nothing to destroy"
