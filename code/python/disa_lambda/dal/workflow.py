"""Starts publisher executions (Step Functions)."""

from __future__ import annotations

import json
from typing import Any, Mapping

from botocore.exceptions import ClientError

from disa_lambda.dal import clients
from disa_lambda.models.exceptions import WorkflowStartFailed


class Workflow:
    def __init__(self, state_machine_arn: str, client: Any | None = None) -> None:
        self._arn = state_machine_arn
        self._client = client or clients.client("stepfunctions")

    def start(self, name: str, document: Mapping[str, Any]) -> str:
        """Start one execution; returns its ARN.

        ExecutionAlreadyExists means this very claim already started it (names embed the
        claim token), so it counts as started.
        """
        try:
            response = self._client.start_execution(
                stateMachineArn=self._arn, name=name, input=json.dumps(document, ensure_ascii=False)
            )
        except ClientError as error:
            if clients.error_code(error) == "ExecutionAlreadyExists":
                return f"{self._arn.replace(':stateMachine:', ':execution:')}:{name}"
            raise WorkflowStartFailed(f"StartExecution {name} failed: {error}") from error
        return response["executionArn"]
