"""Quality gates under continuous monitoring: the sliding window against the sequential detector.

    python -m bench.gate_sim [--rollouts 300] [--seed 7]

Simulated outcome streams (each run passes with a chosen probability) go through the real gate code
of ``policies.stats``, old ``method: window`` and new ``method: cusum`` side by side on the *same*
streams, with the support-triage example's pass-rate rule (threshold 0.8). A gate is checked after
every run, as a rollout checks it. Printed for each method:

- false pauses: share of rollouts paused by chance within 10,000 runs at a true pass rate of
  threshold + 0.05 and + 0.02 (the targets: at most 1 % at + 0.05);
- wrong promotions: share of stages whose gate passes at some run within 10,000 runs while the true
  rate is threshold - 0.05 (target at most 1 %);
- detection delay: after 500 runs at threshold + 0.05, the rate drops to threshold - 0.10 (or - 0.20);
  median and p95 runs from the drop to the pause (capped at 5,000), over rollouts not already paused.

Speed: the loops take the window verdicts from ``evaluate_window`` (memoised per (n, hits)), the
CUSUM increments and limit from ``cusum_increment`` / ``cusum_limit``, and the promotion bound from
``confidence_sequence`` (the least passing count per n, found with it by bisection). Before the figures,
a self-check replays some streams through ``observe`` and ``evaluate_sequential`` themselves and
requires the fast loop to agree run for run, so the loop cannot drift from the real code.
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable

from govflow.examples.support_triage import EXAMPLES
from govflow.policies import load_policy
from govflow.policies.gates import WindowRule
from govflow.policies.stats import (
    WindowCounts,
    confidence_sequence,
    cusum_increment,
    cusum_limit,
    evaluate_sequential,
    evaluate_window,
    observe,
)

HORIZON = 10_000
WARMUP = 500
CAP = 5_000


def example_rule() -> WindowRule:
    policy = load_policy(EXAMPLES / "support-triage.yaml")
    return next(r for r in policy.quality.window if r.name == "pass-rate")


class Window:
    """The sliding window, re-tested after every run: ``evaluate_window`` on the last ``window`` runs."""

    def __init__(self, rule: WindowRule) -> None:
        self.rule = rule.model_copy(update={"method": "window"})

        @functools.cache
        def status(n: int, hits: int) -> str:
            return evaluate_window(self.rule, WindowCounts(n=n, successes=hits)).status

        self.status = status

    def run(self, stream: list[bool], want: str) -> int | None:
        """The index of the first run at which the verdict is ``want``, or None."""
        recent: deque[bool] = deque()
        hits = 0
        size = self.rule.window
        for i, passed in enumerate(stream):
            recent.append(passed)
            hits += passed
            if len(recent) > size:
                hits -= recent.popleft()
            if self.status(len(recent), hits) == want:
                return i
        return None


class Sequential:
    """CUSUM for breaches, the anytime-valid bound for promotion, with the real code's numbers."""

    def __init__(self, rule: WindowRule) -> None:
        self.rule = rule
        self.on_pass = cusum_increment(rule, 1.0)
        self.on_fail = cusum_increment(rule, 0.0)
        self.limit = cusum_limit(rule)
        self._least: dict[int, int] = {}

    def least_hits_to_pass(self, n: int) -> int:
        """The fewest passing runs out of ``n`` whose anytime-valid lower bound clears the threshold."""
        if n not in self._least:
            lo, hi = 0, n + 1  # hi: never passes
            while lo < hi:
                mid = (lo + hi) // 2
                low, _ = confidence_sequence(self.rule, n, mid / n, mid)
                if low >= self.rule.threshold:
                    hi = mid
                else:
                    lo = mid + 1
            self._least[n] = lo
        return self._least[n]

    def first_breach(self, stream: list[bool]) -> int | None:
        s, limit, up, down = 0.0, self.limit, self.on_fail, self.on_pass
        for i, passed in enumerate(stream):
            s = max(0.0, s + (down if passed else up))
            if s >= limit:
                return i
        return None

    def first_pass(self, stream: list[bool]) -> int | None:
        hits = 0
        for i, passed in enumerate(stream):
            hits += passed
            n = i + 1
            if n >= self.rule.min_sample and hits >= self.least_hits_to_pass(n):
                return i
        return None


