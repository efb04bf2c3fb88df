"""The latency stages of one message, from the item's acceptance to the consumer's done.

One contract for the consumer helper (which measures and emits them), the subscriber
stack's dashboard (which charts them) and `disa status` (which reads their percentiles).
Each stage is the difference of two timestamps, in milliseconds:

- ``disa.acceptedAt``: the message attribute Disa adds, when the pipeline accepted the item.
- SNS ``Timestamp``: when SNS accepted the publish. Only the JSON envelope carries it, so it
  is known for subscriptions without raw message delivery; with raw delivery (the default,
  which the extended clients need) the first two stages are measured as one, ``AcceptedToQueue``.
- SQS ``SentTimestamp``: when the queue accepted the message from SNS.
- SQS ``ApproximateFirstReceiveTimestamp``: when a consumer first received it. A message
  received again after a failure keeps its first value, so ``ReceiveToStart`` of a
  redelivered message includes the visibility timeouts it waited out.
- started / done: the consumer's clock just before and just after the user's handler ran.

Timestamps come from different clocks (Lambda, SNS, SQS); on AWS they agree within
milliseconds, and a negative difference is reported as 0.
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "Disa/Subscribers"
DIMENSION = "Subscriber"


@dataclass(frozen=True)
class Stage:
    metric: str
    label: str
    start: str
    end: str


ACCEPTED_TO_SNS = Stage("AcceptedToSns", "accepted -> SNS accepted", "disa.acceptedAt", "SNS Timestamp")
SNS_TO_QUEUE = Stage("SnsToQueue", "SNS accepted -> queued", "SNS Timestamp", "SQS SentTimestamp")
ACCEPTED_TO_QUEUE = Stage("AcceptedToQueue", "accepted -> queued", "disa.acceptedAt", "SQS SentTimestamp")
QUEUE_WAIT = Stage("QueueWait", "queued -> first received", "SQS SentTimestamp", "SQS ApproximateFirstReceiveTimestamp")
RECEIVE_TO_START = Stage(
    "ReceiveToStart", "first received -> consumer started", "SQS ApproximateFirstReceiveTimestamp", "consumer started"
)
PROCESSING = Stage("Processing", "consumer started -> done", "consumer started", "consumer done")
END_TO_END = Stage("EndToEnd", "accepted -> done", "disa.acceptedAt", "consumer done")

# In the order a message passes them; the envelope-only stages split ACCEPTED_TO_QUEUE.
STAGES = (ACCEPTED_TO_SNS, SNS_TO_QUEUE, ACCEPTED_TO_QUEUE, QUEUE_WAIT, RECEIVE_TO_START, PROCESSING, END_TO_END)
ENVELOPE_ONLY = (ACCEPTED_TO_SNS, SNS_TO_QUEUE)

# Counts per message outcome, emitted beside the stages.
PROCESSED = "MessagesProcessed"  # the user's handler returned
DUPLICATES = "DuplicatesSkipped"  # another copy of the same insert was already processed
FAILED = "MessagesFailed"  # the handler raised: the message returns to the queue
COUNTERS = (PROCESSED, DUPLICATES, FAILED)
PERCENTILES = ("p50", "p95", "p99")
