"""`disa redrive` (disa/operate/redrive.py): the portable mode against moto in server mode
(an endpoint, as the local cloud is; moto has no move tasks), the AWS move-task mode with
botocore's Stubber."""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from disa.common.aws import Clients, Target
from disa.common.errors import UserError
from disa.operate.redrive import QueueRef, RedriveReport, cancel, redrive
from tests.support.moto_stack import REGION

pytestmark = pytest.mark.cli

ATTRIBUTES = {
    "kind": {"DataType": "String", "StringValue": "order ✓ "},
    "amount": {"DataType": "Number", "StringValue": "0001.50"},
    "blob": {"DataType": "Binary", "BinaryValue": bytes(range(256))},
    "doc": {"DataType": "String.json", "StringValue": '{"a": [1, 2]}'},
    "packed": {"DataType": "Binary.gzip", "BinaryValue": b"\x1f\x8b\x00\xff"},
}


class Recorder:
    """What a redrive logs."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


class FakeTime:
    """A clock that moves only when slept on, or when a test moves it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Sqs:
    """The real moto client, with failures injected where a test asks for them."""

    def __init__(self, real: Any, fail_bodies: tuple[str, ...] = (), interrupt_first_delete: bool = False) -> None:
        self.real, self.fail_bodies, self.interrupt_first_delete = real, fail_bodies, interrupt_first_delete
        self.sent: list[str] = []
        self.send_attempts: Counter[str] = Counter()
        self.on_send = lambda body: None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def send_message(self, **request: Any) -> Any:
        body = request["MessageBody"]
        self.send_attempts[body] += 1
        self.on_send(body)
        if body in self.fail_bodies:
            raise ClientError({"Error": {"Code": "KmsAccessDenied", "Message": "injected"}}, "SendMessage")
        answer = self.real.send_message(**request)
        self.sent.append(body)
        return answer

    def delete_message_batch(self, **request: Any) -> Any:
        if self.interrupt_first_delete:
            self.interrupt_first_delete = False
            raise KeyboardInterrupt  # Ctrl-C after the batch was sent, before it is deleted
        return self.real.delete_message_batch(**request)


class ClientsWith:
    """Clients whose SQS client is given."""

    def __init__(self, target: Target, sqs: Any) -> None:
        self.target, self.sqs = target, sqs

    def __call__(self, service: str) -> Any:
        assert service == "sqs", service
        return self.sqs


@pytest.fixture
def moto(moto_endpoint) -> Clients:
    return Clients(Target(region=REGION, endpoint_url=moto_endpoint))


def _queues(sqs: Any, fifo: bool) -> tuple[QueueRef, QueueRef]:
    """A source queue and its dead-letter queue (maxReceiveCount 1)."""
    suffix = ".fifo" if fifo else ""
    extra = {"FifoQueue": "true"} if fifo else {}

    def create(name: str, **attributes: str) -> QueueRef:
        url = sqs.create_queue(QueueName=name + suffix, Attributes={**extra, **attributes})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return QueueRef(url, arn, fifo)

    dead_letter = create("orders-dlq")
    policy = f'{{"deadLetterTargetArn": "{dead_letter.arn}", "maxReceiveCount": 1}}'
    return dead_letter, create("orders", RedrivePolicy=policy)


def _dead_letters(sqs: Any, queue: QueueRef, bodies: list[str], group_of=lambda body: "g") -> dict[str, str]:
    """Puts ``bodies`` in the dead-letter queue with every kind of attribute; body -> MessageId."""
    ids = {}
    for body in bodies:
        fifo = {"MessageGroupId": group_of(body), "MessageDeduplicationId": f"d-{body}"} if queue.fifo else {}
        ids[body] = sqs.send_message(QueueUrl=queue.url, MessageBody=body, MessageAttributes=ATTRIBUTES, **fifo)[
            "MessageId"
        ]
    return ids


def _drain(sqs: Any, queue: QueueRef) -> list[dict[str, Any]]:
    """Every visible message of ``queue``, in the order received, deleted."""
    out: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue.url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not messages:
            return out
        out.extend(messages)
        for message in messages:
            sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])


def _as_sent(message: dict[str, Any]) -> dict[str, Any]:
    attributes = {
        name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, value in message["MessageAttributes"].items()
    }
    return {"body": message["Body"], "attributes": attributes}


