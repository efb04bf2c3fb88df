"""The JSON Schema contracts at Disa's boundaries, loaded by the code and the tests alike."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

CONTRACTS_DIR = Path(__file__).parent


@cache
def load(name: str) -> dict:
    """Return the parsed contract ``<name>.schema.json``."""
    return json.loads((CONTRACTS_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
