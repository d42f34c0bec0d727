"""Quality statistics: per-run checks and quality rules, as pure functions over counts.

Two methods, chosen per rule (``method:``):

``cusum`` (the default): statistics that stay valid however often they are looked at.

- *Breach*: a one-sided CUSUM of log-likelihood ratios (Page 1954; for a proportion watched run by
  run, Reynolds & Stoumbos 1999, "A CUSUM chart for monitoring a proportion when inspecting
  continuously", J. Quality Technology 31(1)). Each run adds ``log(p1/p0)`` if it is bad and
  ``log((1-p1)/(1-p0))`` if not, floored at 0; the rule breaches when the sum reaches a limit ``h``
  set from ``per_runs`` and ``at_most`` (``cusum_limit``). ``p0`` is the bad-run rate at the
  threshold plus the margin (fine), ``p1`` at the threshold minus the drop (worth catching).
  Why the limit holds: the CUSUM reaches ``h`` only if, for some start ``k``, the likelihood ratio of
  runs ``k..t`` reaches ``e^h``; at any rate at least as good as ``p0`` each such ratio is a
  nonnegative supermartingale started at 1, so by Ville's inequality it ever reaches ``e^h`` with
  probability at most ``e^-h``; a union over the starts that can lead to a pause bounds
  P(false pause within ``per_runs`` runs) by ``at_most`` (``cusum_limit`` counts those starts more
  tightly than one per run). CUSUM was chosen over a mixture SPRT or a confidence sequence for
  breaches because it forgets good history: a long good stage does not delay the pause after a drop
  (Lorden 1971: it is minimax-optimal for delay). Mean scores (in [0, 1]) use the same recursion
  with a Hoeffding increment ``l*(x - m0) - l*l/8``, ``l = 4*(m1 - m0)``: valid for any distribution
  on [0, 1], slower than a model that knew the spread.
- *Promotion*: an anytime-valid confidence sequence on the stage's whole record (Howard, Ramdas,
  McAuliffe & Sekhon 2021, "Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann.
  Statist. 49(2)). Rates: Robbins' beta-binomial mixture (uniform prior); the rates ``p`` whose mixture
  martingale stays under ``1/a`` form the interval, at every ``n`` at once with probability ``1 - a``
  (Ville), so checking after every run promotes a stage that is on the bad side with probability at most
  ``a`` (``wrong_promotions``); a clean 0.8 pass-rate gate clears after ~37 runs, a 5 % error-rate gate
  after ~190 clean runs. Mean scores in [0, 1]: the normal mixture for 1/2-sub-Gaussian values, with
  ``V = n/4`` and ``rho = window/4``, radius ``sqrt((V+rho) * (2 log(1/a) + log((V+rho)/rho))) / n``.

``window``: the earlier sliding window, re-tested after each run, kept for comparison. A window
smaller than the rule's minimum sample is inconclusive, never a pass. Rates use the Wilson score
interval; mean scores a normal interval. A rule passes when the whole interval is on the good side of
the threshold and breaches when it is on the bad side; each test is sound alone, but the chance of
a wrong verdict grows with every re-test (``python -m bench.gate_sim`` measures both).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from govflow.policies.gates import ScoreCheck, WindowRule
from govflow.policies.model import Policy

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
    cusum: float = Field(default=0.0, ge=0.0, description="For method cusum: the evidence of a drop so far.")


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
    method: Literal["cusum", "window"] = "window"
    statistic: float | None = Field(default=None, description="cusum: the evidence of a drop so far.")
    limit: float | None = Field(default=None, description="cusum: the evidence at which the rule breaches.")


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


# --- method cusum ------------------------------------------------------------------------------------


def levels(rule: WindowRule) -> tuple[float, float]:
    """``(fine, caught)``: the metric's level judged fine (threshold and margin) and the level worth
    catching (threshold and drop), on the metric's own scale."""
    if rule.higher_is_better:
        fine, caught = rule.threshold + rule.margin, rule.threshold - rule.drop
    else:
        fine, caught = rule.threshold - rule.margin, rule.threshold + rule.drop
    # Policy files are refused when a level leaves (0, 1) (the loader); a policy from before `method`
    # existed, read back from history, is kept computable instead.
    if rule.metric != "mean_score" or 0.0 <= rule.threshold <= 1.0:
        fine, caught = (min(1 - 1e-6, max(1e-6, x)) for x in (fine, caught))
    return fine, caught


def _bad_rates(rule: WindowRule) -> tuple[float, float]:
    """``(p0, p1)``: the chance that a run is bad (a miss for pass_rate, a hit for the other rates) at
    the fine level and at the level worth catching."""
    fine, caught = levels(rule)
    return (1.0 - fine, 1.0 - caught) if rule.higher_is_better else (fine, caught)


