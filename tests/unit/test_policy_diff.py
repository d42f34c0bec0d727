"""`govflow policy diff`: each semantic change, marked as raising or lowering exposure."""

from __future__ import annotations

from policies import parse_policy
from policies.diff import diff
from workers.app import EXAMPLES

EXAMPLE = (EXAMPLES / "support-triage.yaml").read_text()


def changed(*edits: tuple[str, str]) -> list[str]:
    text = EXAMPLE
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    return [str(line) for line in diff(parse_policy(EXAMPLE), parse_policy(text))]


def test_the_same_policy_has_no_difference() -> None:
    assert changed() == []


def test_widening_is_marked_as_raising_exposure() -> None:
    assert changed(("      quorum: 2\n", "      quorum: 1\n"), ("in: [eu, us]", "in: [eu, us, apac]")) == [
        "[ + raises] grant crm-contacts: record filter region in ['eu', 'us'] -> region in ['eu', 'us', 'apac']",
        "[ + raises] rule flag-churn-risk: quorum 2 -> 1",
    ]


def test_narrowing_is_marked_as_lowering_exposure() -> None:
    lines = changed(
        ("fields: [status, churn_reason]", "fields: [status]"),
        ("      separation_of_duties: true\n      expires_after: 8h", "      signature_required: true\n"
         "      separation_of_duties: true\n      expires_after: 8h"),
        ("threshold: 0.8", "threshold: 0.9"),
        ("live_fraction: 0.1, min_runs: 30", "live_fraction: 0.05, min_runs: 60"),
    )  # fmt: skip
    assert lines == [
        "[ - lowers] grant crm-contacts: fields removed: churn_reason",
        "[ - lowers] rule reply-to-ticket: signature required",
        "[ - lowers] stage canary: live fraction 10% -> 5%",
        "[ - lowers] stage canary: min runs 30 -> 60",
        "[ - lowers] quality rule pass-rate: threshold 0.8 -> 0.9",
    ]


def test_a_removed_stop_rule_and_rollout_not_required_raise_exposure() -> None:
    lines = changed(("  - {when: pass-rate, action: pause}\n", ""), ("  required: false", "  required: true"))
    assert "[ - lowers] rollout: required on" in lines
    assert "[ + raises] stop rule: pass-rate -> pause removed" in lines
