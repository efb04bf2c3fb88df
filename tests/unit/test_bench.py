"""`disa bench`'s pure parts: percentiles, the steady mode's schedule, and the report's
verdicts against the targets (never an assertion on the figures themselves)."""

from __future__ import annotations

import math

import pytest

from disa import cli
from disa.drills.bench import Mode, Result, Run, fifo_position, paced, percentile, report

pytestmark = pytest.mark.unit


def test_percentiles_are_nearest_rank_and_undefined_without_values():
    values = list(range(100, 0, -1))  # 1..100, unordered
    assert [percentile(values, p) for p in (50, 95, 99, 100)] == [50, 95, 99, 100]
    assert percentile([7], 99) == 7
    assert math.isnan(percentile([], 50))


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


def test_steady_pacing_yields_the_nth_item_at_n_over_the_rate():
    clock = FakeClock()
    times = [clock() - 100 for _ in paced(range(5), rate=20, clock=clock, sleep=clock.sleep)]
    assert times == pytest.approx([0.0, 0.05, 0.10, 0.15, 0.20])


def test_steady_pacing_keeps_its_schedule_after_a_slow_caller_instead_of_lowering_the_rate():
    clock = FakeClock()
    times = []
    for n in paced(range(6), rate=10, clock=clock, sleep=clock.sleep):
        times.append(round(clock() - 100, 3))
        if n == 0:
            clock.now += 0.25  # the first insert took 250 ms
    assert times == [0.0, 0.25, 0.25, 0.3, 0.4, 0.5], "late items go at once, then the schedule resumes"


def run(name: str, items_per_second: float, latencies_ms: list[float], unfinished: int = 0) -> Run:
    items = len(latencies_ms)
    return Run(name, items, items / items_per_second, latencies_ms, unfinished, (items - 1) / items_per_second)


def burst(disa_rate: float, disa_unfinished: int = 0) -> Result:
    runs = [
        run("disa", disa_rate, [100.0] * 20, disa_unfinished),
        run("ceiling", 100, [50.0] * 20),
        run("seed", 40, [300.0] * 20),
    ]
    return Result(Mode.burst(), 20, runs)


def steady(rate: float, disa_p95: float) -> Result:
    disa_latencies = [100.0] * 18 + [disa_p95] * 2  # the 95th percentile of 20 is the 19th
    runs = [run("disa", rate, disa_latencies), run("ceiling", rate, [80.0] * 20), run("seed", rate, [200.0] * 20)]
    return Result(Mode.steady(rate), 20, runs)


def test_burst_report_has_one_row_per_stack_and_judges_disa_against_the_ceiling():
    text = report([burst(disa_rate=95)])
    header, *rows = text.splitlines()[1:5]
    assert header.split() == ["stack", "items", "seconds", "items/s", "p50", "ms", "p95", "ms", "p99", "ms"]
    assert [r.split()[0] for r in rows] == ["disa", "ceiling", "seed"]
    assert rows[0].split()[1:4] == ["20", "0.2", "95.0"]
    assert "Disa throughput is 0.95 of the ceiling (target >= 0.90): met" in text
    assert "Seed baseline throughput is 0.40 of the ceiling" in text
    assert "Disa throughput is 0.50 of the ceiling (target >= 0.90): not met" in report([burst(disa_rate=50)])


def test_unfinished_items_miss_the_target_and_are_named():
    text = report([burst(disa_rate=95, disa_unfinished=3)])
    assert text.splitlines()[-3].endswith(": not met")
    assert "warning: 3 disa items did not finish within the timeout" in text
    assert not burst(95, 3).finished and burst(95).finished


def test_steady_report_judges_disa_p95_at_the_target_rate_only():
    assert "Disa p95 at 20 items/s is 900 ms (target <= 1000 ms at 20 items/s): met" in report([steady(20, 900)])
    assert "Disa p95 at 20 items/s is 1200 ms (target <= 1000 ms at 20 items/s): not met" in report([steady(20, 1200)])
    at_50 = report([steady(50, 900)])
    assert "Disa p95 at 50 items/s is 900 ms" in at_50 and "not judged at this rate" in at_50
    assert "throughput" not in report([steady(20, 900)])


def test_both_modes_print_one_block_each():
    text = report([burst(95), steady(20, 900)])
    assert text.count("\n\n") == 1
    assert text.startswith("burst: 20 items per stack, inserted as fast as possible")
    assert "\n\nsteady: 20 items per stack, inserted at 20 items/s" in text


def test_steady_report_warns_when_inserts_fell_behind_the_schedule():
    result = steady(20, 900)
    result.runs[2].insert_seconds = 2.0  # 19 gaps in 2 s: 9.5 items/s, not 20
    assert "warning: seed's inserts fell behind the schedule (9.5 items/s)" in report([result])


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--mode", "burst", "--rate", "20"], "--rate applies to steady mode"),
        (["--rate", "0"], "--rate must be above 0"),
        (["--items", "0"], "--items must be at least 1"),
        (["--groups", "5"], "--groups applies to a FIFO run; add --fifo"),
        (["--fifo", "--groups", "0"], "--groups must be at least 1"),
        (["--fifo", "--rate", "20"], "--fifo measures burst mode only"),
        (["--fifo", "--recovery", "10"], "--fifo measures burst mode only"),
    ],
)
def test_bench_mistakes_are_one_line_before_any_engine_starts(capsys, args, expected):
    assert cli.main(["bench", *args]) != 0
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1


def test_a_fifo_batch_is_dealt_round_robin_each_group_numbered_from_1_without_gaps():
    positions = [fifo_position("b1", n, groups=10) for n in range(25)]
    by_group: dict[str, list[int]] = {}
    for position in positions:
        by_group.setdefault(position.group, []).append(position.sequence)

    assert len(by_group) == 10 and all(group.startswith("b1-") for group in by_group)
    assert sorted(len(numbers) for numbers in by_group.values()) == [2] * 5 + [3] * 5
    assert all(numbers == list(range(1, len(numbers) + 1)) for numbers in by_group.values())
    assert fifo_position("b2", 0, 10).group != positions[0].group, "another batch, other groups"


def test_fifo_burst_report_puts_both_topics_in_one_table_with_their_ratio():
    fifo = run("disa-fifo", 30, [400.0] * 20)
    fifo.groups = 10
    text = report([Result(Mode.burst(), 20, [run("disa", 120, [100.0] * 20), fifo])])

    rows = text.splitlines()[2:4]
    assert [r.split()[0] for r in rows] == ["disa", "disa-fifo"]
    assert "Disa on a FIFO topic (10 message groups) has 0.25 of the throughput of Disa on a standard topic" in text
    assert "ceiling" not in text and "Seed" not in text
