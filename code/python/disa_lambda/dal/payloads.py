"""The only code that calls S3: the stack's payload bucket, where bodies too large to publish
are stored, and the buckets items may reference. Every call names the account expected to
own the bucket (ExpectedBucketOwner), so a bucket of the same name in another account is
never read or written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from disa_lambda.dal import clients
from disa_lambda.models.exceptions import PayloadObjectForbidden, PayloadObjectMissing, PayloadUnavailable
from disa_lambda.models.pointer import ObjectRef


@dataclass(frozen=True)
class SourceObject:
    size: int
    etag: str


@dataclass(frozen=True)
class StoredObject:
    size: int
    written_at: float  # epoch seconds of its last write, from which the bucket's expiry counts


class PayloadBucket:
    def __init__(self, bucket: str, owner: str, client: Any | None = None, copy_client: Any | None = None) -> None:
        self.bucket = bucket
        self._owner = owner
        self._client = client or clients.client("s3")
        self._copy_client = copy_client or clients.copy_client()

    def stored(self, key: str) -> StoredObject | None:
        """The body an earlier attempt stored under ``key``, or None."""
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=key, ExpectedBucketOwner=self._owner)
        except ClientError as error:
            if clients.error_code(error) in ("404", "NoSuchKey"):
                return None
            raise PayloadUnavailable(f"HeadObject s3://{self.bucket}/{key} failed: {error}") from error
        except BotoCoreError as error:
            raise PayloadUnavailable(f"HeadObject s3://{self.bucket}/{key} failed: {error}") from error
        return StoredObject(int(head["ContentLength"]), head["LastModified"].timestamp())

    def put(self, key: str, body: bytes) -> None:
        what = f"PutObject s3://{self.bucket}/{key}"
        self._call(self._client.put_object, what, Bucket=self.bucket, Key=key, Body=body)

    def restamp(self, key: str) -> None:
        """Copy the object onto itself: its last write becomes now, so its expiry starts again."""
        self._call(
            self._copy_client.copy_object,
            f"CopyObject s3://{self.bucket}/{key} onto itself",
            Bucket=self.bucket,
            Key=key,
            CopySource={"Bucket": self.bucket, "Key": key},
            ExpectedSourceBucketOwner=self._owner,
            MetadataDirective="REPLACE",
            TaggingDirective="REPLACE",
        )

    def size_of(self, source: ObjectRef) -> SourceObject:
        """The size and ETag of an object an item names, read with a one-byte ranged GET:
        unlike HeadObject it needs the object's KMS key too, so an object Disa could see but
        not copy is found here, where the fault is surely the object's. Raises
        PayloadObjectMissing or PayloadObjectForbidden for what only its owner can fix."""
        try:
            got = self._client.get_object(
                Bucket=source.bucket, Key=source.key, Range="bytes=0-0", ExpectedBucketOwner=self._owner
            )
        except ClientError as error:
            if clients.error_code(error) == "InvalidRange":  # a range of an empty object
                return SourceObject(0, "")
            self._raise_for_source(error, source)
        except BotoCoreError as error:
            raise PayloadUnavailable(f"GetObject {source} failed: {error}") from error
        got["Body"].close()
        total = str(got.get("ContentRange", "")).rpartition("/")[2]
        return SourceObject(int(total) if total.isdigit() else int(got["ContentLength"]), got.get("ETag", ""))

    def copy_in(self, source: ObjectRef, etag: str, key: str) -> None:
        """A server-side copy of ``source``, as it was when measured (``etag``), to ``key``
        (at most 5 GB in one call; Disa takes 2 GB). A failure here is S3's or Disa's own
        (size_of proved the source readable): PayloadUnavailable."""
        condition = {"CopySourceIfMatch": etag} if etag else {}
        self._call(
            self._copy_client.copy_object,
            f"CopyObject {source} to s3://{self.bucket}/{key}",
            Bucket=self.bucket,
            Key=key,
            CopySource={"Bucket": source.bucket, "Key": source.key},
            ExpectedSourceBucketOwner=self._owner,
            # The source's tags are not carried over, so no tagging permission is needed.
            TaggingDirective="REPLACE",
            **condition,
        )

    def _call(self, method: Any, what: str, **kwargs: Any) -> Any:
        try:
            return method(ExpectedBucketOwner=self._owner, **kwargs)
        except (ClientError, BotoCoreError) as error:
            raise PayloadUnavailable(f"{what} failed: {error}") from error

    @staticmethod
    def _raise_for_source(error: ClientError, source: ObjectRef) -> None:
        code = clients.error_code(error)
        if code in ("404", "NoSuchKey", "NoSuchBucket"):
            raise PayloadObjectMissing(str(source)) from error
        if code in ("403", "AccessDenied", "AllAccessDisabled") or code.startswith("KMS."):
            raise PayloadObjectForbidden(f"{source}: {code}") from error
        raise PayloadUnavailable(f"GetObject {source} failed: {error}") from error
