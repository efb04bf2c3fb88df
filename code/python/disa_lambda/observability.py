"""The one Logger every function uses (structured JSON logs, service name from the template)."""

from aws_lambda_powertools import Logger

logger = Logger()
