"""boto3 clients for one target: a profile and region on AWS, or any endpoint
(`--endpoint-url`, or AWS_ENDPOINT_URL, which boto3 also reads itself)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import NoCredentialsError, NoRegionError, ProfileNotFound

from disa.common.errors import UserError


@dataclass(frozen=True)
class Target:
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None

    @property
    def uses_tls(self) -> bool:
        """False for a plain-HTTP endpoint (a local cloud): no request to it could ever
        satisfy a TLS-only policy."""
        endpoint = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or "https://"
        return endpoint.startswith("https://")


_DEFAULT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})
_CONFIGS = {
    # The CLI invokes Disa's functions synchronously (`disa retry`, a failover's takeover
    # sweep), which may run up to their 300-s timeout: a shorter read timeout would give up
    # and, retried, run the same work several times at once (throttles are still retried).
    "lambda": Config(read_timeout=320, retries={"mode": "standard", "max_attempts": 3}),
}
# Whether a region answers: about 30 s at worst, not the default's 5 attempts of a 60-s connect.
_QUICK_CONFIG = Config(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 2})


class Clients:
    def __init__(self, target: Target) -> None:
        try:
            self._session = boto3.session.Session(profile_name=target.profile, region_name=target.region)
        except ProfileNotFound as error:
            raise UserError(f"AWS profile {target.profile!r} not found; check --profile or ~/.aws/config") from error
        if not self._session.region_name:
            raise UserError("no AWS region set; pass --region or set AWS_REGION")
        self.target = target
        self._cache: dict[str, Any] = {}
        self._caller: dict[str, str] | None = None  # GetCallerIdentity, asked once

    @property
    def region(self) -> str:
        return self._session.region_name

    def in_region(self, region: str) -> Clients:
        """Clients for the same account and endpoint in ``region`` (two-region deployments)."""
        if region == self.region:
            return self
        return Clients(Target(region=region, profile=self.target.profile, endpoint_url=self.target.endpoint_url))

    def __call__(self, service: str) -> Any:
        if service not in self._cache:
            try:
                self._cache[service] = self._session.client(
                    service, endpoint_url=self.target.endpoint_url, config=_CONFIGS.get(service, _DEFAULT_CONFIG)
                )
            except NoRegionError as error:
                raise UserError("no AWS region set; pass --region or set AWS_REGION") from error
        return self._cache[service]

    def quick(self, service: str) -> Any:
        """A client that gives up within seconds (one retry, short timeouts), for asking
        whether a region answers at all: the default one retries for minutes."""
        return self._session.client(service, endpoint_url=self.target.endpoint_url, config=_QUICK_CONFIG)

    def account_id(self) -> str:
        return self._identity()["Account"]

    def partition(self) -> str:
        """aws, aws-cn, aws-us-gov...: the partition of the caller's account, for ARNs built here."""
        return self._identity()["Arn"].split(":")[1]

    def _identity(self) -> dict[str, str]:
        if self._caller is None:
            try:
                self._caller = self("sts").get_caller_identity()
            except NoCredentialsError as error:
                raise UserError("no AWS credentials found; run `aws configure` or pass --profile") from error
        return self._caller
