"""Shared fixtures. Every test runs with fake credentials and no default endpoint, so
nothing can reach a real AWS account."""

from __future__ import annotations

import pytest
from moto import mock_aws

from tests.support.core import REGION, Core


@pytest.fixture(autouse=True)
def _fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)


@pytest.fixture
def moto_engine():
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield


@pytest.fixture
def core(moto_engine) -> Core:
    return Core()


@pytest.fixture
def fifo_core(moto_engine) -> Core:
    return Core(topic_type="fifo")
