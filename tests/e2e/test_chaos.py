"""The CI-sized chaos run: every fault twice over a few hundred items, some of them large
(bodies in the item and S3 objects named by messageObject), on a private local cloud (one of
the faults restarts it), then every delivery guarantee checked. The census is logged (shown
with -o log_cli=true) and carried by every assertion message."""

from __future__ import annotations

import logging

import pytest
from disa_lambda.models.status import Status

from disa.drills import chaos

pytestmark = pytest.mark.e2e
log = logging.getLogger(__name__)
ITEMS = 200


def test_no_item_is_lost_stuck_or_sent_twice_under_faults(private_cloud):
    result = chaos.run(private_cloud.clients(), private_cloud, count=ITEMS, seed=7, settle_timeout=600, log=log.info)
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
    assert census.statuses[Status.SUCCESSFUL] + census.statuses[Status.REJECTED] == ITEMS, report
    assert result.large_sent[chaos.INLINE] >= 2 and result.large_sent[chaos.OBJECT] >= 2, report
    assert census.large == sum(result.large_sent.values()), report
    assert census.large_not_exact == [] and census.unreadable == 0, report
    # Every large item byte-exact, but any whose fan-out the engine cut (counted above).
    assert len(census.large_exact) >= census.large - len(census.lost_after_sns), report
