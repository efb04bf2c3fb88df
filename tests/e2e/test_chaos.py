"""The CI-sized chaos run: every fault twice over a few hundred items, on a private local
cloud (one of the faults restarts it), then every delivery guarantee checked."""

from __future__ import annotations

import pytest

from disa import chaos
from disa.local_cloud import LocalCloud
from tests.support.net import free_port

pytestmark = pytest.mark.e2e


def test_no_item_is_lost_stuck_or_sent_twice_under_faults(tmp_path, capsys):
    port = free_port()
    cloud = LocalCloud(home=tmp_path / "chaos-cloud", port=port)
    cloud.up()
    try:
        clients = cloud.clients()
        census, seconds, fault_log = chaos.run(clients, cloud, count=200, seed=7, drain_timeout=600)
    finally:
        cloud.down()
    with capsys.disabled():
        print("\n" + chaos.report(census, seconds, fault_log))

    assert sorted(set(fault_log)) == sorted(chaos.FAULTS)
    assert census.lost == [] and census.undelivered == []
    # At most a message whose SNS fan-out an engine restart cut short (engine, not Disa).
    assert len(census.lost_after_sns) <= fault_log.count("engine-restart")
    assert census.stuck == []
    assert census.over_delivered == []
    assert census.rejected_but_delivered == []
    assert census.unsettled == 0, f"{census.statuses}"
    assert census.statuses["SUCCESSFUL"] + census.statuses["REJECTED"] == 200
