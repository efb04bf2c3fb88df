"""Time in the two forms the item carries: epoch seconds (index keys) and ISO-8601 (people)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now() -> float:
    return time.time()


def epoch(iso_text: str) -> float:
    """The inverse of ``iso``."""
    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()