@functools.lru_cache(maxsize=256)
def _starts_bound(p0: float, r: float, n: int) -> float:
    """An upper bound on the expected number of bad runs taken at ``S = 0`` within ``n`` runs, at any
    bad-run rate ``q <= p0`` (``r`` = rise / fall of the CUSUM).

    With ``Phi = S / fall``: ``Phi_n = r * bad - (good runs taken at S > 0) + slack`` (slack >= 0), so
    the runs taken idle at 0 are at most ``n - (1 + r) * bad + Phi_n``. A run at 0 is bad with chance
    ``q`` whatever came before, so E[starts] = q * E[runs at 0] and E[idle] = (1 - q) * E[runs at 0];
    E[bad] = q * n; and E[Phi_n] <= Kingman's bound for a reflected walk started at 0,
    ``var / (2 * |drift|)``. Maximised over a grid of ``q`` in (0, p0] (the bound is smooth in ``q``; the
    grid maximum is raised by 1 % to cover the gaps)."""
    best = 0.0
    for k in range(1, 201):
        q = p0 * k / 200
        drift = 1.0 - (1.0 + r) * q  # minus the mean step of Phi; > 0 below the breakeven rate
        if drift <= 0:
            return float(n)
        kingman = q * (1 - q) * (1 + r) ** 2 / (2 * drift)
        best = max(best, q * (n * drift + kingman) / (1 - q))
    return min(float(n), best * 1.01)


def cusum_limit(rule: WindowRule) -> float:
    """``h``: the evidence of a drop at which the rule breaches (see the module docstring).

    Rates: ``h = log(E[starts] * (p1 / p0) / a)``. Only a bad run taken at ``S = 0`` starts a cycle that
    can end in a pause (within a cycle ``S`` is the log likelihood ratio since its start); from that
    first run on, the ratio is a supermartingale at ``p1/p0`` for any bad-run rate ``q <= p0``, so it
    reaches ``e^h`` with probability at most ``(p1/p0) * e^-h`` (Ville); summed over the expected number
    of starts within ``per_runs`` runs (``_starts_bound``), the chance of a false pause is at most
    ``a = at_most``. Mean scores: ``h = log(N / a)`` (the plain union over every run as a start).
    The bound assumes runs independent at a constant rate, the model every gate here assumes.

    Running rollouts decide with this number: changing the formula changes their decisions, so it
    needs a workflow patch like any other change to workflow logic.
    """
    n, alpha = rule.false_pauses.per_runs, rule.false_pauses.at_most
    if rule.metric == "mean_score":
        return math.log(n / alpha)
    p0, p1 = _bad_rates(rule)
    rise, fall = math.log(p1 / p0), -math.log((1.0 - p1) / (1.0 - p0))
    return math.log(_starts_bound(p0, rise / fall, n) * (p1 / p0) / alpha)


def cusum_increment(rule: WindowRule, value: float) -> float:
    """What one run adds to the CUSUM: ``value`` is 1.0/0.0 for a rate's hit, or the run's score."""
    fine, caught = levels(rule)
    if rule.metric == "mean_score":
        step = 4.0 * (caught - fine)  # negative: a fall in the mean is the bad direction
        x = min(1.0, max(0.0, value))
        return step * (x - fine) - step * step / 8.0
    p0, p1 = _bad_rates(rule)
    bad = (value < 0.5) if rule.higher_is_better else (value >= 0.5)
    return math.log(p1 / p0) if bad else math.log((1.0 - p1) / (1.0 - p0))


def observe(rule: WindowRule, counts: WindowCounts, value: float) -> WindowCounts:
    """The stage's counts after one more run (``value`` as for :func:`cusum_increment`)."""
    hit = 0 if rule.metric == "mean_score" else int(value >= 0.5)
    return WindowCounts(
        n=counts.n + 1,
        successes=counts.successes + hit,
        total=counts.total + value,
        total_sq=counts.total_sq + value * value,
        # Latched at the limit: reports are counted in batches, and a crossing inside a batch must not
        # be washed out by the passes after it before the rollout looks.
        cusum=counts.cusum
        if counts.cusum >= cusum_limit(rule)
        else max(0.0, counts.cusum + cusum_increment(rule, value)),
    )


def _log_mixture(n: int, hits: int, p: float) -> float:
    """log of Robbins' beta-binomial mixture martingale for a rate ``p`` (uniform prior), after ``hits``
    of ``n``: ``log B(1+hits, 1+n-hits) - hits*log p - (n-hits)*log(1-p)``."""
    log_beta = math.lgamma(1 + hits) + math.lgamma(1 + n - hits) - math.lgamma(2 + n)
    return log_beta - hits * math.log(p) - (n - hits) * math.log1p(-p)


