"""Which region publishes, in a two-region deployment: the ownership record.

Both regions run the whole pipeline and both tables' streams carry every write (a global
table replicates each one, with nothing on the record saying where it was made), so both
triggers see every insert. Exactly one region, the owner, takes items in, retries them and
runs its consumers; the other reads the record, sees it does not own, and writes nothing:
a passive region that wrote to items would race the owner's claims under global tables'
last-writer-wins. `disa failover --to REGION` moves the record in two writes, the old
owner's release (NO_OWNER) in its own region and then the new owner's name in the new
region: a condition on a global table is checked against the local replica only, so a
record written in the new region first would let both regions claim and publish one
insert until it replicated (README, "Two regions").

The record is one item of the ``<prefix>-ownership`` global table, read by the Lambda code
(dal/ownership.py) and written by the CLI (disa/operate/regions.py) through this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

KEY_ATTRIBUTE = "scope"
PUBLISHING = "publishing"  # the one scope today: who takes in, retries and consumes
KEY = {KEY_ATTRIBUTE: {"S": PUBLISHING}}
# A record that is not there yet (the moment between deploy and its first write) names the
# primary, the first region of the deployment's Regions.
FIRST_EPOCH = 0
# Between a release and the new owner's write nobody publishes: inserts wait in the table
# and the new owner's takeover sweep finds them.
NO_OWNER = ""


@dataclass(frozen=True)
class OwnershipRecord:
    owner: str  # the region that publishes, or NO_OWNER while publishing is being handed over
    epoch: int  # one more at each failover: a write is conditional on the epoch it read
    since: str = ""  # ISO time of the failover that made ``owner`` the owner
    previous: str = ""  # the owner before it

    @classmethod
    def from_item(cls, item: Mapping[str, Any] | None, primary_region: str) -> OwnershipRecord:
        if not item:
            return cls(owner=primary_region, epoch=FIRST_EPOCH)
        return cls(
            owner=item["owner"]["S"],
            epoch=int(item["epoch"]["N"]),
            since=item.get("since", {}).get("S", ""),
            previous=item.get("previous", {}).get("S", ""),
        )

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {**KEY, "owner": {"S": self.owner}, "epoch": {"N": str(self.epoch)}}
        if self.since:
            item["since"] = {"S": self.since}
        if self.previous:
            item["previous"] = {"S": self.previous}
        return item

    def handed_to(self, region: str, now_iso: str) -> OwnershipRecord:
        return OwnershipRecord(owner=region, epoch=self.epoch + 1, since=now_iso, previous=self.owner or self.previous)

    def released(self, now_iso: str) -> OwnershipRecord:
        """The owner gives publishing up, one epoch on; nobody owns until ``handed_to``."""
        return OwnershipRecord(owner=NO_OWNER, epoch=self.epoch + 1, since=now_iso, previous=self.owner)
