"""`disa deploy --regions PRIMARY,SECONDARY` and `disa destroy` of such a deployment.

The primary's root stack creates the items table and the ownership table; the secondary
holds replicas of both, added with UpdateTable ReplicaUpdates (a global table, version
2019.11.21) rather than by AWS::DynamoDB::GlobalTable, because that works on AWS and on
the local engine alike (there AWS::DynamoDB::GlobalTable creates no replica). A replica
needs the secondary's KMS key, which the secondary's stack creates, and the secondary's
trigger needs the replica's stream, so a first deploy runs: primary, secondary without its
stream, replicas, secondary with its stream. Later deploys find the replicas and deploy
each region once. README, "Two regions".
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable

from botocore.exceptions import ClientError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from disa.common.aws import Clients
from disa.common.console import progress
from disa.common.errors import UserError
from disa.deploy import packaging, stacks

_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]")
# Regions an account must opt in to (launched after March 2019): SNS delivers across regions
# to or from them only with a regional service principal, which the queue and key policies do
# not name, and not at all between two of them (README, Known limits).
OPT_IN_REGIONS = frozenset(
    {
        "af-south-1", "ap-east-1", "ap-east-2", "ap-south-2", "ap-southeast-3", "ap-southeast-4",
        "ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ca-west-1", "eu-central-2", "eu-south-1",
        "eu-south-2", "il-central-1", "me-central-1", "me-south-1", "mx-central-1",
    }
)  # fmt: skip
REPLICA_WAIT_SECONDS = 3600  # AWS copies a large table into a new replica for a long time
POLL_SECONDS = 5


@dataclass(frozen=True)
class RegionPair:
    primary: str
    secondary: str

    @classmethod
    def parse(cls, text: str) -> RegionPair:
        names = [name.strip() for name in text.split(",")]
        if len(names) != 2 or not all(_REGION.fullmatch(name) for name in names) or names[0] == names[1]:
            raise UserError(
                f"--regions {text!r} must name two different regions, primary first, e.g. us-east-1,us-west-2"
            )
        opted_in = sorted(OPT_IN_REGIONS.intersection(names))
        if opted_in:
            raise UserError(
                f"{opted_in[0]} is an opt-in region, whose cross-region SNS delivery Disa does not set up; "
                "choose two regions enabled by default"
            )
        return cls(names[0], names[1])

    @classmethod
    def of_stack(cls, regions: tuple[str, ...], stack: str) -> RegionPair:
        if len(regions) != 2:
            raise UserError(f"stack {stack} runs in one region; deploy it with `disa deploy --regions A,B` first")
        return cls(*regions)

    @property
    def parameter(self) -> str:
        return f"{self.primary},{self.secondary}"

    def stack_parameters(self, region: str, parameters: dict[str, str]) -> dict[str, str]:
        """The root stack's parameters in ``region``: its peer, and whether it holds replicas."""
        return {
            **parameters,
            "PeerRegion": self.other(region),
            "HoldsReplicas": "true" if region == self.secondary else "false",
        }

    def other(self, region: str) -> str:
        if region not in (self.primary, self.secondary):
            raise UserError(f"{region} is not one of this deployment's regions ({self.parameter})")
        return self.secondary if region == self.primary else self.primary


def deploy(
    clients: Clients,
    stack: str,
    pair: RegionPair,
    parameters: dict[str, str],
    bucket: str | None,
    log: Callable[[str], None] = progress,
) -> dict[str, dict[str, str]]:
    """Create or update the stack in both regions and the replicas between them; returns
    each region's outputs."""
    if parameters.get("TopicType") == "fifo":
        raise UserError(
            "two regions take a standard topic: a FIFO group's order needs conditional writes that global "
            "tables do not order across regions; deploy a FIFO topic in one region"
        )
    primary, secondary = clients.in_region(pair.primary), clients.in_region(pair.secondary)
    log(f"primary region {pair.primary}")
    stacks.deploy(primary, stack, _packaged(primary, bucket), pair.stack_parameters(pair.primary, parameters), log)
    primary_out = stacks.outputs(primary, stack)
    replicated = (primary_out["TableName"], primary_out["OwnershipTableName"])
    packaged = _packaged(secondary, bucket)
    parameters = pair.stack_parameters(pair.secondary, parameters)
    stream = replica_stream(secondary, primary_out["TableName"])
    if stream is None:
        log(f"secondary region {pair.secondary}: its key first, then the replicas, then its pipeline")
        stacks.deploy(secondary, stack, packaged, {**parameters, "ReplicaStreamArn": ""}, log)
    key_arn = stacks.outputs(secondary, stack)["KeyArn"]
    for table in replicated:
        ensure_replica(primary, table, secondary, key_arn, log)
    stream = replica_stream(secondary, primary_out["TableName"])
    if stream is None:
        raise UserError(f"the replica of {primary_out['TableName']} in {pair.secondary} has no stream")
    log(f"secondary region {pair.secondary}")
    stacks.deploy(secondary, stack, packaged, {**parameters, "ReplicaStreamArn": stream}, log)
    # Imported here: operate builds on deploy, not the other way round, except for this.
    from disa.operate.regions import initial_ownership

    initial_ownership(primary, primary_out["OwnershipTableName"], pair.primary, log)
    return {pair.primary: primary_out, pair.secondary: stacks.outputs(secondary, stack)}


def _packaged(clients: Clients, bucket: str | None) -> packaging.Packaged:
    # Nested templates are read from the stack's own region: one artifact bucket per region.
    return packaging.package(clients, bucket or packaging.default_bucket(clients))


