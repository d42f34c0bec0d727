"""A policy's own false-pause promise: the sum over its rules, stated by `policy audit`; and one budget a
policy may state, split over its rules."""

from __future__ import annotations

import pytest

from govflow.examples.support_triage import EXAMPLES
from govflow.policies import PolicyError, parse_policy
from govflow.policies.audit import audit

TEXT = (EXAMPLES / "support-triage.yaml").read_text()


def _with(quality: str) -> str:
    return TEXT.replace("quality:\n", f"quality:\n{quality}", 1)


def _whole(text: str) -> str:
    (line,) = [x for x in audit(parse_policy(text)) if x.question.startswith("What does the whole policy promise?")]
    return line.detail


def test_the_audit_states_the_whole_policys_false_pause_bound() -> None:
    """Three rules promising 1 % each add up: the policy promises 3 %, and the audit says so."""
    detail = _whole(TEXT)
    assert detail.startswith("false pauses at most 3.00% per 10,000 runs while every metric is fine")
    assert "(pass-rate 1.00% + override-rate 1.00% + error-rate 1.00%)" in detail


def test_one_budget_is_split_over_the_rules_that_state_none() -> None:
    policy = parse_policy(_with("  false_pauses: {at_most: 0.01, per_runs: 10000}\n"))
    assert [round(w.false_pauses.at_most, 6) for w in policy.quality.window] == [0.003333] * 3
    assert policy.quality.false_pause_bound() == pytest.approx((0.01, 10_000))
    assert _whole(_with("  false_pauses: {at_most: 0.01, per_runs: 10000}\n")).startswith(
        "false pauses at most 1.00% per 10,000 runs"
    )
    # A rule that states its own keeps it; the rest share what is left.
    own = _with("  false_pauses: {at_most: 0.01}\n").replace(
        "      margin: 0.03", "      margin: 0.03\n      false_pauses: {at_most: 0.005}", 1
    )
    shares = sorted(round(w.false_pauses.at_most, 6) for w in parse_policy(own).quality.window)
    assert shares == [0.0025, 0.0025, 0.005]


def test_a_budget_the_rules_overspend_is_refused_with_its_path() -> None:
    over = _with("  false_pauses: {at_most: 0.004}\n").replace(
        "      margin: 0.03", "      margin: 0.03\n      false_pauses: {at_most: 0.005}", 1
    )
    with pytest.raises(PolicyError, match=r"quality.*add up to 0.5000%, more than the policy's budget of 0.4000%"):
        parse_policy(over, source="p.yaml")