# -- portable mode --------------------------------------------------------------------------
def test_portable_redrive_moves_every_message_with_body_and_attributes_byte_exact(moto):
    sqs = moto("sqs")
    dead_letter, source = _queues(sqs, fifo=False)
    bodies = [f"order {n}: é\u2028 \t{{}}  " for n in range(13)]  # more than one receive
    _dead_letters(sqs, dead_letter, bodies)
    log = Recorder()

    report = redrive(moto, dead_letter, source, rate=None, log=log)

    assert report == RedriveReport("portable", moved=13, failed=0, status="COMPLETED", task_handle=None)
    arrived = _drain(sqs, source)
    assert sorted(m["Body"] for m in arrived) == sorted(bodies)
    assert all(_as_sent(m)["attributes"] == ATTRIBUTES for m in arrived), "String, Number, Binary, custom types"
    assert _drain(sqs, dead_letter) == []
    assert log.lines[-1] == "moved 13, failed 0"


def test_portable_fifo_redrive_keeps_groups_in_order_and_deduplicates_on_the_dead_letters_message_id(moto):
    sqs = moto("sqs")
    dead_letter, source = _queues(sqs, fifo=True)
    bodies = [f"{group}{n}" for n in range(4) for group in "ab"]
    ids = _dead_letters(sqs, dead_letter, bodies, group_of=lambda body: body[0])

    report = redrive(moto, dead_letter, source, rate=None, log=Recorder())

    assert (report.moved, report.failed, report.status) == (8, 0, "COMPLETED")
    arrived = _drain(sqs, source)
    for group in "ab":
        in_group = [m for m in arrived if m["Attributes"]["MessageGroupId"] == group]
        assert [m["Body"] for m in in_group] == [f"{group}{n}" for n in range(4)], "order kept within the group"
    assert {m["Body"]: m["Attributes"]["MessageDeduplicationId"] for m in arrived} == ids
    assert all(_as_sent(m)["attributes"] == ATTRIBUTES for m in arrived)


def test_a_failed_send_is_counted_once_and_stays_in_the_dead_letter_queue(moto):
    dead_letter, source = _queues(moto("sqs"), fifo=False)
    _dead_letters(moto("sqs"), dead_letter, ["one", "poison", "two"])
    flaky = Sqs(moto("sqs"), fail_bodies=("poison",))
    log = Recorder()

    report = redrive(ClientsWith(moto.target, flaky), dead_letter, source, rate=None, log=log)

    assert (report.moved, report.failed, report.status) == (2, 1, "COMPLETED")
    assert flaky.send_attempts["poison"] == 1, "tried once; the run ends instead of trying again"
    assert sorted(m["Body"] for m in _drain(flaky, source)) == ["one", "two"]
    assert [m["Body"] for m in _drain(flaky, dead_letter)] == ["poison"], "left, and visible again after the run"
    assert any(line.startswith("not moved, left in orders-dlq") and "KmsAccessDenied" in line for line in log.lines)


def test_a_failed_send_on_fifo_holds_back_the_rest_of_its_group_and_moves_other_groups(moto):
    dead_letter, source = _queues(moto("sqs"), fifo=True)
    _dead_letters(moto("sqs"), dead_letter, ["a0", "a1", "b0", "b1"], group_of=lambda body: body[0])
    flaky = Sqs(moto("sqs"), fail_bodies=("a0",))

    report = redrive(ClientsWith(moto.target, flaky), dead_letter, source, rate=None, log=Recorder())

    assert (report.moved, report.failed) == (2, 2)
    assert [m["Body"] for m in _drain(flaky, source)] == ["b0", "b1"]
    assert [m["Body"] for m in _drain(flaky, dead_letter)] == ["a0", "a1"], "the group's order is kept for later"


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_an_interruption_between_send_and_delete_loses_nothing(moto, fifo):
    flaky = Sqs(moto("sqs"), interrupt_first_delete=True)
    dead_letter, source = _queues(flaky, fifo=fifo)
    bodies = [f"m{n}" for n in range(15)]
    _dead_letters(flaky, dead_letter, bodies)
    clients, log = ClientsWith(moto.target, flaky), Recorder()

    interrupted = redrive(clients, dead_letter, source, rate=None, log=log)
    assert (interrupted.status, interrupted.moved) == ("INTERRUPTED", 10), "the first batch was sent"
    assert "nothing is lost" in log.lines[-1]
    resumed = redrive(clients, dead_letter, source, rate=None, log=log)

    assert (resumed.status, resumed.failed) == ("COMPLETED", 0)
    arrived = Counter(m["Body"] for m in _drain(flaky, source))
    assert set(arrived) == set(bodies), "every message arrived"
    if fifo:
        assert arrived == Counter(bodies), "the resend carried the same deduplication id: dropped by SQS"
    else:
        assert max(arrived.values()) <= 2, "at most twice: consumers are idempotent on disa.insertId"
    assert _drain(flaky, dead_letter) == []


