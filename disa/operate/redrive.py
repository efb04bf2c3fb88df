"""`disa redrive`: a subscriber's dead-letter queue back to its queue.

Two modes, one outcome (every message back on the source queue, or left in the dead-letter
queue and counted as failed):

- **move-task**, on AWS: SQS moves the messages itself (``StartMessageMoveTask``), at
  ``rate`` messages/s when given (AWS's limit: 500), one task per queue. Progress is read
  from ``ListMessageMoveTasks`` every couple of seconds; Ctrl-C cancels the task (what moved
  stays moved, as AWS's cancel undoes nothing).
- **portable**, where the endpoint has no move tasks (ministack answers ``InvalidAction``,
  moto an HTTP 500 "not implemented"): the client receives up to 10 messages, sends each to
  the source with its body and message attributes byte-exact (FIFO: the same group, and
  the dead letter's MessageId as deduplication id, so a resend after an interruption is
  dropped by SQS within its 5-minute window), then deletes from the dead-letter queue only
  what was sent.

The mode is chosen by the target, not by probing: with an endpoint (``--endpoint-url``,
``--local`` or ``AWS_ENDPOINT_URL``) the engine is an emulator, and emulators fail the move
API in different ways (a 400, or a 500 that boto3 retries five times first), so the
portable mode is used at once. On AWS the move task is started; only if AWS answers that
the action does not exist (``InvalidAction``/``UnknownOperation``, a partition without the
API) is the portable mode used. ``UnsupportedOperation`` is not taken as a missing API
there: AWS documents it for the move-task calls themselves.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError, ParamValidationError

from disa.common.aws import Clients
from disa.common.console import progress
from disa.common.errors import UserError

MAX_RATE = 500  # AWS's limit for MaxNumberOfMessagesPerSecond; the portable mode keeps it too
POLL_SECONDS = 2
FINISHED = ("COMPLETED", "CANCELLED", "FAILED")
MISSING_ACTION = frozenset({"InvalidAction", "UnknownOperation", "UnknownOperationException", "NotImplemented"})
BATCH = 10  # the most one ReceiveMessage returns
RECEIVE_WAIT_SECONDS = 1
# A failed message is hidden for the rest of the run (so the run ends instead of receiving
# it again) and made visible again when the run ends, interrupted or not.
FAILED_HOLD_SECONDS = 3600


@dataclass(frozen=True)
class QueueRef:
    url: str
    arn: str
    fifo: bool

    @property
    def name(self) -> str:
        return self.arn.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class RedriveReport:
    mode: str  # "move-task" or "portable"
    moved: int
    failed: int
    # move-task: the task's last status (COMPLETED, CANCELLED after Ctrl-C, FAILED);
    # portable: COMPLETED, or INTERRUPTED after Ctrl-C.
    status: str
    task_handle: str | None = None

    @property
    def complete(self) -> bool:
        return self.status == "COMPLETED" and self.failed == 0


def redrive(
    clients: Clients,
    dead_letter: QueueRef,
    source: QueueRef,
    rate: float | None,
    log: Callable[[str], None] = progress,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RedriveReport:
    """Moves ``dead_letter``'s messages to ``source``; ``rate`` in messages/s (None: as fast
    as the engine goes).

    Ctrl-C does not propagate: it ends the redrive (the AWS task is cancelled) and the report
    says so (status CANCELLED or INTERRUPTED) with what was moved until then. The counts are
    what the person needs after stopping a redrive, and the CLI decides the exit code from
    ``report.complete``. Nothing is lost by stopping: a message is deleted from the
    dead-letter queue only after it was sent."""
    if rate is not None and not 0 < rate <= MAX_RATE:
        raise UserError(
            f"--rate must be above 0 and at most {MAX_RATE} messages per second (the AWS limit); got {rate:g}"
        )
    if dead_letter.fifo != source.fifo:
        raise UserError(f"{dead_letter.name} and {source.name} must both be FIFO or both standard queues")
    sqs = clients("sqs")
    if not _on_endpoint(clients):
        try:
            return _move_task(sqs, dead_letter, source, rate, log, sleep)
        except ClientError as error:
            if _code(error) not in MISSING_ACTION:
                raise
            log(f"SQS here has no message move tasks ({_code(error)}): moving the messages from this client")
    return _Portable(sqs, dead_letter, source, _Pacer(rate, clock, sleep) if rate else None, log).run()


def cancel(clients: Clients, dead_letter: QueueRef) -> str:
    """Cancels the move task running from ``dead_letter`` (started by this CLI or elsewhere);
    returns the line to print."""
    sqs = clients("sqs")
    try:
        task = _latest_task(sqs, dead_letter)
    except ClientError as error:
        if _on_endpoint(clients) or _code(error) in MISSING_ACTION:
            return (
                "nothing to cancel: this endpoint has no message move tasks; a redrive here runs in the "
                "terminal that started it and stops with Ctrl-C"
            )
        raise
    if task is None or task["Status"] != "RUNNING":
        state = f"its last one is {task['Status']}" if task else "none was ever started"
        return f"no move task is running from {dead_letter.name} ({state})"
    moved = sqs.cancel_message_move_task(TaskHandle=task["TaskHandle"]).get("ApproximateNumberOfMessagesMoved", 0)
    return f"cancelled the move task from {dead_letter.name}: {moved} messages had moved (they stay moved)"


# -- move task (AWS) ------------------------------------------------------------------------
def _move_task(
    sqs: Any, dead_letter: QueueRef, source: QueueRef, rate: float | None, log: Callable, sleep: Callable
) -> RedriveReport:
    running = _latest_task(sqs, dead_letter)
    if running and running["Status"] == "RUNNING":
        raise _already_running(dead_letter, running)
    start = {"SourceArn": dead_letter.arn, "DestinationArn": source.arn}
    if rate is not None:
        start["MaxNumberOfMessagesPerSecond"] = max(1, math.floor(rate))  # AWS takes whole messages/s
    try:
        handle = sqs.start_message_move_task(**start)["TaskHandle"]
    except ClientError as error:
        raced = _latest_task(sqs, dead_letter) if _code(error) not in MISSING_ACTION else None
        if raced and raced["Status"] == "RUNNING":
            raise _already_running(dead_letter, raced) from error
        raise
    log(f"move task started: {dead_letter.name} -> {source.name}")
    task: dict[str, Any] = {}
    try:
        while task.get("Status") not in FINISHED:
            sleep(POLL_SECONDS)
            task = _latest_task(sqs, dead_letter) or {}
            to_move = task.get("ApproximateNumberOfMessagesToMove", "?")
            log(f"{task.get('Status', 'UNKNOWN')}: moved {_moved(task)} of {to_move}")
    except KeyboardInterrupt:
        try:
            moved = int(sqs.cancel_message_move_task(TaskHandle=handle)["ApproximateNumberOfMessagesMoved"])
        except ClientError:  # it finished meanwhile: report how
            task = _latest_task(sqs, dead_letter) or task
            log(f"interrupted, but the move task had already ended: {task.get('Status', 'UNKNOWN')}")
            return RedriveReport("move-task", _moved(task), 0, task.get("Status", "UNKNOWN"), handle)
        log(f"interrupted: move task cancelled after {moved} messages moved (they stay moved)")
        return RedriveReport("move-task", moved, 0, "CANCELLED", handle)
    if task["Status"] == "FAILED":
        log(f"the move task failed: {task.get('FailureReason', 'no reason given')}")
    return RedriveReport("move-task", _moved(task), 0, task["Status"], handle)


def _latest_task(sqs: Any, dead_letter: QueueRef) -> dict[str, Any] | None:
    results = sqs.list_message_move_tasks(SourceArn=dead_letter.arn, MaxResults=1).get("Results", [])
    return results[0] if results else None


def _moved(task: dict[str, Any]) -> int:
    return int(task.get("ApproximateNumberOfMessagesMoved", 0))


def _already_running(dead_letter: QueueRef, task: dict[str, Any]) -> UserError:
    return UserError(
        f"a move task is already running from {dead_letter.name} ({_moved(task)} of "
        f"{task.get('ApproximateNumberOfMessagesToMove', '?')} moved; SQS allows one per queue): wait for it to "
        f"finish, or cancel it with `disa redrive NAME --cancel`"
    )


# -- portable (any endpoint) ----------------------------------------------------------------
class _Pacer:
    """Spaces sends ``1/rate`` seconds apart on a fixed schedule (time spent sending counts
    toward the gap; a late send does not earn a burst). Ten lines, so no dependency:
    pyrate-limiter and limits count calls in windows and would still need this sleep."""

    def __init__(self, rate: float, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self.interval, self.clock, self.sleep = 1 / rate, clock, sleep
        self.next_at: float | None = None

    def wait(self) -> None:
        now = self.clock()
        if self.next_at is not None and self.next_at > now:
            self.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + self.interval


class _Portable:
    def __init__(self, sqs: Any, dead_letter: QueueRef, source: QueueRef, pacer: _Pacer | None, log: Callable) -> None:
        self.sqs, self.dead_letter, self.source, self.pacer, self.log = sqs, dead_letter, source, pacer, log
        self.moved = self.failed = 0
        self.seen: set[str] = set()  # MessageIds handled this run: a message is sent at most once
        self.in_hand: dict[str, str] = {}  # MessageId -> receipt handle, received and not deleted
        self.stopped_groups: set[str] = set()  # FIFO groups with a failed message: order is kept
        # Long enough to send a batch at the slowest rate, then delete it.
        self.visibility = min(43_200, 60 + math.ceil(BATCH * (pacer.interval if pacer else 0)))  # SQS: 12 h at most

    def run(self) -> RedriveReport:
        status = "COMPLETED"
        try:
            while batch := self._receive():
                sent = [m for m in batch if self._send(m)]
                self._delete(sent)
                self.log(f"moved {self.moved}, failed {self.failed}")
        except KeyboardInterrupt:
            status = "INTERRUPTED"
            self.log(
                f"interrupted after {self.moved} moved: nothing is lost; "
                "a message sent but not yet deleted may arrive twice"
            )
        finally:
            self._release()
        return RedriveReport("portable", self.moved, self.failed, status)

    def _receive(self) -> list[dict[str, Any]]:
        """The next messages not handled yet; empty when the dead-letter queue has none."""
        messages = self.sqs.receive_message(
            QueueUrl=self.dead_letter.url,
            MaxNumberOfMessages=BATCH,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            VisibilityTimeout=self.visibility,
            WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
        ).get("Messages", [])
        for message in messages:
            self.in_hand[message["MessageId"]] = message["ReceiptHandle"]
        # A failed message seen again (its hold ran out in a long run) ends the run.
        return [m for m in messages if m["MessageId"] not in self.seen]

    def _send(self, message: dict[str, Any]) -> bool:
        self.seen.add(message["MessageId"])
        group = message.get("Attributes", {}).get("MessageGroupId")
        if group is not None and group in self.stopped_groups:
            return self._failed(message, f"held back: an earlier message of group {group} failed")
        if self.pacer:
            self.pacer.wait()
        try:
            self.sqs.send_message(**_resend(message, self.source))
        except (ClientError, ParamValidationError) as error:
            if group is not None:
                self.stopped_groups.add(group)
            return self._failed(message, _reason(error))
        self.moved += 1
        return True

    def _failed(self, message: dict[str, Any], why: str) -> bool:
        self.failed += 1
        self.log(f"not moved, left in {self.dead_letter.name}: {message['MessageId']} ({why})")
        # If this fails, the message returns when its receive's timeout ends and is not sent again.
        with contextlib.suppress(ClientError):
            self._change_visibility([message["MessageId"]], FAILED_HOLD_SECONDS)
        return False

    def _delete(self, sent: list[dict[str, Any]]) -> None:
        if not sent:
            return
        entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(sent)]
        try:
            failures = self.sqs.delete_message_batch(QueueUrl=self.dead_letter.url, Entries=entries).get("Failed", [])
        except ClientError as error:
            failures = [{"Id": e["Id"], "Message": _reason(error)} for e in entries]
        left = {int(f["Id"]) for f in failures}
        for n, message in enumerate(sent):
            if n in left:
                # Sent, so counted as moved; left behind, a later redrive delivers it again.
                self.log(f"sent but not deleted from {self.dead_letter.name}: {message['MessageId']}")
            else:
                self.in_hand.pop(message["MessageId"], None)

    def _release(self) -> None:
        """Makes what this run holds visible again (failed messages, and an interrupted batch)."""
        try:
            self._change_visibility(list(self.in_hand), 0)
        except (ClientError, KeyboardInterrupt):
            self.log("some dead letters stay hidden until their visibility timeout ends")

    def _change_visibility(self, message_ids: Iterable[str], seconds: int) -> None:
        ids = [i for i in message_ids if i in self.in_hand]
        for start in range(0, len(ids), BATCH):
            entries = [
                {"Id": str(n), "ReceiptHandle": self.in_hand[i], "VisibilityTimeout": seconds}
                for n, i in enumerate(ids[start : start + BATCH])
            ]
            self.sqs.change_message_visibility_batch(QueueUrl=self.dead_letter.url, Entries=entries)


def _resend(message: dict[str, Any], source: QueueRef) -> dict[str, Any]:
    """The SendMessage that puts ``message`` on ``source`` as it was: body and message
    attributes byte-exact (custom types such as ``Binary.gzip`` included)."""
    request: dict[str, Any] = {"QueueUrl": source.url, "MessageBody": message["Body"]}
    attributes = {
        name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, value in message.get("MessageAttributes", {}).items()
    }
    if attributes:
        request["MessageAttributes"] = attributes
    system = message.get("Attributes", {})
    if "AWSTraceHeader" in system:
        request["MessageSystemAttributes"] = {
            "AWSTraceHeader": {"DataType": "String", "StringValue": system["AWSTraceHeader"]}
        }
    if source.fifo:
        if "MessageGroupId" not in system:
            raise ParamValidationError(report="the dead letter has no MessageGroupId")
        request["MessageGroupId"] = system["MessageGroupId"]
        request["MessageDeduplicationId"] = message["MessageId"]
    return request


def _on_endpoint(clients: Clients) -> bool:
    return bool(clients.target.endpoint_url or os.environ.get("AWS_ENDPOINT_URL"))


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _reason(error: Exception) -> str:
    if isinstance(error, ClientError):
        return f"{_code(error)}: {error.response.get('Error', {}).get('Message', '')}"
    return str(error)
