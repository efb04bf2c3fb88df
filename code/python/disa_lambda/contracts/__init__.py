"""The JSON Schema contracts at Disa's boundaries, loaded by the code and the tests alike.

A contract may point at another with ``{"$ref": "<name>.schema.json"}`` (the execution
input carries the published message); ``load`` returns it with such references replaced
by the schema they name, so every validator sees one self-contained document.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

CONTRACTS_DIR = Path(__file__).parent
_SUFFIX = ".schema.json"


def _inline(node: Any) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.endswith(_SUFFIX) and "/" not in ref:
            referenced = copy.deepcopy(load(ref.removesuffix(_SUFFIX)))
            referenced.pop("$schema", None)
            referenced.pop("$id", None)  # inlined, it no longer has an address of its own
            return referenced
        return {key: _inline(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(value) for value in node]
    return node


@cache
def load(name: str) -> dict[str, Any]:
    """Return the parsed contract ``<name>.schema.json``, other contracts it references inlined
    (a referenced contract must not use ``#/`` references of its own: they would resolve
    against the document it is inlined into)."""
    return _inline(json.loads((CONTRACTS_DIR / f"{name}{_SUFFIX}").read_text(encoding="utf-8")))


def names() -> list[str]:
    """Every contract in the folder."""
    return sorted(path.name.removesuffix(_SUFFIX) for path in CONTRACTS_DIR.glob(f"*{_SUFFIX}"))
