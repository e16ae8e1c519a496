"""The sell-out's fairness figure: the share of units the first N attempts by send time got."""

from __future__ import annotations

from bench.report import fairness_table
from bench.scenarios import Attempt, Result, fairness


def test_strictly_first_come_is_fair_and_reversed_is_not() -> None:
    in_order = [Attempt(sent=n, wait_ms=10 + n, status=201 if n < 3 else 409) for n in range(10)]
    figures = fairness(in_order, units=3)
    assert figures["fairness"] == 1.0
    assert figures["random_draw_fairness"] == 0.3
    assert figures["winner_wait_ms"] == {"min": 10, "p50": 11, "p90": 12, "max": 12}
    assert figures["loser_wait_ms"]["max"] == 19
    reversed_order = [Attempt(sent=n, wait_ms=1, status=201 if n >= 7 else 409) for n in range(10)]
    assert fairness(reversed_order, units=3)["fairness"] == 0.0
    one_of_three = [
        Attempt(sent=n, wait_ms=1, status=201 if n in (0, 5, 6) else 409) for n in range(10)
    ]
    assert fairness(one_of_three, units=3)["fairness"] == 0.333


def test_fairness_table_lists_each_strategy() -> None:
    result = Result("sell-out", "atomic")
    result.details.update(fairness([Attempt(0, 5, 201), Attempt(1, 7, 409)], units=1))
    text = fairness_table([result, Result("hot-hold", "atomic")])
    assert "| atomic" in text
    assert "1.000" in text and "0.500" in text
    assert fairness_table([Result("hot-hold", "atomic")]) == ""
