"""The CI-sized chaos runs: every fault twice over a few hundred items, some of them large
(bodies in the item and S3 objects named by messageObject), on a private local cloud (one of
the faults restarts it), then every delivery guarantee checked; once on a standard topic and
once, smaller, on a FIFO topic, where each message group must also arrive in order and each
message once. The census is logged (shown with -o log_cli=true) and carried by every
assertion message."""

from __future__ import annotations

import logging

import pytest
from disa_lambda.models.status import Status

from disa.drills import chaos

pytestmark = pytest.mark.e2e
log = logging.getLogger(__name__)
ITEMS = 200
# Smaller: a FIFO group publishes one message at a time, so its run settles more slowly.
FIFO_ITEMS = 150


def test_no_item_is_lost_stuck_or_sent_twice_under_faults(private_cloud):
    result = chaos.run(private_cloud.clients(), private_cloud, count=ITEMS, seed=7, settle_timeout=600, log=log.info)
    assert_every_guarantee_held(result, ITEMS)
    assert not result.census.fifo


def test_on_a_fifo_topic_each_group_arrives_in_order_and_each_message_once_under_faults(private_cloud):
    result = chaos.run(
        private_cloud.clients(),
        private_cloud,
        count=FIFO_ITEMS,
        seed=7,
        settle_timeout=600,
        log=log.info,
        groups=chaos.GROUPS,
    )
    report = assert_every_guarantee_held(result, FIFO_ITEMS)
    census = result.census

    assert census.fifo and result.groups == chaos.GROUPS, report
    assert census.out_of_order == [], report
    assert census.subscriber_duplicates == [], report
    assert census.statuses[Status.WAITING] == 0, report


def assert_every_guarantee_held(result: chaos.ChaosResult, items: int) -> str:
    report = chaos.report(result)
    log.info("chaos census\n%s", report)
    census, fault_log = result.census, result.fault_log

    assert sorted(set(fault_log)) == sorted(chaos.FAULTS), report
    assert census.lost == [] and census.undelivered == [], report
    # At most a message whose SNS fan-out an engine restart cut short (engine, not Disa).
    assert len(census.lost_after_sns) <= fault_log.count("engine-restart"), report
    assert census.stuck == [], report
    assert census.over_delivered == [], report
    assert census.rejected_but_delivered == [], report
    assert census.unsettled == 0, report
    assert census.statuses[Status.SUCCESSFUL] + census.statuses[Status.REJECTED] == items, report
    assert result.large_sent[chaos.INLINE] >= 2 and result.large_sent[chaos.OBJECT] >= 2, report
    assert census.large == sum(result.large_sent.values()), report
    assert census.large_not_exact == [] and census.unreadable == 0, report
    # Every large item byte-exact, but any whose fan-out the engine cut (counted above).
    assert len(census.large_exact) >= census.large - len(census.lost_after_sns), report
    return report
