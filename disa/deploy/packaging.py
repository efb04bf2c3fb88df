"""`disa package`: builds the Lambda zip and uploads it, the templates and the ASL under
content-hashed keys, and returns the root template URL with the artifact parameters that
point the nested stacks at them. Unchanged content keeps its keys, so `disa deploy` of an
unchanged project reports no changes."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from botocore.exceptions import ClientError
from cfnlint.decode import decode_str

from disa.common import paths
from disa.common.aws import Clients
from disa.common.console import progress
from disa.common.errors import UserError

# Vendored dependencies are pure Python; asking pip for this platform makes a native
# wheel fail the build instead of landing in a zip it cannot run on.
LAMBDA_PLATFORM = ["--platform", "manylinux2014_aarch64", "--python-version", "3.12", "--implementation", "cp"]
_EXCLUDED_PARTS = {"__pycache__", "tests", "test"}
_EXCLUDED_SUFFIXES = {".pyc", ".pyo"}
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Packaged:
    template_url: str
    parameters: dict[str, str]
    template_parameters: frozenset[str]
    artifact_prefix: str = ""


def build_lambda_zip(log: Callable[[str], None] = progress, consumer_code: Path | None = None) -> bytes:
    """The deployment zip: disa_lambda plus vendored runtime dependencies, byte-identical
    for identical inputs (sorted entries, fixed timestamps). A subscriber's consumer zip
    adds the files of ``consumer_code`` at its root, so its handler imports the consumer
    helper (disa_lambda.consumer) and Powertools from the same zip."""
    deps = _vendored_dependencies(log)
    sources: list[tuple[Path, str]] = [(deps, ""), (paths.LAMBDA_SOURCE, "disa_lambda/")]
    if consumer_code is not None:
        sources.append((consumer_code, ""))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for base, prefix in sources:
            for path in sorted(p for p in base.rglob("*") if p.is_file()):
                relative = path.relative_to(base)
                if _EXCLUDED_PARTS & set(relative.parts) or path.suffix in _EXCLUDED_SUFFIXES:
                    continue
                info = zipfile.ZipInfo(prefix + relative.as_posix(), _FIXED_ZIP_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def _vendored_dependencies(log: Callable[[str], None]) -> Path:
    requirements = paths.LAMBDA_REQUIREMENTS.read_bytes()
    target = paths.BUILD_DIR / "lambda-deps" / hashlib.sha256(requirements).hexdigest()[:16]
    if target.exists():
        return target
    log("installing Lambda dependencies (once per requirements/lambda.txt)")
    staging = target.with_suffix(".partial")
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--only-binary=:all:",
        *LAMBDA_PLATFORM,
        "--target",
        str(staging),
        "-r",
        str(paths.LAMBDA_REQUIREMENTS),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"could not install Lambda dependencies: {result.stderr.strip().splitlines()[-1:]}")
    for path in list(staging.glob("*.dist-info")) + list(staging.glob("bin")):
        shutil.rmtree(path)
    staging.rename(target)
    return target


def default_bucket(clients: Clients) -> str:
    return f"disa-artifacts-{clients.account_id()}-{clients.region}"


def ensure_bucket(clients: Clients, bucket: str, log: Callable[[str], None] = progress) -> None:
    """Create the artifact bucket when missing: private, encrypted, versioned, TLS-only.
    Every call but the creation names the account expected to own it (ExpectedBucketOwner):
    the default name is predictable, and a bucket of that name in another account must never
    receive the Lambda code the stacks run."""
    s3, owner = clients("s3"), {"ExpectedBucketOwner": clients.account_id()}
    try:
        s3.head_bucket(Bucket=bucket, **owner)
        return
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code in ("403", "AccessDenied"):
            raise UserError(
                f"artifact bucket {bucket} exists but is not yours; pass --bucket with one you own"
            ) from error
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
    tls_only = ", TLS-only" if clients.target.uses_tls else ""
    log(f"creating artifact bucket {bucket} (private, encrypted, versioned{tls_only})")
    create: dict[str, Any] = {"Bucket": bucket}
    if clients.region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": clients.region}
    s3.create_bucket(**create)
    s3.put_public_access_block(
        Bucket=bucket,
        **owner,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        **owner,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}, **owner)
    if clients.target.uses_tls:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(tls_only_policy(bucket, clients.partition())), **owner)


def tls_only_policy(bucket: str, partition: str = "aws") -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:{partition}:s3:::{bucket}", f"arn:{partition}:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def template_url(region: str, bucket: str, key: str) -> str:
    # Path-style, as the root template builds its nested URLs: AWS accepts it, and local
    # engines that cannot resolve virtual-host bucket names (ministack) accept only it.
    return f"https://s3.{region}.amazonaws.com/{bucket}/{key}"


def package(clients: Clients, bucket: str, prefix: str = "disa", log: Callable[[str], None] = progress) -> Packaged:
    """Upload cft/ and state-machine/ under a prefix named by the hash of their content,
    and the Lambda zip under a key named by its own hash."""
    ensure_bucket(clients, bucket, log)
    uploader = _Uploader(clients, bucket, log)
    zip_bytes = build_lambda_zip(log)
    paths.BUILD_DIR.mkdir(exist_ok=True)
    (paths.BUILD_DIR / "lambda.zip").write_bytes(zip_bytes)
    code_key = uploader.put(f"{prefix}/code/{hashlib.sha256(zip_bytes).hexdigest()[:20]}-lambda.zip", zip_bytes)
    tree = {
        path.relative_to(paths.ROOT).as_posix(): path.read_bytes()
        for folder in (paths.CFT_DIR, paths.STATE_MACHINE_DIR)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    digest = hashlib.sha256()
    for name, body in tree.items():
        digest.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
    artifact_prefix = f"{prefix}/{digest.hexdigest()[:20]}/"
    for name, body in tree.items():
        uploader.put(artifact_prefix + name, body)
    root_key = artifact_prefix + paths.ROOT_TEMPLATE.relative_to(paths.ROOT).as_posix()
    return Packaged(
        template_url=template_url(clients.region, bucket, root_key),
        parameters={"ArtifactBucket": bucket, "ArtifactPrefix": artifact_prefix, "CodeKey": code_key},
        template_parameters=frozenset(load_template(paths.ROOT_TEMPLATE)["Parameters"]),
        artifact_prefix=artifact_prefix,
    )


def package_subscriber(
    clients: Clients,
    bucket: str,
    consumer_code: Path | None,
    prefix: str = "disa",
    log: Callable[[str], None] = progress,
) -> Packaged:
    """The subscriber stack (cft/subscriber-stack.yaml, uploaded with the other templates)
    and, when the subscriber has a consumer, its zip: Disa's Lambda zip plus the consumer's
    code at the root, under a key named by its hash."""
    packaged = package(clients, bucket, prefix, log)
    code_key = ""
    if consumer_code is not None:
        if not consumer_code.is_dir():
            raise UserError(f"--code {consumer_code} is not a folder; give the folder holding your handler's module")
        zip_bytes = build_lambda_zip(log, consumer_code)
        code_key = _Uploader(clients, bucket, log).put(
            f"{prefix}/code/{hashlib.sha256(zip_bytes).hexdigest()[:20]}-consumer.zip", zip_bytes
        )
    subscriber_key = packaged.artifact_prefix + paths.SUBSCRIBER_TEMPLATE.relative_to(paths.ROOT).as_posix()
    return Packaged(
        template_url=template_url(clients.region, bucket, subscriber_key),
        parameters={"ArtifactBucket": bucket, "ConsumerCodeKey": code_key},
        template_parameters=frozenset(load_template(paths.SUBSCRIBER_TEMPLATE)["Parameters"]),
        artifact_prefix=packaged.artifact_prefix,
    )


def load_template(path: Path) -> dict[str, Any]:
    template, matches = decode_str(path.read_text(encoding="utf-8"))
    if matches:
        raise UserError(f"{path} is not a valid template: {matches[0]}")
    return json.loads(json.dumps(template))  # plain dicts and lists, ready to rewrite


class _Uploader:
    """Puts objects that are not there yet; keys are content-hashed, so a present key
    already holds the same bytes."""

    def __init__(self, clients: Clients, bucket: str, log: Callable[[str], None]) -> None:
        self._s3, self._bucket, self._log = clients("s3"), bucket, log
        self._owner = {"ExpectedBucketOwner": clients.account_id()}

    def put(self, key: str, body: bytes) -> str:
        try:
            self._s3.head_object(Bucket=self._bucket, Key=key, **self._owner)
            return key
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        self._log(f"uploading s3://{self._bucket}/{key} ({len(body):,} bytes)")
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, **self._owner)
        return key
