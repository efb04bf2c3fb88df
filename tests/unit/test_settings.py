from __future__ import annotations

import pytest
from disa_lambda.models.exceptions import SettingsError
from disa_lambda.models.settings import RetrySettings, TriggerSettings

pytestmark = pytest.mark.unit

ENV = {
    "TABLE_NAME": "t",
    "STATE_MACHINE_ARN": "arn",
    "TOPIC_IS_FIFO": "false",
    "MAX_ATTEMPTS": "5",
    "LEASE_SECONDS": "300",
    "RETRY_BASE_DELAY_SECONDS": "60",
    "RETRY_MAX_DELAY_SECONDS": "3600",
    "KEY_ATTRIBUTE_NAME": "id",
    "METRIC_NAMESPACE": "Disa",
    "METRIC_STACK_NAME": "disa",
    "MAX_ITEMS_PER_RUN": "10",
    "RETRY_INTERVAL_MINUTES": "1",
    "SWEEP_SEGMENTS": "60",
    "SWEEP_GRACE_SECONDS": "600",
    "SWEEP_SECONDS_PER_RUN": "30",
    "JOB_STATE_TABLE_NAME": "jobs",
    "WORKERS": "8",
    "PAYLOAD_BUCKET": "disa-payloads",
    "PAYLOAD_BUCKET_OWNER": "123456789012",
    "PAYLOAD_SOURCE_BUCKETS": "uploads-a,uploads-b",
    "PAYLOAD_OFFLOAD_THRESHOLD": "262144",
    "PAYLOAD_MAX_BYTES": "2147483648",
    "GROUPS_TABLE_NAME": "disa-groups",
    "FIFO_ABANDONED_ITEMS": "release",
    "FINISHED_ITEM_RETENTION_DAYS": "30",
}


def test_complete_environment_is_read():
    settings = RetrySettings.from_env(ENV)
    assert settings.MAX_ATTEMPTS == 5 and settings.TOPIC_IS_FIFO is False and settings.KEY_ATTRIBUTE_NAME == "id"
    assert sorted(settings.PAYLOAD_SOURCE_BUCKETS) == ["uploads-a", "uploads-b"]
    assert settings.FINISHED_ITEM_RETENTION_DAYS == 30
    assert settings.PAYLOAD_OFFLOAD_THRESHOLD == 262_144


def test_always_offloads_from_zero_bytes_and_no_source_buckets_is_an_empty_set():
    settings = TriggerSettings.from_env({**ENV, "PAYLOAD_OFFLOAD_THRESHOLD": "always", "PAYLOAD_SOURCE_BUCKETS": ""})
    assert settings.PAYLOAD_OFFLOAD_THRESHOLD == 0 and frozenset() == settings.PAYLOAD_SOURCE_BUCKETS


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"TABLE_NAME": None}, "TABLE_NAME is not set"),
        ({"MAX_ATTEMPTS": "five"}, "MAX_ATTEMPTS='five' is not an integer"),
        ({"MAX_ATTEMPTS": "0"}, "MAX_ATTEMPTS=0 is below its minimum 1"),
        ({"TOPIC_IS_FIFO": "yes"}, "TOPIC_IS_FIFO='yes' must be 'true' or 'false'"),
        ({"RETRY_MAX_DELAY_SECONDS": "10"}, "RETRY_MAX_DELAY_SECONDS must not be below"),
        ({"PAYLOAD_OFFLOAD_THRESHOLD": "262145"}, "PAYLOAD_OFFLOAD_THRESHOLD=262145 is above SNS's message limit"),
        ({"PAYLOAD_BUCKET_OWNER": "me"}, "PAYLOAD_BUCKET_OWNER='me' is not a 12-digit AWS account id"),
    ],
)
def test_a_wrong_environment_names_the_variable(change, message):
    env = {**ENV, **change}
    env = {k: v for k, v in env.items() if v is not None}
    with pytest.raises(SettingsError, match=message):
        TriggerSettings.from_env(env)
