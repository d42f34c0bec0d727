"""`govflow policy diff`: each semantic change, marked as raising or lowering exposure."""

from __future__ import annotations

from govflow.examples.support_triage import EXAMPLES
from govflow.policies import parse_policy
from govflow.policies.diff import diff

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


def test_every_field_of_the_policy_model_is_judged() -> None:
    """Walked from the model's definition: a field added later fails here until FIELDS names it."""
    from govflow.policies.diff import FIELDS, model_fields

    assert sorted(model_fields() - set(FIELDS)) == []
    assert sorted(set(FIELDS) - model_fields()) == []


def test_widening_authority_is_never_no_difference() -> None:
    """Standing approvals on a high-risk rule, and a replaced public key (someone else signs as alice)."""
    key = "3wM5aGd1T1LvakZDK+nlDE48zna6qlyT2Y593xp5qH8="
    with_key = ("{id: alice, name: Alice Ng, roles: [support-lead]}",
                f"{{id: alice, name: Alice Ng, roles: [support-lead], public_key: {key}}}")  # fmt: skip
    assert changed(with_key) == [
        f"[ + raises] reviewers.people[alice].public_key: null -> {key}",
    ]
    assert changed(("      separation_of_duties: true\n      expires_after: 24h",
                    "      separation_of_duties: true\n      standing: true\n      expires_after: 24h")) == [
        "[ + raises] actions[flag-churn-risk].approval.standing: null -> true",
    ]  # fmt: skip


def test_notifications_and_identity_are_semantic() -> None:
    base = EXAMPLE + (
        "notifications:\n"
        "  - {name: leads, url: 'https://hooks.example.com/a', secret: {env: HOOK}, roles: [support-lead]}\n"
    )
    assert [str(x) for x in diff(parse_policy(base), parse_policy(EXAMPLE))] == [
        "[ + raises] notifications: removed: leads"
    ]
    moved = base.replace("hooks.example.com/a", "elsewhere.example.net/a")
    assert [str(x) for x in diff(parse_policy(base), parse_policy(moved))] == [
        "[ + raises] notifications[leads].url: https://hooks.example.com/a -> https://elsewhere.example.net/a"
    ]
    signed = EXAMPLE + "identity:\n  signed: [vote]\n"
    assert [str(x) for x in diff(parse_policy(signed), parse_policy(EXAMPLE))] == [
        "[ + raises] identity: signed acts removed: vote"
    ]
