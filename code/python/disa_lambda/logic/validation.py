"""Checks an inserted item against the item contract and explains what is wrong in words
a person can act on. Every reason starts with the attribute it is about."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any, Callable, Mapping

import fastjsonschema

from disa_lambda import contracts


@cache
def _item_validator() -> Callable[[Any], Any]:
    return fastjsonschema.compile(contracts.load("item"))


def pipeline_owned_fields() -> frozenset[str]:
    return frozenset(contracts.load("item")["x-pipeline-owned"])


def known_fields() -> tuple[str, ...]:
    return tuple(contracts.load("item")["properties"])


def find_problem(body: Mapping[str, Any]) -> str | None:
    """Return why ``body`` (an item image without its key attributes) breaks the contract,
    or None when it is valid."""
    owned = sorted(set(body) & pipeline_owned_fields())
    if owned:
        return f"{_name(owned[0])}: is written by Disa, not by the inserter; insert the item without it"
    try:
        _item_validator()(dict(body))
    except fastjsonschema.JsonSchemaValueException as error:
        return _explain(error, body)
    return None


def _name(field: str) -> str:
    """A field name as a reason shows it: quoted (JSON) unless it is a plain name, so a
    name such as "a: b" cannot be mistaken for the reason's own punctuation."""
    return field if re.fullmatch(r"[A-Za-z0-9_.-]+", field) else json.dumps(field, ensure_ascii=False)


def _explain(error: fastjsonschema.JsonSchemaValueException, body: Mapping[str, Any]) -> str:
    schema = contracts.load("item")
    path = [str(part) for part in (error.path or [])][1:]  # drop the leading "data"
    if not path:
        if error.rule in ("required", "oneOf"):
            # The body comes one way: neither way is a missing message, both is ambiguous.
            given = set(body) & {"message", "messageObject"}
            return schema["x-one-of-message"] if len(given) > 1 else schema["x-missing-message"]
        unknown = sorted(set(body) - set(schema["properties"]))
        return (
            f"{_name(unknown[0])}: not an attribute Disa knows; check its spelling "
            f"(allowed besides the key: {', '.join(schema['properties'])})"
        )
    # The deepest schema node on the error's path that carries a sentence explains it best.
    node, reason = schema, None
    for part in path:
        child = node.get("properties", {}).get(part)
        if child is None and isinstance(node.get("additionalProperties"), dict):
            child = node["additionalProperties"]
        if child is None:
            break
        node = child
        reason = node.get("x-reasons", {}).get(error.rule, node.get("x-reason", reason))
    where = path[0]
    if path[0] == "attributes" and (len(path) >= 3 or error.rule == "propertyNames"):
        # The error path is a dotted string split apart, so names with dots (or empty ones)
        # come back broken: find the offending attribute by checking each one.
        where = f"attributes.{_name(_first_bad_attribute(body['attributes']['M']))}"
    return f"{where}: {reason}"


@cache
def _attribute_checks() -> tuple[re.Pattern[str], Callable[[Any], Any]]:
    entries = contracts.load("item")["properties"]["attributes"]["properties"]["M"]
    return re.compile(entries["propertyNames"]["pattern"]), fastjsonschema.compile(entries["additionalProperties"])


def _first_bad_attribute(attributes: Mapping[str, Any]) -> str:
    pattern, value_check = _attribute_checks()
    for name, value in attributes.items():
        if not pattern.search(name):
            return name
        try:
            value_check(value)
        except fastjsonschema.JsonSchemaValueException:
            return name
    return ""
