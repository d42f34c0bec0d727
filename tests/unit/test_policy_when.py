"""Comparisons in an action rule's ``when``: amounts over a threshold, currencies in a set."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from policies import Action, NeedsApproval, PolicyError, RunContext, decide, parse_policy
from workers.app import EXAMPLES

INVOICES = (EXAMPLES / "invoice-matching.yaml").read_text()
LARGE = """  - name: large-payment
    match:
      system: finance
      resource: payment
      operations: [create, update]
      when: {amount: {gt: 10000}, currency: {in: [EUR, USD]}}
    risk: high
    approval: {roles: [controller], quorum: 1, expires_after: 4h}
  - name: payment-change
"""
CTX = RunContext(run_id="run-1", requester="gus", now=datetime(2026, 11, 28, tzinfo=UTC))


def policy_with(rule: str = LARGE) -> object:
    return parse_policy(INVOICES.replace("  - name: payment-change\n", rule), source="invoices.yaml")


def payment(**fields: object) -> Action:
    base: dict[str, object] = {"invoice_id": "INV-1", "currency": "EUR", "pay_on": "2026-12-01", "status": "draft"}
    return Action(action_id="p1", system="finance", resource="payment", operation="create", record_id="PAY-1",
                  fields={**base, **fields})  # fmt: skip


def rules_of(fields: dict[str, object]) -> list[str]:
    decision = decide(policy_with(), payment(**fields), CTX)  # type: ignore[arg-type]
    assert isinstance(decision, NeedsApproval), decision
    return sorted(g.rule for g in decision.gates)


def test_a_payment_over_the_threshold_needs_the_stricter_rule_too() -> None:
    assert rules_of({"amount": 12_000}) == ["large-payment", "payment-change"]
    assert rules_of({"amount": 10_000}) == ["payment-change"]  # gt: not at the threshold
    assert rules_of({"amount": 950.5}) == ["payment-change"]
    assert rules_of({"amount": "12000.50"}) == ["large-payment", "payment-change"]  # a decimal sent as text


def test_every_condition_must_hold() -> None:
    assert rules_of({"amount": 12_000, "currency": "SEK"}) == ["payment-change"]


def test_an_undecidable_amount_applies_the_restricting_rule() -> None:
    assert rules_of({}) == ["large-payment", "payment-change"]  # no amount: it could be large
    assert rules_of({"amount": "a lot"}) == ["large-payment", "payment-change"]


def test_an_undecidable_amount_never_applies_a_rule_that_only_permits() -> None:
    start = INVOICES.index("  - name: payment-change\n")
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


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("{amount: {}}", "a comparison needs at least one of gt, gte, lt, lte, ne, in"),
        ("{amount: {greater: 5}}", "greater"),
    ],
)
def test_a_comparison_that_says_nothing_or_misspells_is_refused_with_its_line(when: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message) as caught:
        policy_with(LARGE.replace("{amount: {gt: 10000}, currency: {in: [EUR, USD]}}", when))
    assert caught.value.issues[0].line is not None
