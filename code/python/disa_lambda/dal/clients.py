"""The AWS clients of the Lambda code, with timeouts and retries chosen so that one call
has a known worst case: a batch can then be cut off in time to finish inside its
function's timeout (tests/templates/test_contracts.py checks the arithmetic)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

CONNECT_TIMEOUT_SECONDS = 1
# DynamoDB and Step Functions answer in milliseconds; a read that takes seconds is a lost
# connection, better retried than waited for.
READ_TIMEOUT_SECONDS = 3
# The standard retry mode retries throttles (ThrottlingException, ProvisionedThroughput-
# ExceededException) and transient errors with exponential backoff and full jitter. It is
# preferred over "adaptive", whose client-side rate limiter would make every worker thread
# of a batch wait on the slowest one.
TOTAL_MAX_ATTEMPTS = 4
_BACKOFF_CAP_SECONDS = 20  # botocore's standard mode: retry n waits up to min(20, 2**(n-1)) s
# Every worker thread of a batch needs a connection of its own.
MAX_POOL_CONNECTIONS = 64

SDK_CONFIG = Config(
    connect_timeout=CONNECT_TIMEOUT_SECONDS,
    read_timeout=READ_TIMEOUT_SECONDS,
    retries={"mode": "standard", "total_max_attempts": TOTAL_MAX_ATTEMPTS},
    max_pool_connections=MAX_POOL_CONNECTIONS,
)


# A server-side CopyObject of a large body (Disa takes up to 2 GB) is one call that lasts
# as long as S3 copies; it gets a longer read timeout and one retry instead of three.
COPY_READ_TIMEOUT_SECONDS = 30
COPY_MAX_ATTEMPTS = 2

COPY_CONFIG = Config(
    connect_timeout=CONNECT_TIMEOUT_SECONDS,
    read_timeout=COPY_READ_TIMEOUT_SECONDS,
    retries={"mode": "standard", "total_max_attempts": COPY_MAX_ATTEMPTS},
    max_pool_connections=MAX_POOL_CONNECTIONS,
)


def _worst(attempts: int, read_timeout: int) -> float:
    backoffs = sum(min(_BACKOFF_CAP_SECONDS, 2**n) for n in range(attempts - 1))
    return attempts * (CONNECT_TIMEOUT_SECONDS + read_timeout) + backoffs


def worst_copy_seconds() -> float:
    """The longest one CopyObject can take, retries included."""
    return _worst(COPY_MAX_ATTEMPTS, COPY_READ_TIMEOUT_SECONDS)


def copy_client() -> Any:
    return boto3.client("s3", config=COPY_CONFIG)


def worst_call_seconds() -> float:
    """The longest one call can take: every attempt times out and every backoff is the longest."""
    return _worst(TOTAL_MAX_ATTEMPTS, READ_TIMEOUT_SECONDS)


def error_code(error: ClientError) -> str:
    """The AWS error code of a failed call ("404" for a HEAD, which has no body)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def client(service: str) -> Any:
    """A client with Disa's timeouts and retries (thread-safe: a batch's workers share it)."""
    return boto3.client(service, config=SDK_CONFIG)
