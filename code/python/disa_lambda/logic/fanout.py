"""Runs the work of a batch on a bounded pool of threads, keeping the order of the items
that share a group (the records of one item key), so a batch takes about as long as its
slowest group instead of the sum of its items.

Why threads and not Powertools' batch processors: its BatchProcessor handles records one
after another, and its AsyncBatchProcessor needs asynchronous AWS clients (boto3 is
synchronous) and keeps no order within a key.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Hashable, Sequence, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class NotStarted(Exception):
    """The item was not begun: too little of the invocation was left to finish it."""


def run_grouped(
    items: Sequence[Item],
    group_of: Callable[[Item], Hashable],
    work: Callable[[Item], Result],
    workers: int,
    may_start: Callable[[], bool],
) -> list[Result | BaseException]:
    """``work`` applied to every item; each result, or the exception it raised, at the
    item's position. Items of one group run in order on one thread; after an item of a
    group raised, the group's later items are not begun (they come back NotStarted), as
    a stream's partial batch response retries from the first failure anyway."""
    groups: dict[Hashable, list[int]] = {}
    for position, item in enumerate(items):
        groups.setdefault(group_of(item), []).append(position)
    results: list[Result | BaseException] = [NotStarted("not begun") for _ in items]

    def run_group(positions: list[int]) -> None:
        for position in positions:
            if not may_start():
                return
            try:
                results[position] = work(items[position])
            except Exception as error:  # reported per item to the caller
                results[position] = error
                return

    if not groups:
        return results
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(groups)))) as pool:
        for finished in [pool.submit(run_group, positions) for positions in groups.values()]:
            finished.result()
    return results
