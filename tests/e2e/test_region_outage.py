"""Two regions on the local cloud: the region-outage drill at a small size (the CLI's
defaults are larger), and the cross-region subscriptions it relies on, as SNS lists them."""

from __future__ import annotations

import pytest

from disa.drills import region_outage
from disa.operate.stack import StackInfo
from disa.operate.subscribers import SubscriberInfo

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def drill(local_cloud) -> region_outage.RegionOutageResult:
    return region_outage.run(local_cloud.clients(), count=24, rate=4)


def test_a_region_outage_loses_nothing_and_processes_nothing_twice(drill):
    assert drill.passed, region_outage.report(drill)
    assert drill.inserted >= 24 and (len(drill.lost), len(drill.processed_twice)) == (0, 0)
    assert drill.statuses == {"SUCCESSFUL": drill.inserted}
    assert len(drill.published_twice) <= drill.bound


def test_each_region_published_and_consumed_while_it_owned(drill):
    # The secondary took over the orders the primary's cut left, and the primary the rest.
    assert drill.published_by.get(region_outage.SECONDARY, 0) > 0
    assert drill.published_by.get(region_outage.PRIMARY, 0) > 0
    assert sum(drill.processed_by.values()) == drill.inserted
    assert drill.processed_by.get(region_outage.SECONDARY, 0) > 0  # its consumers ran while it owned
    names = [phase.name for phase in drill.phases]
    moves = [name for name in names if name in ("cut", "failover", "recovery", "failback")]
    assert moves == ["cut", "failover", "recovery", "failback"] and names[-1] == "settled"
    # Orders went on arriving until the failback had ended.
    assert names.index("all inserted") > names.index("failback done")


@pytest.mark.parametrize("name", [region_outage.ORDERS.name, region_outage.AUDIT.name])
def test_each_topic_delivers_to_the_subscribers_queue_in_both_regions(local_cloud, drill, name):
    clients = local_cloud.clients()
    queues = {
        region: SubscriberInfo.of(clients.in_region(region), region_outage.STACK, name).queue.arn
        for region in (region_outage.PRIMARY, region_outage.SECONDARY)
    }
    for region in queues:
        regional = clients.in_region(region)
        topic = StackInfo.of(regional, region_outage.STACK).topic_arn
        listed = regional("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        assert {s["Endpoint"] for s in listed if s["Protocol"] == "sqs"} >= set(queues.values()), region
