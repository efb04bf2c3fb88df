"""The project's CloudFormation templates and ASL, parsed, for tests to build from."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from disa.deploy.packaging import load_template

ROOT = Path(__file__).resolve().parents[2]
NESTED = ROOT / "cft" / "nested-stacks"
ASL_PATH = ROOT / "state-machine" / "publisher.asl.json"


@cache
def _template(name: str) -> dict[str, Any]:
    path = ROOT / "cft" / "root-stack.yaml" if name == "root-stack" else NESTED / f"{name}.yaml"
    return load_template(path)


def template(name: str) -> dict[str, Any]:
    return json.loads(json.dumps(_template(name)))


def resources(name: str, resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template(name)["Resources"].items() if v["Type"] == resource_type}


def asl_text() -> str:
    return ASL_PATH.read_text(encoding="utf-8")


def all_template_paths() -> list[Path]:
    return [ROOT / "cft" / "root-stack.yaml", *sorted(NESTED.glob("*.yaml"))]
