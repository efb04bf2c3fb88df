"""The thread fan-out a batch runs on: order within a group, concurrency across groups."""

from __future__ import annotations

import threading

import pytest
from disa_lambda.logic import fanout

pytestmark = pytest.mark.unit


def test_items_of_one_group_run_in_order_and_groups_run_at_the_same_time():
    both_groups_running = threading.Barrier(2, timeout=10)
    seen: list[str] = []

    def work(item: tuple[str, int]) -> str:
        group, n = item
        if n == 0:
            both_groups_running.wait()  # raises BrokenBarrierError unless the other group runs too
        seen.append(f"{group}{n}")
        return f"{group}{n} done"

    items = [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2)]
    results = fanout.run_grouped(items, group_of=lambda i: i[0], work=work, workers=4, may_start=lambda: True)

    assert results == ["a0 done", "b0 done", "a1 done", "b1 done", "a2 done"], "each result at its item's place"
    assert [s for s in seen if s[0] == "a"] == ["a0", "a1", "a2"]
    assert [s for s in seen if s[0] == "b"] == ["b0", "b1"]


def test_a_failing_item_stops_its_group_only():
    def work(item: str) -> str:
        if item == "a1":
            raise ValueError("a1 is bad")
        return item

    results = fanout.run_grouped(
        ["a0", "a1", "b0", "a2", "b1"], lambda i: i[0], work, workers=2, may_start=lambda: True
    )

    assert results[0] == "a0" and isinstance(results[1], ValueError)
    assert isinstance(results[3], fanout.NotStarted), "after a failure its group's later items wait for the retry"
    assert (results[2], results[4]) == ("b0", "b1")


def test_nothing_is_begun_once_time_is_short():
    budget = iter([True, False, False, False])
    results = fanout.run_grouped(["x", "y", "z"], lambda i: i, str.upper, workers=1, may_start=lambda: next(budget))
    assert results[0] == "X" and all(isinstance(r, fanout.NotStarted) for r in results[1:])


def test_an_empty_batch_has_no_results():
    assert fanout.run_grouped([], lambda i: i, str.upper, workers=8, may_start=lambda: True) == []
