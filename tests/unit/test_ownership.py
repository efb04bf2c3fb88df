"""The ownership record and its reader: who publishes in a two-region deployment."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from disa_lambda.dal.ownership import CACHE_SECONDS, Ownership
from disa_lambda.models.exceptions import StoreUnavailable
from disa_lambda.models.ownership import KEY, OwnershipRecord

from disa.common.errors import UserError
from disa.deploy.regions import RegionPair


class Table:
    """A GetItem that answers with what the test put, counting reads."""

    def __init__(self, item=None, error: bool = False) -> None:
        self.item, self.error, self.reads = item, error, 0

    def get_item(self, TableName, Key, ConsistentRead):
        assert Key == KEY and ConsistentRead
        self.reads += 1
        if self.error:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "down"}}, "GetItem")
        return {"Item": self.item} if self.item else {}


def test_one_region_always_owns_and_reads_nothing():
    ownership = Ownership("", "eu-west-1", "")
    assert ownership.owns() and not ownership.two_regions


def test_no_record_yet_means_the_primary_owns():
    assert Ownership("o", "us-east-1", "us-east-1", client=Table()).owns()
    assert not Ownership("o", "us-west-2", "us-east-1", client=Table()).owns()


def test_the_record_is_read_once_per_cache_period():
    now = [100.0]
    table = Table(OwnershipRecord("us-west-2", 2).to_item())
    ownership = Ownership("o", "us-west-2", "us-east-1", client=table, clock=lambda: now[0])
    assert ownership.owns() and ownership.owns()
    assert table.reads == 1
    table.item = OwnershipRecord("us-east-1", 3).to_item()  # a failback
    now[0] += CACHE_SECONDS
    assert not ownership.owns() and table.reads == 2


def test_an_unreadable_record_is_an_error_not_a_guess():
    with pytest.raises(StoreUnavailable, match="ownership record"):
        Ownership("o", "us-east-1", "us-east-1", client=Table(error=True)).owns()


def test_a_handover_moves_one_epoch_on_and_remembers_the_previous_owner():
    record = OwnershipRecord.from_item(OwnershipRecord("us-east-1", 1).to_item(), "us-east-1")
    moved = record.handed_to("us-west-2", "2026-12-02T00:00:00Z")
    assert (moved.owner, moved.epoch, moved.previous) == ("us-west-2", 2, "us-east-1")
    assert OwnershipRecord.from_item(moved.to_item(), "us-east-1") == moved


@pytest.mark.parametrize("text", ["us-east-1", "us-east-1,us-east-1", "us-east-1,mars", "a,b,c"])
def test_regions_must_be_two_different_region_names(text):
    with pytest.raises(UserError, match="two different regions, primary first"):
        RegionPair.parse(text)


def test_opt_in_regions_are_refused_with_the_reason():
    with pytest.raises(UserError, match="af-south-1 is an opt-in region"):
        RegionPair.parse("eu-west-1,af-south-1")


def test_each_region_stack_knows_its_peer_and_only_the_secondary_holds_replicas():
    pair = RegionPair.parse("us-east-1, eu-west-1")
    assert pair.stack_parameters("us-east-1", {}) == {"PeerRegion": "eu-west-1", "HoldsReplicas": "false"}
    assert pair.stack_parameters("eu-west-1", {}) == {"PeerRegion": "us-east-1", "HoldsReplicas": "true"}
    with pytest.raises(UserError, match="not one of"):
        pair.other("ap-south-1")
