"""The operator's views against moto: `disa items` (the due index, or a Scan, then the items
themselves), `disa show` (an item's fields and history, its Step Functions executions), and
`disa status --watch`: its figures read from CloudWatch, its drawing, and the live view in a
real terminal (tmux), refreshing in place and ending cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from disa_lambda.dal.items import ItemStore
from disa_lambda.logic import attempts, clock
from disa_lambda.models.metrics import Count, Gauge
from disa_lambda.models.status import Field, Status
from rich.console import Console

from disa.common.aws import Clients, Target
from disa.common.aws_helpers import wait_until
from disa.operate import screens, status
from disa.operate.stack import StackInfo
from disa.operate.subscribers import subscribers
from tests.support.cli import disa
from tests.support.moto_stack import NAME_PREFIX, NAMESPACE, REGION, MotoStack, outputs_stack

pytestmark = pytest.mark.cli
ROOT = Path(__file__).resolve().parents[2]
HEADING = "Items per status now"


def in_flight(stack: MotoStack, key: str, state: Status, updated: str, due: int, shard: str = "0", **extra) -> None:
    """An item as the pipeline leaves one that is in flight: in the due index."""
    stack.put(
        {
            **stack.key(key),
            "message": {"S": f"body of {key}"},
            Field.STATUS: {"S": state},
            Field.ATTEMPT: {"N": "2"},
            Field.CLAIM_TOKEN: {"S": "c" * 32},
            Field.DUE_SHARD: {"S": shard},
            Field.DUE_AT: {"N": str(due)},
            Field.UPDATED_AT: {"S": updated},
            **extra,
        }
    )


def finished(stack: MotoStack, key: str, state: Status, updated: str, reason: str = "") -> None:
    stack.put(
        {
            **stack.key(key),
            "message": {"S": f"body of {key}"},
            Field.STATUS: {"S": state},
            Field.UPDATED_AT: {"S": updated},
            **({Field.STATUS_REASON: {"S": reason}} if reason else {}),
        }
    )


# --- disa items -----------------------------------------------------------------------------


def test_items_failed_come_from_the_due_index_of_every_shard_newest_first_with_their_errors(moto_stack, capsys):
    # Given FAILED items spread over the shards, a PENDING one, and a SUCCESSFUL one
    for number, shard in ((1, "0"), (2, "5"), (3, "7")):
        in_flight(
            moto_stack,
            f"f-{number}",
            Status.FAILED,
            f"2026-03-01T10:0{number}:00.000Z",
            due=2_000_000_000 + number,
            shard=shard,
            **{
                Field.STATUS_REASON: {"S": f"attempt 2 failed, retried at {number}"},
                Field.LAST_ERROR: {"S": "SNS.NotFoundException"},
            },
        )
    in_flight(moto_stack, "p-1", Status.PENDING, "2026-03-01T10:09:00.000Z", due=2_000_000_100)
    finished(moto_stack, "s-1", Status.SUCCESSFUL, "2026-03-01T10:10:00.000Z")

    # When the FAILED items are listed
    code, out, err = disa(capsys, "items", "--status", "failed", "--stack", NAME_PREFIX, "--json")

    # Then all three are, newest first, with their reasons and errors, and nothing else
    assert (code, err) == (0, "")
    listed = json.loads(out)
    assert [line["key"] for line in listed] == ["f-3", "f-2", "f-1"]
    assert listed[0] == {
        "key": "f-3",
        "status": "FAILED",
        "attempt": 2,
        "updatedAt": "2026-03-01T10:03:00.000Z",
        "statusReason": "attempt 2 failed, retried at 3",
        "lastError": "SNS.NotFoundException",
        "dueAt": 2_000_000_003,
    }

    # And a limit keeps the newest
    code, out, _ = disa(capsys, "items", "--status", "FAILED", "--limit", "2", "--stack", NAME_PREFIX, "--json")
    assert [line["key"] for line in json.loads(out)] == ["f-3", "f-2"]

    # And the table people read names the source and shows the fields
    code, out, _ = disa(capsys, "items", "--status", "PENDING", "--stack", NAME_PREFIX)
    assert code == 0
    assert "1 PENDING item, newest first (DueIndex" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("p-1"))
    assert "2026-03-01T10:09:00.000Z" in row and "2033-05-18T03:35:00Z" in row


def test_items_of_a_final_status_are_found_by_a_scan_newest_first(moto_stack, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # a wide terminal: each reason on one line
    finished(moto_stack, "r-old", Status.REJECTED, "2026-01-01T00:00:00.000Z", "message: must be a non-empty string")
    finished(moto_stack, "r-new", Status.REJECTED, "2026-02-01T00:00:00.000Z", "attributes: too many (11, at most 10)")
    finished(moto_stack, "ok", Status.SUCCESSFUL, "2026-03-01T00:00:00.000Z")
    moto_stack.put({**moto_stack.key("new"), "message": {"S": "not seen yet"}})

    code, out, _ = disa(capsys, "items", "--status", "REJECTED", "--stack", NAME_PREFIX, "--limit", "1", "--json")
    assert code == 0
    assert [(line["key"], line["statusReason"]) for line in json.loads(out)] == [
        ("r-new", "attributes: too many (11, at most 10)")
    ]

    code, out, _ = disa(capsys, "items", "--status", "REJECTED", "--stack", NAME_PREFIX)
    assert "a Scan of the whole table: 4 items read" in out
    assert out.index("r-new") < out.index("r-old")
    assert "message: must be a non-empty string" in out

    code, out, _ = disa(capsys, "items", "--status", "ABANDONED", "--stack", NAME_PREFIX)
    assert (code, out.strip()) == (0, "no ABANDONED items (a Scan of the whole table: 4 items read)")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["items", "--status", "DONE"], "disa: argument --status: invalid choice: 'DONE'"),
        (["items", "--status", "FAILED", "--limit", "0"], "disa: --limit must be from 1 to 1000"),
        (["status", "--watch", "--every", "1"], "disa: --every must be at least 2 seconds"),
        (["status", "--watch", "--json"], "disa: --watch draws a live view, not JSON: drop --json"),
    ],
)
def test_operator_view_mistakes_are_one_line(moto_stack, capsys, args, expected):
    code, out, err = disa(capsys, *args, "--stack", NAME_PREFIX) if args[0] == "items" else disa(capsys, *args)
    assert code != 0 and out == ""
    assert err.startswith(expected) and len(err.strip().splitlines()) == 1, err


# --- disa show ------------------------------------------------------------------------------


def run_execution(stack: MotoStack, name: str, document: dict) -> None:
    stack.clients["stepfunctions"].start_execution(
        stateMachineArn=stack.state_machine_arn, name=name, input=json.dumps(document)
    )
    stack.wait_for_executions()


def test_show_explains_the_fields_and_lists_every_attempts_execution(moto_stack, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    # Given an item whose first attempt failed (SNS gone) and whose second was published,
    # each by an execution named as the trigger and the retry job name them
    body = {"message": {"S": "order 42 shipped"}, "attributes": {"M": {"kind": {"S": "shipping"}}}}
    first, document = moto_stack.insert_and_claim("k-1", body)
    moto_stack.clients["sns"].delete_topic(TopicArn=moto_stack.topic_arn)
    run_execution(moto_stack, attempts.execution_name(moto_stack.key("k-1"), first), document)
    assert moto_stack.status("k-1") is Status.FAILED
    second = moto_stack.plan_claim("k-1", attempt=2)
    store = ItemStore(moto_stack.table, moto_stack.clients["dynamodb"])
    assert store.claim_due(moto_stack.key("k-1"), Status.FAILED, first.token, second, clock.iso(time.time()))
    _, document = moto_stack.execution_input("k-1", body, second)
    moto_stack.restore_topic()
    run_execution(moto_stack, attempts.execution_name(moto_stack.key("k-1"), second), document)
    assert moto_stack.status("k-1") is Status.SUCCESSFUL
    # ... and an execution of another item, which is not this one's
    other, other_document = moto_stack.insert_and_claim("k-2", body)
    run_execution(moto_stack, attempts.execution_name(moto_stack.key("k-2"), other), other_document)

    # When it is shown
    code, out, err = disa(capsys, "show", "k-1", "--stack", NAME_PREFIX, "--json")

    # Then both attempts' executions are listed, newest first, and only they
    assert (code, err) == (0, "")
    shown = json.loads(out)
    names = [e["name"] for e in shown["executions"]]
    assert names == [
        attempts.execution_name(moto_stack.key("k-1"), second),
        attempts.execution_name(moto_stack.key("k-1"), first),
    ]
    assert [(e["status"], e["error"]) for e in shown["executions"]] == [
        ("SUCCEEDED", None),
        ("FAILED", "Disa.PublishFailed"),  # recorded on the item first, then failed for the console
    ]
    # And the history reads in order: taken in, the two executions, published
    story = [event["what"] for event in shown["timeline"]]
    assert story[0] == "taken in by the pipeline"
    assert story.index(f"execution {names[1]} started") < story.index(f"execution {names[0]} started")
    assert story.index(f"execution {names[0]} started") < story.index("became SUCCESSFUL")
    assert f"execution {names[1]} ended FAILED: Disa.PublishFailed" in story
    assert shown["item"]["message"] == {"S": "order 42 shipped"}

    # And the view people read explains the pipeline's fields in words
    code, out, _ = disa(capsys, "show", "k-1", "--stack", NAME_PREFIX)
    assert code == 0
    assert f"item k-1 in {moto_stack.table}: SUCCESSFUL" in out
    assert re.search(r"messageId\s+\S+\s+the id SNS gave the published message", out)
    assert re.search(r"status\s+SUCCESSFUL\s+published; final", out)
    assert re.search(r"lastError\s+SNS\S*\s+the error of the last failed attempt", out), out
    assert re.search(r"message\s+S\s+order 42 shipped", out)
    assert "Executions, newest first" in out


def test_show_of_a_failed_item_says_when_it_is_due_and_a_missing_key_is_one_line(moto_stack, capsys):
    due = int(time.time()) + 600
    in_flight(
        moto_stack,
        "f-1",
        Status.FAILED,
        "2026-03-01T10:00:00.000Z",
        due=due,
        **{Field.ACCEPTED_AT: {"S": "2026-03-01T09:59:00.000Z"}, Field.STATUS_REASON: {"S": "SNS refused"}},
    )
    code, out, _ = disa(capsys, "show", "f-1", "--stack", NAME_PREFIX, "--json")
    timeline = json.loads(out)["timeline"]
    assert [(e["what"], e["upcoming"]) for e in timeline] == [
        ("taken in by the pipeline", False),
        ("became FAILED: SNS refused", False),
        ("due: its next retry", True),
    ]

    code, out, err = disa(capsys, "show", "nope", "--stack", NAME_PREFIX)
    assert (code, out) == (1, "")
    assert err == f"disa: no item with key nope in {moto_stack.table}\n"


# --- disa status --watch: the figures -----------------------------------------------------


def put_metric(cloudwatch, name: str, value: float, at: float | None = None, stack: str = NAME_PREFIX) -> None:
    cloudwatch.put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": name,
                "Value": value,
                "Unit": "Seconds" if name.endswith("Seconds") else "Count",
                "Dimensions": [{"Name": "StackName", "Value": stack}],
                "Timestamp": datetime.fromtimestamp(at if at is not None else time.time(), tz=UTC),
            }
        ],
    )


def add_subscriber(stack: MotoStack, name: str, dead_letters: int) -> None:
    """A subscriber stack as `disa subscribe` leaves one (its outputs and parameters), with
    its queues and alarms, and ``dead_letters`` messages in its dead-letter queue."""
    sqs, cloudwatch = stack.clients["sqs"], stack.clients["cloudwatch"]
    queue = sqs.create_queue(QueueName=f"{NAME_PREFIX}-{name}")["QueueUrl"]
    dead_letter = sqs.create_queue(QueueName=f"{NAME_PREFIX}-{name}-dlq")["QueueUrl"]
    for number in range(dead_letters):
        sqs.send_message(QueueUrl=dead_letter, MessageBody=f"poison pill {number}")

    def arn(url: str) -> str:
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    alarms = {}
    for output, suffix, metric in (
        ("DeadLetterAlarmName", "dead-letters", "ApproximateNumberOfMessagesVisible"),
        ("OldestMessageAlarmName", "oldest-message", "ApproximateAgeOfOldestMessage"),
    ):
        alarms[output] = f"{NAME_PREFIX}-{name}-{suffix}"
        cloudwatch.put_metric_alarm(
            AlarmName=alarms[output],
            Namespace="AWS/SQS",
            MetricName=metric,
            Dimensions=[{"Name": "QueueName", "Value": f"{NAME_PREFIX}-{name}-dlq"}],
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    outputs = {
        "QueueIsFifo": "false",
        "QueueUrl": queue,
        "QueueArn": arn(queue),
        "DeadLetterQueueUrl": dead_letter,
        "DeadLetterQueueArn": arn(dead_letter),
        "DashboardName": f"{NAME_PREFIX}-{name}",
        **alarms,
    }
    outputs_stack(
        stack.clients["cloudformation"],
        f"{NAME_PREFIX}-sub-{name}",
        outputs,
        {"NamePrefix": NAME_PREFIX, "SubscriberName": name},
    )


def test_watch_figures_come_from_cloudwatch_the_alarms_and_the_dead_letter_queues(moto_stack):
    # Given counts in this minute and earlier ones, two retry runs' readings, another stack's
    # metrics, an alarm in ALARM and a subscriber with dead letters
    cloudwatch = moto_stack.clients["cloudwatch"]
    now = time.time()
    minute = int(now) // 60 * 60
    put_metric(cloudwatch, Count.ITEMS_ACCEPTED, 40, at=minute + 1)
    put_metric(cloudwatch, Count.ITEMS_ACCEPTED, 2, at=minute + 2)
    put_metric(cloudwatch, Count.ITEMS_ACCEPTED, 18, at=minute - 59)
    put_metric(cloudwatch, Count.PUBLISH_FAILED, 3, at=minute - 300)
    put_metric(cloudwatch, Count.ITEMS_ACCEPTED, 1000, at=minute + 1, stack="another-stack")
    put_metric(cloudwatch, Gauge.FAILED_ITEMS, 9, at=minute - 120)
    put_metric(cloudwatch, Gauge.FAILED_ITEMS, 4, at=minute - 60)  # the last run's reading
    put_metric(cloudwatch, Gauge.OLDEST_FAILED_AGE, 754, at=minute - 60)
    publish_failures = moto_stack.alarms_by_logical_id["PublishFailuresAlarm"]
    cloudwatch.set_alarm_state(AlarmName=publish_failures, StateValue="ALARM", StateReason="test")
    add_subscriber(moto_stack, "orders", dead_letters=2)
    clients = Clients(Target(region=REGION))
    info = StackInfo.of(clients, NAME_PREFIX)

    # When one refresh is gathered over a 15-minute window
    frame = status.watch_frame(clients, info, subscribers(clients, NAME_PREFIX), minutes=15, now=now)

    # Then the counts are per minute, of this stack only
    accepted = frame.rates[Count.ITEMS_ACCEPTED]
    assert (accepted.this_minute, accepted.last_minute, accepted.per_minute) == (42, 18, 60 / 15)
    assert frame.rates[Count.PUBLISH_FAILED].this_minute == 0
    assert frame.rates[Count.PUBLISH_FAILED].per_minute == 3 / 15
    assert set(frame.rates) == {*Count, status.PUBLISHED}
    # And a gauge is its last reading, not the window's largest
    assert frame.gauges[Gauge.FAILED_ITEMS].value == 4
    assert frame.gauges[Gauge.FAILED_ITEMS].at == datetime.fromtimestamp(minute - 60, tz=UTC)
    assert frame.gauges[Gauge.OLDEST_FAILED_AGE].value == 754
    assert frame.gauges[Gauge.PENDING_ITEMS] is None, "no reading: shown as unknown, not 0"
    # And the alarms are the stack's and the subscriber's, with their states
    assert frame.alarms[publish_failures] == "ALARM"
    assert set(frame.alarms) == {
        *info.alarm_names,
        f"{NAME_PREFIX}-orders-dead-letters",
        f"{NAME_PREFIX}-orders-oldest-message",
    }
    assert [(s.name, s.dead_letters) for s in frame.subscribers] == [("orders", 2)]
    # And moto keeps no percentiles: none is made up
    assert frame.execution_time.empty and frame.subscribers[0].end_to_end.empty
    assert frame.window_minutes == 15 and frame.ownership == {}
    # And what one refresh requests is what its cost is computed from
    assert frame.metrics_requested == len(Count) + 1 + len(Gauge) + 4 + 4, "counts, published, gauges, 2 x p50-p99+n"
    assert frame.usd_per_hour(10) == pytest.approx(frame.metrics_requested * 360 * 0.01 / 1000)


def test_watch_view_draws_what_a_frame_holds(moto_stack):
    clients = Clients(Target(region=REGION))
    info = StackInfo.of(clients, NAME_PREFIX)
    cloudwatch = moto_stack.clients["cloudwatch"]
    now = time.time()
    minute = int(now) // 60 * 60
    put_metric(cloudwatch, Gauge.PENDING_ITEMS, 1234, at=minute)
    put_metric(cloudwatch, Gauge.OLDEST_PENDING_AGE, 3725, at=minute)
    put_metric(cloudwatch, Gauge.OLDEST_WAITING_AGE, 1000, at=minute)
    put_metric(cloudwatch, Count.PUBLISH_FAILED, 5, at=minute)
    frame = status.watch_frame(clients, info, [], minutes=60, now=now)
    # Latencies as AWS returns them (moto keeps none)
    frame = status.WatchFrame(**{**vars(frame), "execution_time": status.Percentiles(81.4, 430.0, 1210.6, 5321)})

    console = Console(record=True, width=120, force_terminal=False)
    console.print(screens.watch_view(frame, every=10, problem="refresh at 10:00:00 failed: throttled"))
    screen = console.export_text()

    assert re.search(r"PENDING\s+1,234", screen)
    assert re.search(r"oldest PENDING\s+1 h 2 min", screen)
    assert re.search(r"oldest WAITING\s+16 min 40 s", screen), "what the groups-stalled alarm reads"
    assert re.search(r"oldest FAILED\s+-", screen)
    assert re.search(r"publish failed\s+5\s+0\s+0\.1", screen)
    assert re.search(r"state machine execution\s+81\s+430\s+1,211\s+5,321", screen)
    assert re.search(r"WAITING\s+-", screen), "no reading is shown as unknown"
    assert "none (disa subscribe NAME)" in screen
    per_hour = frame.metrics_requested * 0.01 / 1000 * 3600 / 10  # GetMetricData: $0.01 per 1,000 metrics
    assert f"{frame.metrics_requested} metrics a refresh ≈ ${per_hour:.2f}/hour" in screen
    assert "refresh at 10:00:00 failed: throttled; the figures are from" in screen


@pytest.mark.parametrize("moto_stack", ["two-regions"], indirect=True)
def test_watch_in_two_regions_shows_what_each_replica_says_publishes(moto_stack):
    clients = Clients(Target(region=REGION))
    frame = status.watch_frame(clients, StackInfo.of(clients, NAME_PREFIX), [], minutes=60)
    assert list(frame.ownership) == [REGION, "us-west-2"]
    assert frame.ownership[REGION]["owner"] == REGION
    assert "error" in frame.ownership["us-west-2"], "moto holds no replica there: said, not hidden"
    console = Console(record=True, width=120, force_terminal=False)
    console.print(screens.watch_view(frame, every=10))
    screen = console.export_text()
    assert "Who publishes" in screen and re.search(rf"{REGION}\s+{REGION}\s+\d", screen), screen


def test_watch_when_the_output_is_not_a_terminal_prints_one_view_and_exits(moto_stack, capsys):
    put_metric(moto_stack.clients["cloudwatch"], Gauge.WAITING_ITEMS, 8)
    code, out, err = disa(capsys, "status", "--watch", "--every", "2", "--stack", NAME_PREFIX)
    assert (code, err) == (0, "")
    assert out.count(HEADING) == 1
    assert re.search(r"WAITING\s+8\b", out), out


# --- disa status --watch in a real terminal ----------------------------------------------


class Terminal:
    """A detached tmux session of a fixed size on a socket of its own."""

    def __init__(self, socket: str, env: dict[str, str]) -> None:
        self.socket, self.env = socket, env

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-u", "-L", self.socket, "-f", "/dev/null", *args],
            check=True,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=30,
        ).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "watch")

    def wait_for(self, condition, timeout: float = 40) -> str:
        return wait_until(self.screen, condition, timeout=timeout, interval=0.25)

    def ending(self) -> str:
        """How the pane's process ended: "exit N", "signal N", or "" while it runs.

        tmux marks a pane dead when its terminal closes and learns the exit status only when it
        reaps the process a moment later, so a pane can be dead with no status yet: wait for both."""
        dead, status, signal = (
            self.tmux("display-message", "-p", "-t", "watch", "#{pane_dead}|#{pane_dead_status}|#{pane_dead_signal}")
            .strip()
            .split("|")
        )
        if dead != "1":
            return ""
        return f"exit {status}" if status else f"signal {signal}" if signal else ""


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not on PATH: the live view needs a real terminal")
def test_watch_in_a_real_terminal_refreshes_in_place_and_ends_on_ctrl_c(moto_endpoint, monkeypatch):
    # Given the stack on a moto server, with a count, a gauge and an alarm in ALARM
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    stack = MotoStack()
    cloudwatch = stack.clients["cloudwatch"]
    put_metric(cloudwatch, Count.ITEMS_ACCEPTED, 4242)
    put_metric(cloudwatch, Gauge.FAILED_ITEMS, 17)
    publish_failures = stack.alarms_by_logical_id["PublishFailuresAlarm"]
    stream_lag = stack.alarms_by_logical_id["StreamLagAlarm"]
    cloudwatch.set_alarm_state(AlarmName=publish_failures, StateValue="ALARM", StateReason="test")
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "TERM": "xterm-256color",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    command = [
        sys.executable, "-m", "disa", "status", "--watch", "--every", "2", "--stack", NAME_PREFIX,
        "--endpoint-url", moto_endpoint, "--region", REGION,
    ]  # fmt: skip
    terminal = Terminal(f"disa-watch-{uuid.uuid4().hex[:12]}", environment)
    try:
        # When the watch runs in a 120 x 40 terminal
        terminal.tmux("new-session", "-d", "-s", "watch", "-x", "120", "-y", "40", "-c", str(ROOT), *command)
        terminal.tmux("set-option", "-t", "watch", "remain-on-exit", "on")
        first = terminal.wait_for(lambda s: HEADING in s and "4,242" in s)

        # Then a user sees the headings, the count, the reading and the alarm in ALARM
        assert HEADING in first, first
        for heading in ("Rates", "Alarms: 1 in ALARM", "Latency, last 60 min", "Dead letters"):
            assert heading in first, first
        assert re.search(r"accepted\s+(4,242\s+0|0\s+4,242)\s", first), first
        assert re.search(r"FAILED\s+17\b", first), first
        assert re.search(rf"{publish_failures}\s+ALARM", first), first
        assert re.search(rf"{stream_lag}\s+OK", first), first

        # When the retry job reads again and another alarm fires
        put_metric(cloudwatch, Gauge.FAILED_ITEMS, 23)
        cloudwatch.set_alarm_state(AlarmName=stream_lag, StateValue="ALARM", StateReason="test")
        second = terminal.wait_for(lambda s: re.search(r"FAILED\s+23\b", s) and re.search(rf"{stream_lag}\s+ALARM", s))

        # Then the next frame shows them, drawn over the first one, not below it
        assert re.search(r"FAILED\s+23\b", second), second
        assert re.search(rf"{stream_lag}\s+ALARM", second) and "Alarms: 2 in ALARM" in second, second
        assert second.count(HEADING) == 1, second
        Path("/tmp/watch-screen.txt").write_text(second)

        # When the user presses Ctrl-C, then the view ends with 0 and no traceback
        terminal.tmux("send-keys", "-t", "watch", "C-c")
        assert wait_until(terminal.ending, bool, timeout=20, interval=0.2) == "exit 0"
        last = terminal.screen()
        assert "Traceback" not in last and "KeyboardInterrupt" not in last, last
        assert last.count(HEADING) == 1, last
    finally:
        subprocess.run(["tmux", "-L", terminal.socket, "kill-server"], capture_output=True, timeout=30)
        # -L names a socket in tmux's folder, which kill-server leaves behind.
        folder = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
        (folder / terminal.socket).unlink(missing_ok=True)
