"""Domain errors. Class names are stable: logs and alarms refer to them."""


class DisaError(Exception):
    """Base of every error Disa raises on purpose."""


class SettingsError(DisaError):
    """An environment variable the function needs is missing or malformed."""


class MalformedStreamRecord(DisaError):
    """A stream record lacks what a NEW_AND_OLD_IMAGES INSERT record must carry."""


class StoreUnavailable(DisaError):
    """DynamoDB refused a write for a reason other than a failed condition."""


class ItemUnwritable(DisaError):
    """DynamoDB refuses any status on this item: it is so close to the 400 KB item limit
    that the status attributes do not fit. Only its owner can act (shrink or delete it)."""


class WorkflowStartFailed(DisaError):
    """StartExecution failed after the item was claimed; its lease will expire and the
    retry job will claim it again."""


class ItemUnpublishable(DisaError):
    """The item passes the schema but cannot be published as it is; ``str(error)`` is the
    reason recorded on the REJECTED item, starting with the attribute it is about."""


class PayloadObjectMissing(DisaError):
    """The S3 object an item names (or its bucket) does not exist."""


class PayloadObjectForbidden(DisaError):
    """S3 (or the object's KMS key) refuses Disa's roles the object an item names."""


class PayloadUnavailable(DisaError):
    """S3 failed while a body was being stored or looked up, for a reason that may pass (a
    throttle, a timeout, a 5xx): the attempt is set back and the retry job stores it again."""