def replica_stream(secondary: Clients, table: str) -> str | None:
    """The stream of ``table`` in the secondary's region, or None while it has no replica."""
    described = _table_or_none(secondary, table)
    return described.get("LatestStreamArn") if described else None


def replica_regions(primary: Clients, table: str) -> set[str] | None:
    """The regions holding a replica of ``table``, as the primary sees it; None without the table."""
    described = _table_or_none(primary, table)
    return {replica["RegionName"] for replica in described.get("Replicas", [])} if described else None


def _table_or_none(clients: Clients, table: str) -> dict | None:
    try:
        return _table(clients, table)
    except ClientError as error:
        if "ResourceNotFound" in str(error):
            return None
        raise


def ensure_replica(
    primary: Clients, table: str, secondary: Clients, key_arn: str, log: Callable[[str], None] = progress
) -> None:
    """A replica of ``table`` in the secondary's region, encrypted with ``key_arn`` (a key
    of that region), with point-in-time recovery and deletion protection like the table's."""
    ddb = primary("dynamodb")
    described = _table(primary, table)
    if secondary.region not in {replica["RegionName"] for replica in described.get("Replicas", [])}:
        log(f"  adding a replica of {table} in {secondary.region}")
        ddb.update_table(
            TableName=table,
            ReplicaUpdates=[{"Create": {"RegionName": secondary.region, "KMSMasterKeyId": key_arn}}],
        )
    _wait_for_replica(primary, table, secondary)
    replica = secondary("dynamodb")
    # Settings already in place are left alone: each deploy runs this again.
    backups = replica.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    if backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus") != "ENABLED":
        _settling(
            lambda: replica.update_continuous_backups(
                TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        )
    if described.get("DeletionProtectionEnabled") and not _table(secondary, table).get("DeletionProtectionEnabled"):
        _settling(lambda: replica.update_table(TableName=table, DeletionProtectionEnabled=True))


# A replica that has just become ACTIVE still refuses some updates for minutes: AWS answers
# ContinuousBackupsUnavailableException (point-in-time recovery being set up) or
# ResourceInUseException (its indexes still being built).
_SETTLING_ERRORS = ("ContinuousBackupsUnavailableException", "ResourceInUseException")
_TERMINAL_REPLICA_STATUSES = ("CREATION_FAILED", "INACCESSIBLE_ENCRYPTION_CREDENTIALS", "REGION_DISABLED")


def _settling(update: Callable[[], object]) -> None:
    Retrying(
        retry=retry_if_exception(lambda error: any(code in str(error) for code in _SETTLING_ERRORS)),
        wait=wait_exponential(multiplier=2, max=60),
        stop=stop_after_delay(REPLICA_WAIT_SECONDS),
        reraise=True,
    )(update)


def _table(clients: Clients, table: str) -> dict:
    return clients("dynamodb").describe_table(TableName=table)["Table"]


def _wait_for_replica(primary: Clients, table: str, secondary: Clients) -> None:
    """Until the replica and each of its indexes are ACTIVE; a replica AWS could not create
    (its key refused, most often) fails at once with the status that says why."""
    region, deadline = secondary.region, time.monotonic() + REPLICA_WAIT_SECONDS
    while time.monotonic() < deadline:
        described = _table(primary, table)
        status = {r["RegionName"]: r.get("ReplicaStatus", "ACTIVE") for r in described.get("Replicas", [])}
        if status.get(region) in _TERMINAL_REPLICA_STATUSES:
            raise UserError(
                f"the replica of {table} in {region} is {status[region]}: check that the deploying role may use the "
                f"key of {region} (kms:CreateGrant, kms:DescribeKey) and that the region is enabled"
            )
        if status.get(region) == "ACTIVE" and described.get("TableStatus") == "ACTIVE":
            replica = _table(secondary, table)
            # The local engine reports no IndexStatus: an index it lists is ready.
            indexes = [index.get("IndexStatus", "ACTIVE") for index in replica.get("GlobalSecondaryIndexes", [])]
            if replica.get("TableStatus") == "ACTIVE" and all(state == "ACTIVE" for state in indexes):
                return
        time.sleep(POLL_SECONDS)
    raise UserError(
        f"the replica of {table} in {region} is not ACTIVE after {REPLICA_WAIT_SECONDS} s; run deploy again"
    )


def remove_replica(primary: Clients, table: str, secondary: Clients, log: Callable[[str], None] = progress) -> None:
    """Delete the secondary's replica of ``table`` (its data there; the primary keeps its own)."""
    ddb = primary("dynamodb")
    if secondary.region not in (replica_regions(primary, table) or set()):
        return
    try:
        secondary("dynamodb").update_table(TableName=table, DeletionProtectionEnabled=False)
    except ClientError as error:
        if "ResourceNotFound" not in str(error):
            raise
    log(f"  removing the replica of {table} in {secondary.region}")
    ddb.update_table(TableName=table, ReplicaUpdates=[{"Delete": {"RegionName": secondary.region}}])
    deadline = time.monotonic() + REPLICA_WAIT_SECONDS
    while time.monotonic() < deadline:
        if secondary.region not in (replica_regions(primary, table) or set()) and (
            _table(primary, table).get("TableStatus") == "ACTIVE"
        ):
            return
        time.sleep(POLL_SECONDS)
    raise UserError(f"the replica of {table} in {secondary.region} is still there; run destroy again")
