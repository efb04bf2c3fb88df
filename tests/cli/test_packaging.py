"""The Lambda zip: what is in it, what is not, and that its handlers import from it alone."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import pytest
from disa_lambda import contracts

from disa.common import paths
from disa.common.aws import Clients, Target
from disa.deploy import packaging
from disa.deploy.packaging import build_lambda_zip

pytestmark = pytest.mark.packaging


@pytest.fixture(scope="module")
def lambda_zip() -> bytes:
    return build_lambda_zip(log=lambda _: None)


def test_zip_holds_the_code_its_contracts_and_runtime_dependencies(lambda_zip):
    names = zipfile.ZipFile(io.BytesIO(lambda_zip)).namelist()
    assert {f"disa_lambda/contracts/{name}.schema.json" for name in contracts.names()} <= set(names)
    for expected in (
        "disa_lambda/handlers/trigger.py",
        "disa_lambda/handlers/retry.py",
        "aws_lambda_powertools/__init__.py",
        "fastjsonschema/__init__.py",
    ):
        assert expected in names


def test_zip_leaves_out_tests_caches_dev_tools_and_the_runtime_sdk(lambda_zip):
    names = zipfile.ZipFile(io.BytesIO(lambda_zip)).namelist()
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.split("/")[0] in ("tests", "boto3", "botocore", "moto", "pytest", "cfnlint")]
    assert not [n for n in names if n.endswith((".so", ".pyd"))], "native code would tie the zip to one platform"
    assert len(lambda_zip) < 10 * 1024 * 1024


def test_zip_is_byte_identical_when_nothing_changed(lambda_zip):
    assert build_lambda_zip(log=lambda _: None) == lambda_zip


def test_handlers_import_from_the_zip_alone(lambda_zip, tmp_path):
    zipfile.ZipFile(io.BytesIO(lambda_zip)).extractall(tmp_path)
    sdk = str(Path(boto3.__file__).parent.parent)  # stands in for the runtime's own boto3
    probe = (
        "import sys; sys.path[:] = [sys.argv[1], sys.argv[2]] + [p for p in sys.path if 'site-packages' not in p];"
        "import disa_lambda.handlers.trigger, disa_lambda.handlers.retry, aws_lambda_powertools, fastjsonschema;"
        "assert aws_lambda_powertools.__file__.startswith(sys.argv[1]), aws_lambda_powertools.__file__;"
        # Contracts compile on first use: build one execution input from the zip's own files.
        "import random; from disa_lambda.logic import attempts;"
        "from disa_lambda.models.settings import TriggerSettings as S;"
        "s = S('t', 'arn', False, 3, 300, 60, 600, 4, 'b', '123456789012', frozenset(), 262144, 2**31, 'g', 'release',"
        " '', '', 0, 'Disa', 'disa');"
        "k = {'id': {'S': 'k'}};"
        "c = attempts.plan_claim(k, 1, 0, s, random.Random(1));"
        "p = attempts.publish_parameters(k, {'message': {'S': 'm'}}, False, '2026-01-01T00:00:00.000Z');"
        "attempts.execution_input(k, c, p);"
        "print('ok')"
    )
    result = subprocess.run([sys.executable, "-I", "-c", probe, str(tmp_path), sdk], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


def test_a_consumer_zip_holds_the_consumers_code_at_its_root_beside_the_helper():

    names = set(zipfile.ZipFile(io.BytesIO(build_lambda_zip(lambda _: None, paths.SAMPLE_CONSUMER))).namelist())
    assert {"orders.py", "disa_lambda/consumer/consumer.py", "aws_lambda_powertools/__init__.py"} <= names


def test_every_call_to_the_artifact_bucket_names_its_expected_owner(moto_endpoint):
    """The default bucket name is predictable: a bucket of that name in another account must
    answer 403 to every call (AWS checks ExpectedBucketOwner), not take the Lambda code."""
    clients = Clients(Target(region="us-east-1", endpoint_url=moto_endpoint))
    calls: list[tuple[str, dict]] = []
    clients("s3").meta.events.register(
        "provide-client-params.s3.*", lambda params, model, **_: calls.append((model.name, dict(params)))
    )
    packaging.package(clients, "disa-artifacts-owned", log=lambda _: None)
    packaging.package(clients, "disa-artifacts-owned", log=lambda _: None)  # the bucket exists now

    owner = clients.account_id()
    named = [(operation, params) for operation, params in calls if params.get("Bucket") == "disa-artifacts-owned"]
    assert {operation for operation, _ in named} >= {"HeadBucket", "CreateBucket", "HeadObject", "PutObject"}
    unowned = [operation for operation, params in named if params.get("ExpectedBucketOwner") != owner]
    assert unowned == ["CreateBucket"]  # the one call that cannot name an owner: it makes the bucket
