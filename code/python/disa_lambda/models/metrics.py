"""Disa's own CloudWatch metrics: the contract between what puts them (the trigger, the retry
job, the state machine), what alarms on them (cft/nested-stacks/alarms.yaml), what charts them
(cft/nested-stacks/dashboard.yaml) and what reads them (`disa status --watch`).

Every metric lives in the stack's MetricNamespace with the one dimension StackName. Counts
are per event and summed per period; gauges are a reading at the end of a retry run, taken
with Maximum. AWS's own metrics the dashboard and alarms also use (AWS/States, AWS/Lambda,
AWS/SNS, AWS/SQS) are named where they are used.
"""

from __future__ import annotations

from enum import StrEnum

DIMENSION = "StackName"


class Count(StrEnum):
    """Events, summed per period."""

    PUBLISH_FAILED = "PublishFailed"  # the state machine: an attempt SNS refused (after its retries)
    # The state machine: a write to the item failed after its retries, so the execution ends
    # without the item's fate (it keeps PENDING until its lease ends).
    OUTCOMES_NOT_RECORDED = "OutcomesNotRecorded"
    ITEMS_ACCEPTED = "ItemsAccepted"  # the trigger: inserts taken in (started, waiting or deferred)
    ITEMS_REJECTED = "ItemsRejected"  # the trigger, the sweep and the retry job: contract broken
    STARTS_DEFERRED = "StartsDeferred"  # an execution could not be started; the retry job starts it
    ITEMS_ABANDONED = "ItemsAbandoned"  # the retry job: items that reached the attempt cap this run
    RETRIES_STARTED = "RetriesStarted"
    RETRY_DUE = "RetryDue"
    ITEMS_SWEPT = "ItemsSwept"
    # The retry job's heartbeat: 1 per finished run, in every region (the region that does not
    # own publishing runs and returns). Its absence is the alarm: missing data breaches.
    RETRY_JOB_RUNS = "RetryJobRuns"


class Gauge(StrEnum):
    """Readings the retry job takes at the end of each run (Maximum per period)."""

    # ABANDONED items no person has requeued or dismissed yet (the attention index).
    ABANDONED_WAITING = "AbandonedWaiting"
    PENDING_ITEMS = "PendingItems"
    FAILED_ITEMS = "FailedItems"
    WAITING_ITEMS = "WaitingItems"
    OLDEST_PENDING_AGE = "OldestPendingAgeSeconds"
    OLDEST_FAILED_AGE = "OldestFailedAgeSeconds"
    # FIFO topics: a group that waits for a sequence number no one inserted waits forever;
    # its WAITING items grow old (the groups-stalled alarm).
    OLDEST_WAITING_AGE = "OldestWaitingAgeSeconds"


ALL = (*Count, *Gauge)
