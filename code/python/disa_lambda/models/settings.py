"""Environment of each function, validated at cold start.

Field names are the environment variable names in cft/nested-stacks/functions.yaml,
exactly; tests/templates/test_contracts.py
(test_function_environment_matches_its_settings_model) checks both directions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Mapping

from disa_lambda.models.exceptions import SettingsError
from disa_lambda.models.group import AbandonedInGroup

# Read by Powertools itself, not by Disa's code; declared here so the template check
# knows every variable a function receives has a reader.
READ_BY_POWERTOOLS = frozenset({"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL"})


def _int(env: Mapping[str, str], name: str, minimum: int) -> int:
    raw = env.get(name)
    if raw is None:
        raise SettingsError(f"environment variable {name} is not set")
    try:
        value = int(raw)
    except ValueError as error:
        raise SettingsError(f"{name}={raw!r} is not an integer") from error
    if value < minimum:
        raise SettingsError(f"{name}={value} is below its minimum {minimum}")
    return value


def _str(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise SettingsError(f"environment variable {name} is not set")
    return value


# SNS refuses a message (body and attributes) above 256 KiB, so no threshold may be higher.
SNS_MESSAGE_LIMIT_BYTES = 262_144


def names_in(text: str) -> frozenset[str]:
    """The names of a comma-separated list, such as a list of buckets (empty: none)."""
    return frozenset(name for name in text.split(",") if name)


def _account(env: Mapping[str, str], name: str) -> str:
    value = _str(env, name)
    if not (len(value) == 12 and value.isdigit()):
        raise SettingsError(f"{name}={value!r} is not a 12-digit AWS account id")
    return value


def _threshold(env: Mapping[str, str], name: str) -> int:
    if env.get(name) == "always":
        return 0
    value = _int(env, name, 1)
    if value > SNS_MESSAGE_LIMIT_BYTES:
        raise SettingsError(f"{name}={value} is above SNS's message limit {SNS_MESSAGE_LIMIT_BYTES}")
    return value


@dataclass(frozen=True)
class PublishingSettings:
    """What every function that starts a publishing attempt needs."""

    TABLE_NAME: str
    STATE_MACHINE_ARN: str
    TOPIC_IS_FIFO: bool
    MAX_ATTEMPTS: int
    LEASE_SECONDS: int
    RETRY_BASE_DELAY_SECONDS: int
    RETRY_MAX_DELAY_SECONDS: int
    WORKERS: int  # threads that claim and start items concurrently within one invocation
    PAYLOAD_BUCKET: str
    PAYLOAD_BUCKET_OWNER: str  # the account every S3 call expects to own the buckets (ExpectedBucketOwner)
    PAYLOAD_SOURCE_BUCKETS: frozenset[str]  # buckets items may reference besides the payload bucket
    PAYLOAD_OFFLOAD_THRESHOLD: int  # bytes of message + attributes above which the body goes to S3; "always" is 0
    PAYLOAD_MAX_BYTES: int
    GROUPS_TABLE_NAME: str  # FIFO topics: the group ledger (dal/groups.py)
    FIFO_ABANDONED_ITEMS: AbandonedInGroup  # FIFO topics: an ABANDONED item holds its group, or releases it
    # Two regions: the global table naming the region that publishes (models/ownership.py),
    # and the region it names before any failover. Empty in a one-region deployment.
    OWNERSHIP_TABLE_NAME: str
    PRIMARY_REGION: str
    # Days a finished item (SUCCESSFUL, REJECTED) is kept before DynamoDB's TTL deletes it,
    # through its expiresAt; 0 keeps it.
    FINISHED_ITEM_RETENTION_DAYS: int
    # Where both functions put their metrics (models/metrics.py): the stack's MetricNamespace
    # and the value of the one dimension StackName.
    METRIC_NAMESPACE: str
    METRIC_STACK_NAME: str

    @classmethod
    def _common(cls, env: Mapping[str, str]) -> dict:
        fifo = env.get("TOPIC_IS_FIFO", "")
        if fifo not in ("true", "false"):
            raise SettingsError(f"TOPIC_IS_FIFO={fifo!r} must be 'true' or 'false'")
        abandoned = env.get("FIFO_ABANDONED_ITEMS", "")
        if abandoned not in set(AbandonedInGroup):
            raise SettingsError(f"FIFO_ABANDONED_ITEMS={abandoned!r} must be 'release' or 'hold'")
        base = _int(env, "RETRY_BASE_DELAY_SECONDS", 1)
        ceiling = _int(env, "RETRY_MAX_DELAY_SECONDS", 1)
        if ceiling < base:
            raise SettingsError("RETRY_MAX_DELAY_SECONDS must not be below RETRY_BASE_DELAY_SECONDS")
        ownership, primary = env.get("OWNERSHIP_TABLE_NAME", ""), env.get("PRIMARY_REGION", "")
        if ownership and not primary:
            raise SettingsError("OWNERSHIP_TABLE_NAME is set but PRIMARY_REGION is not: two regions need both")
        return {
            "TABLE_NAME": _str(env, "TABLE_NAME"),
            "STATE_MACHINE_ARN": _str(env, "STATE_MACHINE_ARN"),
            "TOPIC_IS_FIFO": fifo == "true",
            "MAX_ATTEMPTS": _int(env, "MAX_ATTEMPTS", 1),
            "LEASE_SECONDS": _int(env, "LEASE_SECONDS", 60),
            "RETRY_BASE_DELAY_SECONDS": base,
            "RETRY_MAX_DELAY_SECONDS": ceiling,
            "WORKERS": _int(env, "WORKERS", 1),
            "PAYLOAD_BUCKET": _str(env, "PAYLOAD_BUCKET"),
            "PAYLOAD_BUCKET_OWNER": _account(env, "PAYLOAD_BUCKET_OWNER"),
            "PAYLOAD_SOURCE_BUCKETS": names_in(env.get("PAYLOAD_SOURCE_BUCKETS", "")),
            "PAYLOAD_OFFLOAD_THRESHOLD": _threshold(env, "PAYLOAD_OFFLOAD_THRESHOLD"),
            "PAYLOAD_MAX_BYTES": _int(env, "PAYLOAD_MAX_BYTES", 1),
            "GROUPS_TABLE_NAME": _str(env, "GROUPS_TABLE_NAME"),
            "FIFO_ABANDONED_ITEMS": AbandonedInGroup(abandoned),
            "OWNERSHIP_TABLE_NAME": ownership,
            "PRIMARY_REGION": primary,
            "FINISHED_ITEM_RETENTION_DAYS": _int(env, "FINISHED_ITEM_RETENTION_DAYS", 0),
            "METRIC_NAMESPACE": _str(env, "METRIC_NAMESPACE"),
            "METRIC_STACK_NAME": _str(env, "METRIC_STACK_NAME"),
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None):
        return cls(**cls._common(os.environ if env is None else env))

    @classmethod
    def variable_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))


@dataclass(frozen=True)
class TriggerSettings(PublishingSettings):
    """Environment of the stream trigger function."""


@dataclass(frozen=True)
class RetrySettings(PublishingSettings):
    """Environment of the scheduled retry function."""

    KEY_ATTRIBUTE_NAME: str = ""
    MAX_ITEMS_PER_RUN: int = 0
    RETRY_INTERVAL_MINUTES: int = 1
    SWEEP_SEGMENTS: int = 0
    SWEEP_GRACE_SECONDS: int = 0
    SWEEP_SECONDS_PER_RUN: int = 0
    JOB_STATE_TABLE_NAME: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None):
        env = os.environ if env is None else env
        return cls(
            **cls._common(env),
            KEY_ATTRIBUTE_NAME=_str(env, "KEY_ATTRIBUTE_NAME"),
            MAX_ITEMS_PER_RUN=_int(env, "MAX_ITEMS_PER_RUN", 1),
            RETRY_INTERVAL_MINUTES=_int(env, "RETRY_INTERVAL_MINUTES", 1),
            SWEEP_SEGMENTS=_int(env, "SWEEP_SEGMENTS", 0),
            SWEEP_GRACE_SECONDS=_int(env, "SWEEP_GRACE_SECONDS", 0),
            SWEEP_SECONDS_PER_RUN=_int(env, "SWEEP_SECONDS_PER_RUN", 1),
            JOB_STATE_TABLE_NAME=_str(env, "JOB_STATE_TABLE_NAME"),
        )
