from __future__ import annotations

import pytest

from govflow.policies import WindowCounts, evaluate_window, wilson_interval
from govflow.policies.gates import WindowRule


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


PASS_RATE = WindowRule(name="pass-rate", metric="pass_rate", threshold=0.8, window=100, min_sample=20, method="window")
ERRORS = WindowRule(name="errors", metric="error_rate", threshold=0.05, window=200, min_sample=30, method="window")


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


# --- method cusum -------------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from govflow.policies.stats import (  # noqa: E402
    confidence_sequence,
    cusum_limit,
    evaluate_sequential,
    expected_delay,
    observe,
    promise,
)


@st.composite
def rate_rules(draw: st.DrawFn) -> WindowRule:
    metric = draw(st.sampled_from(["pass_rate", "override_rate", "error_rate"]))
    threshold = draw(st.floats(0.1, 0.9))
    margin = draw(st.floats(0.01, min(0.09, threshold - 0.005) if metric != "pass_rate" else 0.09))
    drop = draw(st.floats(0.02, 0.09))
    return WindowRule(
        name="r", metric=metric, threshold=threshold, margin=margin, drop=drop, window=100, min_sample=20,
        false_pauses={"at_most": draw(st.floats(0.001, 0.2)), "per_runs": draw(st.integers(100, 100_000))},
    )  # fmt: skip


def _good(rule: WindowRule) -> float:
    """A run that is good for the rule: a pass for pass_rate, no hit for the others."""
    return 1.0 if rule.higher_is_better else 0.0


def _stream(rule: WindowRule, good: list[bool]) -> list[float]:
    g = _good(rule)
    return [g if ok else 1.0 - g for ok in good]


def _cusums(rule: WindowRule, values: list[float]) -> list[float]:
    counts, out = WindowCounts(), []
    for v in values:
        counts = observe(rule, counts, v)
        out.append(counts.cusum)
    return out


@settings(max_examples=60, deadline=None)
@given(rule=rate_rules(), good=st.lists(st.booleans(), min_size=1, max_size=300), at=st.integers(0, 299))
def test_the_cusum_is_monotone_in_the_evidence(rule: WindowRule, good: list[bool], at: int) -> None:
    """One more bad run, anywhere, never lowers the evidence of a drop at a later run (until either
    stream reaches the limit, where the statistic latches) and never delays a pause."""
    at %= len(good)
    worse = list(good)
    worse[at] = False
    limit = cusum_limit(rule)
    pairs = zip(_cusums(rule, _stream(rule, good)), _cusums(rule, _stream(rule, worse)), strict=True)
    for before, after in pairs:
        assert (after >= limit) >= (before >= limit)
        if max(before, after) < limit:
            assert after >= before - 1e-12


@settings(max_examples=40, deadline=None)
@given(rule=rate_rules(), n=st.integers(1, 3000))
def test_an_all_good_stream_never_pauses(rule: WindowRule, n: int) -> None:
    counts = WindowCounts()
    for _ in range(n):
        counts = observe(rule, counts, _good(rule))
    assert counts.cusum == 0.0
    assert evaluate_sequential(rule, counts).status != "breach"


@settings(max_examples=60, deadline=None)
@given(rule=rate_rules())
def test_an_all_bad_stream_pauses_within_the_stated_delay(rule: WindowRule) -> None:
    counts, runs = WindowCounts(), 0
    while evaluate_sequential(rule, counts).status != "breach":
        counts = observe(rule, counts, 1.0 - _good(rule))
        runs += 1
        assert runs <= expected_delay(rule), f"{runs} bad runs and no pause: {promise(rule)}"
    assert counts.cusum >= cusum_limit(rule)


@settings(max_examples=60, deadline=None)
@given(rule=rate_rules(), n=st.integers(1, 2000), share=st.floats(0.0, 1.0))
def test_the_anytime_bound_holds_the_estimate_and_narrows_with_more_runs(
    rule: WindowRule, n: int, share: float
) -> None:
    hits = round(share * n)
    low, high = confidence_sequence(rule, n, hits / n, hits)
    assert 0.0 <= low <= hits / n <= high <= 1.0
    low4, high4 = confidence_sequence(rule, 4 * n, hits / n, 4 * hits)
    assert high4 - low4 <= high - low + 1e-9


def test_a_promotion_needs_the_minimum_sample_and_a_bound_past_the_threshold() -> None:
    rule = WindowRule(name="p", metric="pass_rate", threshold=0.8, window=100, min_sample=20)
    counts = WindowCounts()
    statuses = []
    for _ in range(40):
        counts = observe(rule, counts, 1.0)
        statuses.append(evaluate_sequential(rule, counts).status)
    first = statuses.index("pass") + 1
    assert 35 <= first <= 40  # 37 clean runs at 1 % wrong-promotion risk (a window passes 0.8 after ~16)
    assert "evidence of a drop: 0.0 of the" in evaluate_sequential(rule, counts).reason


def test_the_promise_is_stated_in_numbers() -> None:
    rule = WindowRule(name="p", metric="pass_rate", threshold=0.8, window=100, min_sample=20)
    text = promise(rule)
    assert text.startswith("false pauses at most 1.00% per 10,000 runs while pass_rate is 0.85 or better")
    assert "a fall to 0.7 is caught within about" in text
    assert cusum_limit(rule) == pytest.approx(11.73, abs=0.01)


def test_a_mean_score_rule_pauses_on_low_scores_and_not_on_good_ones() -> None:
    rule = WindowRule(
        name="conf", metric="mean_score", score="confidence", statistic="normal", threshold=0.8, window=100,
        min_sample=10,
    )  # fmt: skip
    good = WindowCounts()
    for i in range(5000):
        good = observe(rule, good, 0.85 + 0.1 * ((i % 3) - 1))  # mean 0.85: the fine level
    assert evaluate_sequential(rule, good).status != "breach"
    bad, runs = WindowCounts(), 0
    while evaluate_sequential(rule, bad).status != "breach":
        bad = observe(rule, bad, 0.5)
        runs += 1
    assert runs <= expected_delay(rule)
