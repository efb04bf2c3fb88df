"""Progress goes to stderr, results to stdout, so `disa` output can be piped; tables are
laid out by tabulate."""

from __future__ import annotations

import sys
from typing import Any, Sequence

from tabulate import tabulate


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(
    rows: Sequence[Any], headers: Sequence[str] | str = (), indent: int = 0, right_aligned_from: int | None = None
) -> str:
    """Rows (sequences, or dicts with ``headers="keys"``) as aligned plain-text columns,
    values shown exactly as given: a key that looks like a number stays as written.
    Columns from ``right_aligned_from`` on are right-aligned (figures)."""
    width = max((len(row) for row in rows), default=0)
    align = None
    if right_aligned_from is not None:
        align = ["left"] * right_aligned_from + ["right"] * (width - right_aligned_from)
    text = tabulate(rows, headers=headers, tablefmt="plain", disable_numparse=True, colalign=align)
    return "\n".join(" " * indent + line for line in text.splitlines())
