"""Quality statistics: per-run checks and windowed rules, as pure functions over counts.

A window smaller than the rule's minimum sample is inconclusive, never a pass.
Rates use the Wilson score interval; mean scores a normal interval. A rule
passes when the whole interval is on the good side of the threshold, breaches
when the whole interval is on the bad side, and is inconclusive otherwise, so a
handful of runs neither passes nor trips a gate by chance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from policies.model import Policy, ScoreCheck, WindowRule

Status = Literal["pass", "breach", "inconclusive"]


def z_for(confidence: float) -> float:
    """Two-sided normal quantile, e.g. 1.95996 for 0.95."""
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} must lie between 0 and n={n}")
    z = z_for(confidence)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = (z / denom) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


class WindowCounts(BaseModel):
    """What a rollout keeps per rule: runs seen, and successes or score sums."""

    model_config = ConfigDict(frozen=True)

    n: int = Field(default=0, ge=0)
    successes: int = Field(default=0, ge=0, description="For rates: runs that count as a hit.")
    total: float = Field(default=0.0, description="For mean_score: sum of scores.")
    total_sq: float = Field(default=0.0, description="For mean_score: sum of squared scores.")


class WindowVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule: str
    metric: str
    status: Status
    n: int
    estimate: float | None
    low: float | None
    high: float | None
    threshold: float
    reason: str


def _judge(low: float, high: float, threshold: float, higher_is_better: bool) -> Status:
    if higher_is_better:
        if low >= threshold:
            return "pass"
        if high < threshold:
            return "breach"
    else:
        if high <= threshold:
            return "pass"
        if low > threshold:
            return "breach"
    return "inconclusive"


def evaluate_window(rule: WindowRule, counts: WindowCounts) -> WindowVerdict:
    """Pass, breach or inconclusive for one windowed rule."""
    side = "at least" if rule.higher_is_better else "at most"
    if counts.n < rule.min_sample:
        return WindowVerdict(
            rule=rule.name,
            metric=rule.metric,
            status="inconclusive",
            n=counts.n,
            estimate=None,
            low=None,
            high=None,
            threshold=rule.threshold,
            reason=f"{counts.n} runs, fewer than the minimum sample {rule.min_sample}",
        )
    if rule.metric == "mean_score":
        mean = counts.total / counts.n
        var = max(0.0, (counts.total_sq - counts.n * mean * mean) / max(1, counts.n - 1))
        half = z_for(rule.confidence) * math.sqrt(var / counts.n)
        estimate, low, high = mean, mean - half, mean + half
    else:
        estimate = counts.successes / counts.n
        low, high = wilson_interval(counts.successes, counts.n, rule.confidence)
    status = _judge(low, high, rule.threshold, rule.higher_is_better)
    return WindowVerdict(
        rule=rule.name,
        metric=rule.metric,
        status=status,
        n=counts.n,
        estimate=estimate,
        low=low,
        high=high,
        threshold=rule.threshold,
        reason=(
            f"{rule.metric} {estimate:.3f} over {counts.n} runs, "
            f"{rule.confidence:.0%} interval [{low:.3f}, {high:.3f}], needs {side} {rule.threshold}"
        ),
    )


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    check: str
    passed: bool
    reason: str


def run_check(check: ScoreCheck, scores: Mapping[str, float]) -> CheckResult:
    if check.score not in scores:
        return CheckResult(check=check.name, passed=False, reason=f"score {check.score!r} is missing")
    value = scores[check.score]
    if check.min is not None and value < check.min:
        return CheckResult(check=check.name, passed=False, reason=f"{check.score} {value} is below {check.min}")
    if check.max is not None and value > check.max:
        return CheckResult(check=check.name, passed=False, reason=f"{check.score} {value} is above {check.max}")
    return CheckResult(check=check.name, passed=True, reason=f"{check.score} {value} is within bounds")


def run_checks(policy: Policy, scores: Mapping[str, float]) -> list[CheckResult]:
    """Every per-run check of the policy against one run's scores."""
    return [run_check(c, scores) for c in policy.quality.checks]
