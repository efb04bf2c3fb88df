"""Time in the two forms the item carries: epoch seconds (index keys) and ISO-8601 (people)."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now() -> float:
    return time.time()
