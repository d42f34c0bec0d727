"""What a rollout's gates read from each run: pure, so they are unit-tested without Temporal."""

from __future__ import annotations

import hashlib

from policies import WindowCounts
from policies.model import WindowRule
from workflows.rollout_models import RunReport


def bucket(item_key: str) -> float:
    """A stable number in [0, 1) for an item: the same item always lands the same way in a stage."""
    return int(hashlib.sha256(item_key.encode()).hexdigest()[:16], 16) / float(1 << 64)


def report_value(rule: WindowRule, report: RunReport) -> float | None:
    """What one run says for a rule: 1.0 or 0.0 for a rate's hit, the score for mean_score (None if absent)."""
    if rule.metric == "mean_score":
        return report.scores.get(rule.score or "")
    if rule.metric == "pass_rate":
        return float(report.checks_passed and not report.error)
    if rule.metric == "override_rate":
        return float(report.overridden)
    return float(report.error)


def window_counts(rule: WindowRule, reports: list[RunReport]) -> WindowCounts:
    recent = reports[-rule.window :]
    if rule.metric == "mean_score":
        scores = [r.scores[rule.score] for r in recent if rule.score in r.scores]
        return WindowCounts(n=len(scores), total=sum(scores), total_sq=sum(x * x for x in scores))
    if rule.metric == "pass_rate":
        hits = sum(1 for r in recent if r.checks_passed and not r.error)
    elif rule.metric == "override_rate":
        hits = sum(1 for r in recent if r.overridden)
    else:
        hits = sum(1 for r in recent if r.error)
    return WindowCounts(n=len(recent), successes=hits)
