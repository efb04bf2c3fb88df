from __future__ import annotations

from dataclasses import dataclass

import pytest
from disa_lambda.handlers import retry, trigger


@dataclass
class FakeLambdaContext:
    """The attributes Powertools and the handlers read from the Lambda context."""

    function_name: str = "disa-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:disa-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    remaining_ms: int = 300_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def deployed(core, monkeypatch):
    """The core with the functions' environment set as the templates set it."""
    for name, value in core.environment().items():
        monkeypatch.setenv(name, value)
    trigger._dependencies.cache_clear()
    retry._dependencies.cache_clear()
    yield core
    trigger._dependencies.cache_clear()
    retry._dependencies.cache_clear()
