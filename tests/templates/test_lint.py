"""cfn-lint and checkov on every template: zero findings, every suppression with a reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.templates import ROOT, all_template_paths, template, template_names

pytestmark = pytest.mark.templates
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"


def test_cfn_lint_reports_nothing():
    benchmarks = sorted((ROOT / "benchmarks").glob("*.yaml"))  # `disa bench`'s local-cloud stacks
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--", *map(str, [*all_template_paths(), *benchmarks])],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_fails_no_check():
    assert CHECKOV.exists(), "scripts/setup installs checkov into .tools/checkov"
    result = subprocess.run(
        [str(CHECKOV), "-d", str(ROOT / "cft"), "--framework", "cloudformation", "--skip-download", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [(c["check_id"], c["resource"], c["file_path"]) for r in reports for c in r["results"]["failed_checks"]]
    assert failed == []
    assert sum(r["summary"]["passed"] for r in reports) > 40, "checkov scanned the templates"
    skipped = {(c["check_id"], c["resource"].split(".")[-1]) for r in reports for c in r["results"]["skipped_checks"]}
    written = {
        (skip["id"], logical_id)
        for name in template_names()
        for logical_id, resource in template(name)["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    }
    assert skipped == written, "checkov skips exactly the suppressions written in the templates"


@pytest.mark.parametrize("name", template_names())
def test_every_scanner_suppression_has_a_reason(name):
    for logical_id, resource in template(name)["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) > 30, f"{name}/{logical_id} skips {skip['id']} without a reason"


def test_cfn_lint_is_silenced_only_where_a_template_says_why():
    # Each ignore is explained in a comment beside it; a new one belongs in this list too.
    ignored = {
        (name, logical_id): set(resource["Metadata"]["cfn-lint"]["config"]["ignore_checks"])
        for name in template_names()
        for logical_id, resource in template(name)["Resources"].items()
        if "cfn-lint" in resource.get("Metadata", {})
    }
    # The consumer exists only with a handler, and a rule then requires its bucket and key.
    assert ignored == {("subscriber-stack", "ConsumerFunction"): {"W1030"}}