def test_portable_redrive_sends_on_a_fixed_schedule_at_the_rate(moto):
    sqs = Sqs(moto("sqs"))
    dead_letter, source = _queues(sqs, fifo=False)
    _dead_letters(sqs, dead_letter, [f"m{n}" for n in range(6)])
    fake = FakeTime()
    sent_at: list[float] = []

    def record(body: str) -> None:
        sent_at.append(fake.now)
        fake.now += {2: 0.1, 4: 0.9}.get(len(sent_at) - 1, 0)  # the third and fifth sends take time

    sqs.on_send = record

    report = redrive(
        ClientsWith(moto.target, sqs), dead_letter, source, 4, Recorder(), clock=fake.clock, sleep=fake.sleep
    )

    assert report.moved == 6
    # 0.25 s apart: a send taking 0.1 s shortens the next wait; one taking 0.9 s makes the
    # next send late, and late is not made up for with a burst.
    assert sent_at == pytest.approx([0, 0.25, 0.5, 0.75, 1.0, 1.9])
    assert fake.sleeps == pytest.approx([0.25, 0.25, 0.15, 0.25])


@pytest.mark.parametrize("rate", [0, -1, 500.5, 501])
def test_a_rate_outside_aws_limits_is_refused_before_any_call(rate):
    sqs = boto3.client("sqs", region_name=REGION)
    dead_letter, source = (
        QueueRef("u1", "arn:aws:sqs:us-east-1:1:d", False),
        QueueRef("u2", "arn:aws:sqs:us-east-1:1:s", False),
    )
    with (
        Stubber(sqs) as stub,
        pytest.raises(UserError, match=r"--rate must be above 0 and at most 500 messages per second"),
    ):
        redrive(ClientsWith(Target(region=REGION), sqs), dead_letter, source, rate)
    stub.assert_no_pending_responses()


# -- move task (AWS) ------------------------------------------------------------------------
DLQ = QueueRef("https://sqs.us-east-1.amazonaws.com/1/orders-dlq", "arn:aws:sqs:us-east-1:1:orders-dlq", False)
SOURCE = QueueRef("https://sqs.us-east-1.amazonaws.com/1/orders", "arn:aws:sqs:us-east-1:1:orders", False)
HANDLE = "eyJ0YXNrSWQiOiJ0In0="
LIST = {"SourceArn": DLQ.arn, "MaxResults": 1}


def _task(status: str, moved: int, to_move: int = 10, **more: Any) -> dict[str, Any]:
    task = {
        "Status": status,
        "SourceArn": DLQ.arn,
        "DestinationArn": SOURCE.arn,
        "ApproximateNumberOfMessagesMoved": moved,
        "ApproximateNumberOfMessagesToMove": to_move,
        "StartedTimestamp": int(datetime.datetime(2026, 11, 23).timestamp() * 1000),
        **more,
    }
    if status == "RUNNING":
        task["TaskHandle"] = HANDLE
    return task


@pytest.fixture
def aws():
    """An SQS client on AWS (no endpoint) whose answers the test gives."""
    sqs = boto3.client("sqs", region_name=REGION)
    with Stubber(sqs) as stub:
        yield ClientsWith(Target(region=REGION), sqs), stub
        stub.assert_no_pending_responses()


def test_on_aws_a_move_task_moves_the_messages_and_its_progress_is_logged(aws):
    clients, stub = aws
    stub.add_response("list_message_move_tasks", {"Results": []}, LIST)
    stub.add_response(
        "start_message_move_task",
        {"TaskHandle": HANDLE},
        {"SourceArn": DLQ.arn, "DestinationArn": SOURCE.arn, "MaxNumberOfMessagesPerSecond": 50},
    )
    stub.add_response("list_message_move_tasks", {"Results": [_task("RUNNING", 3)]}, LIST)
    stub.add_response("list_message_move_tasks", {"Results": [_task("COMPLETED", 10)]}, LIST)
    log, fake = Recorder(), FakeTime()

    report = redrive(clients, DLQ, SOURCE, 50, log, clock=fake.clock, sleep=fake.sleep)

    assert report == RedriveReport("move-task", moved=10, failed=0, status="COMPLETED", task_handle=HANDLE)
    assert log.lines == [
        "move task started: orders-dlq -> orders",
        "RUNNING: moved 3 of 10",
        "COMPLETED: moved 10 of 10",
    ]
    assert fake.sleeps == [2, 2], "polled every couple of seconds"