def self_check(rule: WindowRule, seq: Sequential, rng: random.Random, streams: int = 10, length: int = 600) -> None:
    """The fast loop must match ``observe`` + ``evaluate_sequential`` run for run."""
    for k in range(streams):
        rate = (0.6, 0.75, 0.85, 0.95)[k % 4]
        stream = [rng.random() < rate for _ in range(length)]
        counts, breach, passed = WindowCounts(), None, None
        for i, ok in enumerate(stream):
            counts = observe(rule, counts, 1.0 if ok else 0.0)
            status = evaluate_sequential(rule, counts).status
            if status == "breach" and breach is None:
                breach = i
            if status == "pass" and passed is None and breach is None:
                passed = i
        fast_breach = seq.first_breach(stream)
        fast_pass = seq.first_pass(stream[: fast_breach if fast_breach is not None else length])
        if (fast_breach, fast_pass) != (breach, passed):
            sys.exit(f"self-check failed at rate {rate}: fast loop {(fast_breach, fast_pass)}, real {(breach, passed)}")


def share(found: list[int | None]) -> float:
    return sum(x is not None for x in found) / len(found)


def delays(found: list[int | None]) -> tuple[float, float]:
    values = sorted(CAP if x is None else x for x in found)
    return statistics.median(values), values[min(len(values) - 1, int(0.95 * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gate_sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=300, help="simulated rollouts per scenario (default 300)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    started = time.monotonic()
    rule = example_rule()
    t = rule.threshold
    window, seq = Window(rule), Sequential(rule)
    rng = random.Random(args.seed)
    self_check(rule, seq, rng)

    def streams(rate: float, length: int) -> list[list[bool]]:
        return [[rng.random() < rate for _ in range(length)] for _ in range(args.rollouts)]

    rows: list[tuple[str, str, str, bool | None]] = []

    def compare(label: str, old: Callable[[list[bool]], int | None], new: Callable[[list[bool]], int | None],
                data: list[list[bool]], target: float | None) -> None:  # fmt: skip
        o, n = share([old(s) for s in data]), share([new(s) for s in data])
        rows.append((label, f"{o:.1%}", f"{n:.1%}", None if target is None else n <= target))

    print(f"rule pass-rate, threshold {t}; window: {rule.window} runs at {rule.confidence:.0%}, min sample "
          f"{rule.min_sample}; cusum: margin {rule.margin}, drop {rule.drop}, at most "
          f"{rule.false_pauses.at_most:.0%} per {rule.false_pauses.per_runs:,} runs (limit {seq.limit:.2f}), "
          f"wrong promotions at most {rule.wrong_promotions:.0%}; {args.rollouts} rollouts per row, "
          f"seed {args.seed}")  # fmt: skip
    print("self-check: the fast loops agree run for run with observe() + evaluate_sequential()")
    for delta, target in ((0.05, 0.01), (0.02, None)):
        data = streams(t + delta, HORIZON)
        compare(f"false pauses within {HORIZON:,} runs at {t + delta:.2f}",
                lambda s: window.run(s, "breach"), seq.first_breach, data, target)  # fmt: skip
    data = streams(t - 0.05, HORIZON)
    compare(f"wrong promotions within {HORIZON:,} runs at {t - 0.05:.2f}",
            lambda s: window.run(s, "pass"), seq.first_pass, data, 0.01)  # fmt: skip

    delay_rows = []
    for drop in (0.10, 0.20):
        warm = streams(t + 0.05, WARMUP)
        after = streams(t - drop, CAP)
        old, new = [], []
        for w, a in zip(warm, after, strict=True):
            if window.run(w, "breach") is None:
                hit = window.run(w + a, "breach")
                old.append(None if hit is None else hit - WARMUP)
            if seq.first_breach(w) is None:
                hit = seq.first_breach(w + a)
                new.append(None if hit is None else hit - WARMUP)
        (om, op), (nm, np_) = delays(old), delays(new)
        ok = np_ <= 1.5 * op if drop == 0.10 else None
        delay_rows.append((f"runs from a drop to {t - drop:.2f} to the pause: median / p95",
                           f"{om:.0f} / {op:.0f}", f"{nm:.0f} / {np_:.0f}", ok))  # fmt: skip

    print(f"\n{'figure':<62} {'window':>14} {'cusum':>14}  target met")
    for label, o, n, ok in [*rows, *delay_rows]:
        print(f"{label:<62} {o:>14} {n:>14}  {'-' if ok is None else 'yes' if ok else 'NO'}")
    took = time.monotonic() - started
    print(f"\n(p95 target: cusum no worse than 1.5x the window's; {took:.0f} s)")
    sys.exit(0 if all(ok in (None, True) for *_, ok in [*rows, *delay_rows]) else 1)


if __name__ == "__main__":
    main()
