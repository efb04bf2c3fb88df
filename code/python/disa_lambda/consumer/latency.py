"""The per-stage latency of one processed message (stages.py defines the stages)."""

from __future__ import annotations

from disa_lambda.consumer import stages
from disa_lambda.consumer.message import Message


def measure(message: Message, started_ms: int, done_ms: int) -> dict[str, int]:
    """Milliseconds per stage metric name; stages whose timestamps the message lacks are
    left out (SNS's Timestamp with raw delivery; everything from acceptedAt for a message
    Disa did not publish). Clocks differ, so a negative difference counts as 0."""
    points: dict[stages.Stage, tuple[int | None, int | None]] = {
        stages.ACCEPTED_TO_SNS: (message.accepted_at_ms, message.sns_timestamp_ms),
        stages.SNS_TO_QUEUE: (message.sns_timestamp_ms, message.sent_ms),
        stages.ACCEPTED_TO_QUEUE: (message.accepted_at_ms, message.sent_ms),
        stages.QUEUE_WAIT: (message.sent_ms, message.first_received_ms),
        stages.RECEIVE_TO_START: (message.first_received_ms, started_ms),
        stages.PROCESSING: (started_ms, done_ms),
        stages.END_TO_END: (message.accepted_at_ms, done_ms),
    }
    return {
        stage.metric: max(0, end - start)
        for stage, (start, end) in points.items()
        if start is not None and end is not None
    }
