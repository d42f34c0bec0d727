from __future__ import annotations

import pytest

from policies import WindowCounts, evaluate_window, wilson_interval
from policies.model import WindowRule


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (8, 10, 0.4902, 0.9433),  # textbook example
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (50, 100, 0.4038, 0.5962),
        (95, 100, 0.8883, 0.9785),
    ],
)
def test_wilson_matches_known_values(successes: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(successes, n, 0.95)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_wilson_at_99_percent_is_wider() -> None:
    # z = 2.5758: centre 0.6803, half-width 0.2795 (worked by hand)
    assert wilson_interval(8, 10, 0.99) == pytest.approx((0.4008, 0.9599), abs=1e-4)


PASS_RATE = WindowRule(name="pass-rate", metric="pass_rate", threshold=0.8, window=100, min_sample=20)
ERRORS = WindowRule(name="errors", metric="error_rate", threshold=0.05, window=200, min_sample=30)


def test_a_small_sample_is_inconclusive_even_when_perfect() -> None:
    verdict = evaluate_window(PASS_RATE, WindowCounts(n=19, successes=19))
    assert verdict.status == "inconclusive"
    assert verdict.reason == "19 runs, fewer than the minimum sample 20"


@pytest.mark.parametrize(
    ("n", "successes", "status"),
    [
        (20, 20, "pass"),  # lower bound 0.839 >= 0.8
        (20, 17, "inconclusive"),  # 0.85 observed, interval straddles 0.8
        (20, 10, "breach"),  # upper bound 0.70 < 0.8
        (100, 88, "pass"),
        (100, 80, "inconclusive"),
    ],
)
def test_pass_rate_gate(n: int, successes: int, status: str) -> None:
    assert evaluate_window(PASS_RATE, WindowCounts(n=n, successes=successes)).status == status


def test_an_error_rate_breaches_only_when_clearly_above() -> None:
    assert evaluate_window(ERRORS, WindowCounts(n=30, successes=0)).status == "inconclusive"
    assert evaluate_window(ERRORS, WindowCounts(n=100, successes=0)).status == "pass"
    breach = evaluate_window(ERRORS, WindowCounts(n=40, successes=8))
    assert breach.status == "breach"
    assert breach.low is not None
    assert breach.low > 0.05
    assert "error_rate 0.200 over 40 runs" in breach.reason


def test_mean_score_uses_a_normal_interval() -> None:
    rule = WindowRule(
        name="conf", metric="mean_score", score="confidence", statistic="normal",
        threshold=0.9, window=100, min_sample=10,
    )  # fmt: skip
    steady = [0.95] * 50
    counts = WindowCounts(n=50, total=sum(steady), total_sq=sum(x * x for x in steady))
    assert evaluate_window(rule, counts).status == "pass"
    low = [0.5, 0.6] * 25
    counts = WindowCounts(n=50, total=sum(low), total_sq=sum(x * x for x in low))
    assert evaluate_window(rule, counts).status == "breach"