def _rate_bound(n: int, hits: int, level: float, lower: bool) -> float:
    """The end of the confidence sequence for a rate: where the mixture falls back under ``level``."""
    mle = hits / n
    lo, hi = (1e-12, mle) if lower else (mle, 1 - 1e-12)
    edge = lo if lower else hi
    if (lower and hits == 0) or (not lower and hits == n) or _log_mixture(n, hits, edge) < level:
        return 0.0 if lower else 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        inside = _log_mixture(n, hits, mid) < level
        if lower:
            lo, hi = (lo, mid) if inside else (mid, hi)
        else:
            lo, hi = (mid, hi) if inside else (lo, mid)
    return hi if lower else lo


def confidence_sequence(rule: WindowRule, n: int, estimate: float, hits: int = 0) -> tuple[float, float]:
    """The anytime-valid interval for the stage's mean after ``n`` runs (see the module docstring):
    rates by the beta-binomial mixture, mean scores by the normal mixture for values in [0, 1]."""
    if n <= 0:
        return (0.0, 1.0)
    level = math.log(1.0 / rule.wrong_promotions)
    if rule.metric != "mean_score":
        return (_rate_bound(n, hits, level, lower=True), _rate_bound(n, hits, level, lower=False))
    v, rho = n / 4.0, max(1.0, rule.window / 4.0)
    radius = math.sqrt((v + rho) * (2.0 * level + math.log((v + rho) / rho))) / n
    return (max(0.0, estimate - radius), min(1.0, estimate + radius))


def expected_delay(rule: WindowRule) -> float:
    """About how many runs a fall to the caught level takes to breach: ``h`` over the mean increment."""
    fine, caught = levels(rule)
    if rule.metric == "mean_score":
        step = 4.0 * (caught - fine)
        drift = step * (caught - fine) - step * step / 8.0
    else:
        p0, p1 = _bad_rates(rule)
        drift = p1 * math.log(p1 / p0) + (1.0 - p1) * math.log((1.0 - p1) / (1.0 - p0))
    return cusum_limit(rule) / drift if drift > 0 else math.inf


def promise(rule: WindowRule) -> str:
    """What the rule promises, in words an operator can check against the evidence."""
    fine, caught = levels(rule)
    if rule.method == "window":
        return (
            f"sliding window of {rule.window} runs re-tested after each run at {rule.confidence:.0%}: no stated "
            "false-pause rate (it grows with every run; see bench.gate_sim)"
        )
    fp = rule.false_pauses
    return (
        f"false pauses at most {fp.at_most:.2%} per {fp.per_runs:,} runs while {rule.metric} is {fine:g} or better; "
        f"a fall to {caught:g} is caught within about {expected_delay(rule):.0f} runs; "
        f"promotes wrongly at most {rule.wrong_promotions:.2%} of the time while on the bad side of {rule.threshold:g}"
    )


def evaluate_sequential(rule: WindowRule, counts: WindowCounts) -> WindowVerdict:
    """Breach when the CUSUM reaches its limit; pass when the anytime-valid bound clears the threshold
    (after the minimum sample); otherwise inconclusive. ``counts`` are the whole stage's."""
    limit = cusum_limit(rule)
    side = "at least" if rule.higher_is_better else "at most"
    evidence = f"evidence of a drop: {counts.cusum:.1f} of the {limit:.1f} that pauses"
    estimate: float | None = None
    low = high = None
    if counts.n:
        estimate = counts.total / counts.n if rule.metric == "mean_score" else counts.successes / counts.n
        low, high = confidence_sequence(rule, counts.n, estimate, counts.successes)
    if counts.cusum >= limit:
        status: Status = "breach"
    elif counts.n < rule.min_sample or low is None or high is None:
        status = "inconclusive"
    else:
        status = (
            "pass" if (low >= rule.threshold if rule.higher_is_better else high <= rule.threshold) else "inconclusive"
        )
    figures = (
        f"{rule.metric} {estimate:.3f} over {counts.n} runs, anytime {1 - rule.wrong_promotions:.0%} bound "
        f"[{low:.3f}, {high:.3f}], needs {side} {rule.threshold}"
        if estimate is not None and low is not None and high is not None
        else "no runs in this stage yet"
    )
    return WindowVerdict(
        rule=rule.name, metric=rule.metric, status=status, n=counts.n, estimate=estimate, low=low, high=high,
        threshold=rule.threshold, reason=f"{evidence}; {figures}", method="cusum", statistic=counts.cusum,
        limit=limit,
    )  # fmt: skip


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
