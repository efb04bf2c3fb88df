"""The ownership record's handover (disa/operate/regions.py hand_over) over two moto regions.

moto keeps each region's tables apart and replicates nothing, so a replicator thread stands
in for global tables: it copies the record to the other region after a lag, last writer
wins, as DynamoDB does. An observer thread reads both replicas the whole time. The property
under test is the one a conditional claim needs on a global table: no moment at which both
regions' functions may act as the owner, a region's cached "I own" included."""

from __future__ import annotations

import threading
import time

import pytest
from disa_lambda.models.ownership import KEY, NO_OWNER, OwnershipRecord

from disa.common.aws import Clients, Target
from disa.common.errors import UserError
from disa.operate import regions

PRIMARY, SECONDARY = "us-east-1", "us-west-2"
TABLE = "disa-t-ownership"
LAG_SECONDS = 0.4  # replication lag of the stand-in
CACHE_SECONDS = 0.6  # the functions' cache, shortened so the test takes seconds
POLL_SECONDS = 0.02


class TwoReplicas:
    """The ownership table in both regions, a replicator with a lag, and a record of which
    region each replica named over time."""

    def __init__(self) -> None:
        self.clients = {region: Clients(Target(region=region)) for region in (PRIMARY, SECONDARY)}
        for clients in self.clients.values():
            clients("dynamodb").create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "scope", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "scope", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        self.seen: list[tuple[float, str, str]] = []  # (time, replica's region, owner it names)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._replicate), threading.Thread(target=self._observe)]

    def read(self, region: str) -> OwnershipRecord:
        return regions.read_ownership(self.clients[region], TABLE, PRIMARY)

    def put(self, region: str, record: OwnershipRecord) -> None:
        self.clients[region]("dynamodb").put_item(TableName=TABLE, Item=record.to_item())

    def __enter__(self) -> TwoReplicas:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _replicate(self) -> None:
        copies: dict[str, tuple[float, OwnershipRecord]] = {}  # last version seen per region
        pending: list[tuple[float, str, OwnershipRecord]] = []  # (due, to region, record)
        while not self._stop.is_set():
            now = time.monotonic()
            for region in self.clients:
                record = self.read(region)
                if copies.get(region, (0, None))[1] != record:
                    copies[region] = (now, record)
                    other = SECONDARY if region == PRIMARY else PRIMARY
                    pending.append((now + LAG_SECONDS, other, record))
            for due, to, record in [p for p in pending if p[0] <= now]:
                pending.remove((due, to, record))
                if self.read(to).epoch < record.epoch:  # a later write there wins, as LWW keeps the latest
                    self.put(to, record)
                    copies[to] = (time.monotonic(), record)
            time.sleep(POLL_SECONDS)

    def _observe(self) -> None:
        while not self._stop.is_set():
            for region in self.clients:
                self.seen.append((time.monotonic(), region, self.read(region).owner))
            time.sleep(POLL_SECONDS)

    def may_act_as_owner(self, region: str) -> tuple[float, float]:
        """From the first moment the region's replica named it to the last one, plus the
        functions' cache: when that region's trigger or retry job may have claimed."""
        named = [at for at, replica, owner in self.seen if replica == region and owner == region]
        return (min(named), max(named) + CACHE_SECONDS) if named else (float("inf"), float("-inf"))


@pytest.fixture
def replicas(moto_engine, monkeypatch):
    monkeypatch.setattr(regions, "CACHE_SECONDS", CACHE_SECONDS)
    monkeypatch.setattr(regions, "SETTLE_MARGIN_SECONDS", 0.2)
    monkeypatch.setattr(regions, "POLL_SECONDS", POLL_SECONDS)
    with TwoReplicas() as two:
        two.put(PRIMARY, OwnershipRecord(owner=PRIMARY, epoch=1))
        regions.wait_until(lambda: two.read(SECONDARY).epoch, bool, 10, POLL_SECONDS)
        yield two


def test_a_planned_handover_never_has_two_owners_at_once(replicas):
    record = regions.hand_over(replicas.clients[PRIMARY], replicas.clients[SECONDARY], TABLE, PRIMARY, log=print)
    time.sleep(LAG_SECONDS + 3 * POLL_SECONDS)  # the new name replicates back, observed

    old_from, old_until = replicas.may_act_as_owner(PRIMARY)
    new_from, _ = replicas.may_act_as_owner(SECONDARY)
    assert old_from < old_until < new_from, "the new owner was named while the old one could still act"
    assert (record.owner, record.epoch, record.previous) == (SECONDARY, 3, PRIMARY)
    assert replicas.read(PRIMARY) == replicas.read(SECONDARY) == record


def test_a_handover_interrupted_after_the_release_finishes_without_releasing_again(replicas):
    replicas.put(PRIMARY, replicas.read(PRIMARY).released("2026-12-02T00:00:00Z"))  # a run stopped here
    record = regions.hand_over(replicas.clients[PRIMARY], replicas.clients[SECONDARY], TABLE, PRIMARY, log=print)

    assert (record.owner, record.epoch, record.previous) == (SECONDARY, 3, PRIMARY)
    assert replicas.read(SECONDARY) == record


def test_a_handover_run_again_once_done_changes_nothing(replicas):
    first = regions.hand_over(replicas.clients[PRIMARY], replicas.clients[SECONDARY], TABLE, PRIMARY, log=print)
    again = regions.hand_over(replicas.clients[PRIMARY], replicas.clients[SECONDARY], TABLE, PRIMARY, log=print)
    assert again == first


def test_an_unanswering_old_owner_is_not_waited_for_and_the_new_one_is_named_at_once(replicas):
    record = regions.hand_over(None, replicas.clients[SECONDARY], TABLE, PRIMARY, log=print)
    assert (record.owner, record.epoch) == (SECONDARY, 2)
    assert replicas.read(SECONDARY).owner == SECONDARY


def test_nobody_owns_a_released_record():
    released = OwnershipRecord(owner=PRIMARY, epoch=4).released("2026-12-02T00:00:00Z")
    assert (released.owner, released.epoch, released.previous) == (NO_OWNER, 5, PRIMARY)
    assert OwnershipRecord.from_item({**KEY, **released.to_item()}, PRIMARY) == released
    assert released.handed_to(SECONDARY, "2026-12-02T00:00:01Z").previous == PRIMARY


def test_a_failover_back_to_the_old_owner_meanwhile_stops_the_handover_rather_than_name_two(replicas, monkeypatch):
    real_sleep = time.sleep

    def another_failover_while_waiting(seconds: float) -> None:
        # Someone else runs `disa failover --to us-east-1` while this one waits out the cache.
        replicas.put(SECONDARY, OwnershipRecord(owner=PRIMARY, epoch=9))
        real_sleep(seconds)

    monkeypatch.setattr(regions.time, "sleep", another_failover_while_waiting)
    with pytest.raises(UserError, match="another failover named us-east-1 meanwhile"):
        regions.hand_over(replicas.clients[PRIMARY], replicas.clients[SECONDARY], TABLE, PRIMARY, log=print)
    assert replicas.read(SECONDARY).owner == PRIMARY  # not overwritten with a second owner
