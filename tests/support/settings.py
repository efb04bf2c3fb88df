"""The publishing settings unit and fuzz tests plan attempts with."""

from disa_lambda.models.settings import PublishingSettings

PUBLISHING = PublishingSettings(
    TABLE_NAME="t",
    STATE_MACHINE_ARN="arn",
    TOPIC_IS_FIFO=False,
    MAX_ATTEMPTS=4,
    LEASE_SECONDS=300,
    RETRY_BASE_DELAY_SECONDS=60,
    RETRY_MAX_DELAY_SECONDS=600,
    WORKERS=4,
    PAYLOAD_BUCKET="disa-payloads",
    PAYLOAD_BUCKET_OWNER="123456789012",
    PAYLOAD_SOURCE_BUCKETS=frozenset({"producer-uploads"}),
    PAYLOAD_OFFLOAD_THRESHOLD=262_144,
    PAYLOAD_MAX_BYTES=2_147_483_648,
    GROUPS_TABLE_NAME="g",
    FIFO_ABANDONED_ITEMS="release",
    OWNERSHIP_TABLE_NAME="",
    PRIMARY_REGION="",
    FINISHED_ITEM_RETENTION_DAYS=0,
    METRIC_NAMESPACE="Disa",
    METRIC_STACK_NAME="disa",
)