def test_ctrl_c_cancels_the_move_task_and_reports_what_moved(aws):
    clients, stub = aws
    stub.add_response("list_message_move_tasks", {"Results": []}, LIST)
    stub.add_response(
        "start_message_move_task", {"TaskHandle": HANDLE}, {"SourceArn": DLQ.arn, "DestinationArn": SOURCE.arn}
    )
    stub.add_response("list_message_move_tasks", {"Results": [_task("RUNNING", 3)]}, LIST)
    stub.add_response("cancel_message_move_task", {"ApproximateNumberOfMessagesMoved": 4}, {"TaskHandle": HANDLE})
    log = Recorder()
    sleeps = iter([None, KeyboardInterrupt()])

    def sleep(_: float) -> None:
        if isinstance(interrupt := next(sleeps), BaseException):
            raise interrupt

    report = redrive(clients, DLQ, SOURCE, None, log, sleep=sleep)

    assert report == RedriveReport("move-task", moved=4, failed=0, status="CANCELLED", task_handle=HANDLE)
    assert log.lines[-2:] == [
        "RUNNING: moved 3 of 10",
        "interrupted: move task cancelled after 4 messages moved (they stay moved)",
    ]
    assert not report.complete


def test_a_running_move_task_is_not_started_twice(aws):
    clients, stub = aws
    stub.add_response("list_message_move_tasks", {"Results": [_task("RUNNING", 3)]}, LIST)

    with pytest.raises(
        UserError, match=r"already running from orders-dlq \(3 of 10 moved.*`disa redrive NAME --cancel`"
    ):
        redrive(clients, DLQ, SOURCE, None, Recorder())


def test_a_failed_move_task_reports_failed_with_its_reason(aws):
    clients, stub = aws
    stub.add_response("list_message_move_tasks", {"Results": []}, LIST)
    stub.add_response("start_message_move_task", {"TaskHandle": HANDLE})
    stub.add_response("list_message_move_tasks", {"Results": [_task("FAILED", 2, FailureReason="AccessDenied")]}, LIST)
    log = Recorder()

    report = redrive(clients, DLQ, SOURCE, None, log, sleep=lambda _: None)

    assert (report.status, report.moved) == ("FAILED", 2)
    assert log.lines[-1] == "the move task failed: AccessDenied"


def test_where_aws_has_no_move_tasks_the_redrive_is_portable(aws):
    clients, stub = aws
    stub.add_client_error("list_message_move_tasks", "InvalidAction", "The action ListMessageMoveTasks is not valid")
    stub.add_response("receive_message", {})
    log = Recorder()

    report = redrive(clients, DLQ, SOURCE, None, log)

    assert report == RedriveReport("portable", moved=0, failed=0, status="COMPLETED")
    assert log.lines == ["SQS here has no message move tasks (InvalidAction): moving the messages from this client"]


def test_cancel_stops_the_running_task_or_says_there_is_none(aws):
    clients, stub = aws
    stub.add_response("list_message_move_tasks", {"Results": [_task("RUNNING", 7)]}, LIST)
    stub.add_response("cancel_message_move_task", {"ApproximateNumberOfMessagesMoved": 7}, {"TaskHandle": HANDLE})
    stub.add_response("list_message_move_tasks", {"Results": [_task("CANCELLED", 7)]}, LIST)

    assert cancel(clients, DLQ) == "cancelled the move task from orders-dlq: 7 messages had moved (they stay moved)"
    assert cancel(clients, DLQ) == "no move task is running from orders-dlq (its last one is CANCELLED)"


def test_cancel_on_an_endpoint_without_move_tasks_says_so(moto):
    dead_letter, _ = _queues(moto("sqs"), fifo=False)
    assert cancel(moto, dead_letter).startswith("nothing to cancel: this endpoint has no message move tasks")
