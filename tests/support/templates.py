"""The project's CloudFormation templates and ASL, parsed, for tests to build from."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from disa.deploy.packaging import load_template

ROOT = Path(__file__).resolve().parents[2]
CFT = ROOT / "cft"
NESTED = CFT / "nested-stacks"
ASL_PATH = ROOT / "state-machine" / "publisher.asl.json"


@cache
def _template(name: str) -> dict[str, Any]:
    # Standalone stacks (the root stack, the subscriber stack) sit in cft/, nested ones below it.
    path = CFT / f"{name}.yaml"
    return load_template(path if path.exists() else NESTED / f"{name}.yaml")


def template(name: str) -> dict[str, Any]:
    return json.loads(json.dumps(_template(name)))


def resources(name: str, resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template(name)["Resources"].items() if v["Type"] == resource_type}


def asl_text() -> str:
    return ASL_PATH.read_text(encoding="utf-8")


def all_template_paths() -> list[Path]:
    return [*sorted(CFT.glob("*.yaml")), *sorted(NESTED.glob("*.yaml"))]


def template_names() -> list[str]:
    """Every template, by the name template() takes."""
    return [path.stem for path in all_template_paths()]


class Evaluator:
    """A template's intrinsic functions evaluated as CloudFormation would for given parameter
    values (the rest take their defaults); `attributes` stands in for what only a deployment
    knows: a resource's Ref ("Queue") and GetAtt ("Queue.QueueName"), and pseudo parameters."""

    NO_VALUE = object()

    def __init__(self, name: str, parameters: dict[str, str], attributes: dict[str, str]) -> None:
        self.template = template(name)
        defaults = {k: str(v["Default"]) for k, v in self.template["Parameters"].items() if "Default" in v}
        self.values = {**defaults, **parameters, **attributes}

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def rule_failures(self) -> list[str]:
        """The AssertDescription of every rule assertion that refuses these parameters."""
        failures = []
        for rule in self.template.get("Rules", {}).values():
            if "RuleCondition" not in rule or self.resolve(rule["RuleCondition"]):
                failures += [a["AssertDescription"] for a in rule["Assertions"] if not self.resolve(a["Assert"])]
        return failures

    def resolve(self, node: Any) -> Any:  # noqa: C901 - one branch per intrinsic function
        if isinstance(node, list):
            return [v for v in map(self.resolve, node) if v is not self.NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) != 1 or not next(iter(node)).startswith(("Fn::", "Ref", "Condition")):
            return {k: r for k, v in node.items() if (r := self.resolve(v)) is not self.NO_VALUE}
        [(function, args)] = node.items()
        if function == "Ref":
            if args == "AWS::NoValue":
                return self.NO_VALUE
            value, parameter = self.values[args], self.template["Parameters"].get(args, {})
            if parameter.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                return [member.strip() for member in value.split(",")]
            return value
        if function == "Fn::Select":
            index, values = self.resolve(args)
            return values[int(index)]  # out of range fails, as on AWS
        if function == "Fn::GetAtt":
            return self.values[args if isinstance(args, str) else ".".join(args)]
        if function == "Fn::Sub":
            text, local = (args, {}) if isinstance(args, str) else (args[0], self.resolve(args[1]))
            return re.sub(r"\$\{([^!}][^}]*)\}", lambda m: str({**self.values, **local}[m[1]]), text)
        if function == "Fn::Join":
            return args[0].join(str(v) for v in self.resolve(args[1]))
        if function == "Fn::If":
            return self.resolve(args[1] if self.condition(args[0]) else args[2])
        if function == "Fn::FindInMap":
            mapping, first, second = self.resolve(args)
            return self.template["Mappings"][mapping][str(first)][second]
        if function == "Fn::Equals":
            left, right = self.resolve(args)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not self.resolve(args[0])
        if function == "Fn::And":
            return all(self.resolve(args))
        if function == "Fn::Or":
            return any(self.resolve(args))
        if function == "Condition":
            return self.condition(args)
        raise NotImplementedError(function)


# CloudWatch dashboard bodies (the subscriber stack's and the pipeline's dashboard.yaml).
DASHBOARD_SCHEMA = json.loads((ROOT / "tests" / "support" / "dashboard-body.schema.json").read_text())


def dashboard_metric_rows(dashboard: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...], dict[str, Any]]]:
    """Each metric row of every widget as (namespace, metric name, (dimension name, value, ...),
    rendering properties); expression rows ([{"expression": ...}]) are dashboard_expressions'."""
    rows = []
    for widget in dashboard["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if len(row) == 1 and isinstance(row[0], dict):
                continue
            *names, rendering = row if isinstance(row[-1], dict) else [*row, {}]
            assert len(names) % 2 == 0, f"{row}: namespace, metric name, then dimension name/value pairs"
            assert all(isinstance(n, str) for n in names), f"{row}: the rendering properties come last"
            rows.append((names[0], names[1], tuple(names[2:]), rendering))
    return rows


def dashboard_expressions(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The rendering properties of every expression row ([{"expression": ...}])."""
    return [
        row[0]
        for widget in dashboard["widgets"]
        for row in widget["properties"].get("metrics", [])
        if len(row) == 1 and isinstance(row[0], dict)
    ]


def dashboard_grid_faults(dashboard: dict[str, Any]) -> list[str]:
    """What breaks the 24-column grid: a widget past the right edge, or two on one cell."""
    faults, owners = [], {}
    for index, widget in enumerate(dashboard["widgets"]):
        name = widget["properties"].get("title", f"widget {index}")
        if widget["x"] + widget["width"] > 24:
            faults.append(f"{name} ends past column 24")
        for dx in range(widget["width"]):
            for dy in range(widget["height"]):
                cell = (widget["x"] + dx, widget["y"] + dy)
                if cell in owners and not any(f.startswith(f"{name} overlaps {owners[cell]} ") for f in faults):
                    faults.append(f"{name} overlaps {owners[cell]} at {cell}")
                owners.setdefault(cell, name)
    return faults
