"""Shared fixtures. Every test runs with fake credentials and no default endpoint, so
nothing can reach a real AWS account. The stack on the local cloud is in tests/e2e."""

from __future__ import annotations

import pytest
from disa_lambda.handlers import retry, trigger
from moto import mock_aws

from tests.support.lambda_context import FakeLambdaContext
from tests.support.moto_stack import REGION, MotoStack


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


def _forget_handler_dependencies() -> None:
    trigger.dependencies.cache_clear()
    retry.dependencies.cache_clear()


@pytest.fixture
def moto_stack(request, moto_engine, monkeypatch) -> MotoStack:
    """Disa's stack on moto, with the functions' environment set as the templates set it.
    A standard topic; ``@pytest.mark.parametrize("moto_stack", ["fifo"], indirect=True)``
    gives a FIFO one ("fifo-hold": one whose ABANDONED items hold their group); "two-regions"
    the primary of a two-region deployment, with its ownership table; "retention" one whose
    finished items expire after 30 days."""
    kind = getattr(request, "param", "standard")  # "fifo", or "fifo-hold": FifoAbandonedItems=hold
    stack = MotoStack(
        topic_type=kind.removesuffix("-hold") if kind.startswith("fifo") else "standard",
        fifo_abandoned_items="hold" if "hold" in kind else "release",
        two_regions=kind == "two-regions",
        # "retention": FinishedItemRetentionDays 30, so finished items carry expiresAt.
        finished_item_retention_days=30 if kind == "retention" else 0,
    )
    for name, value in stack.environment().items():
        monkeypatch.setenv(name, value)
    _forget_handler_dependencies()
    yield stack
    _forget_handler_dependencies()


@pytest.fixture
def context() -> FakeLambdaContext:
    return FakeLambdaContext()
