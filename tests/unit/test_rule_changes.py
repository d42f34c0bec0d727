"""Rules that see the change (match.changes): the record as the run read it against the proposed value."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from govflow.examples.invoice_matching import POLICY
from govflow.policies import Action, NeedsApproval, PolicyError, RunContext, parse_policy
from govflow.policies.engine import decide
from govflow.policies.matching import why

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
RAISE = {
    "name": "payment-raised", "risk": "high",
    "match": {"system": "finance", "resource": "payment", "operations": ["update"],
              "changes": {"amount": {"grows_by_pct": 10}}},
    "approval": {"roles": ["controller"], "expires_after": "4h"},
}  # fmt: skip


def _policy(rule: dict[str, Any] = RAISE):  # type: ignore[no-untyped-def]
    doc = yaml.safe_load(POLICY.read_text())
    doc["actions"].append(rule)
    return parse_policy(yaml.safe_dump(doc, sort_keys=False))


def _rules(record: dict[str, Any] | None, amount: str) -> set[str]:
    action = Action(action_id="a", system="finance", resource="payment", operation="update", record_id="PAY-1",
                    fields={"amount": amount, "currency": "EUR", "vendor_id": "V001"})  # fmt: skip
    ctx = RunContext(run_id="r", requester="gus", now=NOW, record=record,
                     reads={"purchase_order": ({"requested_by": "finance-ops"},)})  # fmt: skip
    decision = decide(_policy(), action, ctx)
    return {g.rule for g in decision.gates} if isinstance(decision, NeedsApproval) else set()


def test_a_rule_applies_when_the_change_is_large_enough() -> None:
    now = {"amount": "1000.00", "currency": "EUR", "vendor_id": "V001"}
    assert "payment-raised" in _rules(now, "1200.00")  # +20 %
    assert "payment-raised" not in _rules(now, "1050.00")  # +5 %


def test_explain_says_why_a_rule_applied() -> None:
    rule = next(r for r in _policy().actions if r.name == "payment-raised")
    action = Action(action_id="a", system="finance", resource="payment", operation="update", record_id="PAY-1",
                    fields={"amount": "1200.00"})  # fmt: skip
    tests = why(rule, action, {"amount": "1000.00"})
    assert all(holds for holds, _ in tests)
    assert "amount '1000.00' -> '1200.00': {'grows_by_pct': 10.0} holds" in [text for _, text in tests]
    absent = why(rule, action, None)
    assert (
        "amount (no record read) -> '1200.00': {'grows_by_pct': 10.0} cannot be told, so it applies" in (absent[-1][1])
    )


def test_a_status_moving_from_one_value_to_another() -> None:
    rule = {**RAISE, "name": "payment-cancelled",
            "match": {**RAISE["match"], "changes": {"status": {"from": "scheduled", "to": "cancelled"}}}}  # fmt: skip
    matched = next(r for r in _policy(rule).actions if r.name == "payment-cancelled")
    action = Action(action_id="a", system="finance", resource="payment", operation="update", record_id="PAY-1",
                    fields={"status": "cancelled"})  # fmt: skip
    assert all(h for h, _ in why(matched, action, {"status": "scheduled"}))
    assert not all(h for h, _ in why(matched, action, {"status": "paid"}))


def test_policy_check_refuses_an_empty_change_test() -> None:
    with pytest.raises(PolicyError) as caught:
        _policy({**RAISE, "match": {**RAISE["match"], "changes": {"amount": {}}}})
    (issue,) = caught.value.issues
    assert issue.path.startswith("actions[3].match.changes"), issue
    assert "needs at least one of rises_by, falls_by, grows_by_pct, from, to" in issue.message
