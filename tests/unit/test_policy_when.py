"""Comparisons in an action rule's ``when``: amounts over a threshold, currencies in a set."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from govflow.examples.support_triage import EXAMPLES
from govflow.policies import Action, NeedsApproval, Policy, PolicyError, RunContext, audit, decide, parse_policy

INVOICES = (EXAMPLES / "invoice-matching.yaml").read_text()
LARGE_WHEN = "when: {amount: {gt: 10000}}"
CTX = RunContext(run_id="run-1", requester="gus", now=datetime(2026, 11, 28, tzinfo=UTC))


def policy_with(large_when: str = LARGE_WHEN) -> Policy:
    """The shipped invoice policy, its large-payment rule's ``when`` replaced."""
    assert LARGE_WHEN in INVOICES
    return parse_policy(INVOICES.replace(LARGE_WHEN, large_when), source="invoices.yaml")


def payment(**fields: object) -> Action:
    base: dict[str, object] = {"invoice_id": "INV-1", "currency": "EUR", "pay_on": "2026-12-01", "status": "draft",
                               "vendor_id": "V001"}  # fmt: skip
    return Action(action_id="p1", system="finance", resource="payment", operation="create", record_id="PAY-1",
                  fields={**base, **fields})  # fmt: skip


def rules_of(fields: dict[str, object], policy: Policy | None = None) -> list[str]:
    decision = decide(policy or policy_with(), payment(**fields), CTX)
    assert isinstance(decision, NeedsApproval), decision
    return sorted(g.rule for g in decision.gates)


def test_a_payment_over_the_threshold_takes_the_two_person_rule() -> None:
    assert rules_of({"amount": 12_000}) == ["large-payment"]
    assert rules_of({"amount": 10_000}) == ["payment"]  # lte on one side, gt on the other
    assert rules_of({"amount": 950.5}) == ["payment"]
    assert rules_of({"amount": "12000.50"}) == ["large-payment"]  # a decimal sent as text


def test_every_condition_must_hold_and_no_rule_means_denied() -> None:
    policy = policy_with("when: {amount: {gt: 10000}, currency: {in: [EUR, USD]}}")
    assert rules_of({"amount": 12_000, "currency": "USD"}, policy) == ["large-payment"]
    refused = decide(policy, payment(amount=12_000, currency="SEK"), CTX)
    assert (refused.kind, refused.rule) == ("deny", "no-rule")  # type: ignore[union-attr]


def test_an_undecidable_amount_applies_every_restricting_rule() -> None:
    assert rules_of({}) == ["large-payment", "payment"]  # no amount: it could be large
    assert rules_of({"amount": "a lot"}) == ["large-payment", "payment"]


def test_an_undecidable_amount_never_applies_a_rule_that_only_permits() -> None:
    start = INVOICES.index("  - name: payment\n")
    end = INVOICES.index("\nquality:")
    permissive = """  - name: small-payments-free
    match: {system: finance, resource: payment, operations: [create], when: {amount: {lt: 100}}}
    risk: low
"""
    policy = parse_policy(INVOICES[:start] + permissive + INVOICES[end:], source="permissive.yaml")
    small = decide(policy, payment(amount=50), CTX)
    assert (small.kind, small.rules) == ("allow", ("small-payments-free",))  # type: ignore[union-attr]
    unknown = decide(policy, payment(), CTX)  # no amount: the permissive rule does not apply
    assert (unknown.kind, unknown.rule) == ("deny", "no-rule")  # type: ignore[union-attr]


def coverage(policy: Policy) -> str:
    line = next(line for line in audit(policy) if line.question.startswith("Does every write"))
    return f"{line.status}: {line.detail}"


def test_the_audit_sees_amount_ranges_that_together_cover_every_payment() -> None:
    assert coverage(policy_with()) == "ok: every granted write is covered by a rule"
    # lt and gt leave 10,000 itself uncovered: such a payment would be denied, and the audit says so.
    gap = coverage(parse_policy(INVOICES.replace("{lte: 10000}", "{lt: 10000}"), source="gap.yaml"))
    assert gap.startswith("gap: finance.payment.create (grant payments) has no rule")
    assert coverage(policy_with("when: {amount: {gt: 20000}}")).startswith("gap: ")  # 10,000 to 20,000 uncovered
    # Rules that only permit never apply to an amount they cannot read, so together they never cover.
    start, end = INVOICES.index("  - name: payment\n"), INVOICES.index("\nquality:")
    permissive = """  - name: small-payments
    match: {system: finance, resource: payment, operations: [create, update], when: {amount: {lte: 100}}}
    risk: low
  - name: other-payments
    match: {system: finance, resource: payment, operations: [create, update], when: {amount: {gt: 100}}}
    risk: low
"""
    assert coverage(parse_policy(INVOICES[:start] + permissive + INVOICES[end:], source="p.yaml")).startswith("gap: ")


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("{amount: {}}", "a comparison needs at least one of gt, gte, lt, lte, ne, in"),
        ("{amount: {greater: 5}}", "greater"),
    ],
)
def test_a_comparison_that_says_nothing_or_misspells_is_refused_with_its_line(when: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message) as caught:
        policy_with(f"when: {when}")
    assert caught.value.issues[0].line is not None
