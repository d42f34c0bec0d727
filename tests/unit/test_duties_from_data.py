"""Separation of duties from the data (approval.not_by): whoever a record the run read names (who ordered
it, who created it) may not approve the action, and the refusal names the field and its value."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from govflow.examples.invoice_matching import POLICY
from govflow.policies import (
    Action,
    ApprovalAttempt,
    NeedsApproval,
    PolicyError,
    RunContext,
    check_attempt,
    parse_policy,
)
from govflow.policies.engine import decide

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
PAYMENT = Action(
    action_id="schedule-payment",
    system="finance",
    resource="payment",
    operation="create",
    record_id="PAY-INV-0001",
    fields={"amount": "480.00", "currency": "EUR", "vendor_id": "V001"},
)


def _gate(reads: dict[str, tuple[dict[str, str], ...]]):  # type: ignore[no-untyped-def]
    policy = parse_policy(POLICY.read_text())
    decision = decide(policy, PAYMENT, RunContext(run_id="run-1", requester="gus", now=NOW, reads=reads))
    assert isinstance(decision, NeedsApproval)
    return policy, decision


def _vote(policy, gate, who: str):  # type: ignore[no-untyped-def]
    attempt = ApprovalAttempt(reviewer=who, verdict="approve", action_digest=gate.action_digest, at=NOW,
                              signature=None)  # fmt: skip
    return check_attempt(policy.model_copy(update={"identity": policy.identity.model_copy(update={"signed": ()})}),
                         gate.model_copy(update={"signature_required": False}), attempt, run_id="run-1")  # fmt: skip


def test_the_person_who_ordered_it_may_not_approve_paying_for_it() -> None:
    policy, decision = _gate({"purchase_order": ({"id": "PO-0001", "requested_by": "erik"},)})
    (gate,) = decision.gates
    assert gate.excluded == {"erik": "purchase_order.requested_by is erik"}
    assert "not erik: purchase_order.requested_by is erik" in decision.reason
    refused = _vote(policy, gate, "erik")
    assert (refused.accepted, refused.code) == (False, "separation_of_duties")
    assert "purchase_order.requested_by is erik" in refused.reason
    assert _vote(policy, gate, "farah").accepted


def test_a_field_the_run_never_read_clears_nobody() -> None:
    policy, decision = _gate({})
    (gate,) = decision.gates
    assert gate.unchecked == ("purchase_order.requested_by",)
    refused = _vote(policy, gate, "farah")
    assert (refused.accepted, refused.code) == (False, "separation_of_duties")
    assert "read no such record" in refused.reason


@pytest.mark.parametrize(
    ("not_by", "says"),
    [
        (["purchase_order"], "String should match pattern"),
        (["ledger.requested_by"], "no grant lets a run read ledger records"),
    ],
)
def test_policy_check_refuses_a_not_by_it_cannot_use(not_by: list[str], says: str) -> None:
    doc = yaml.safe_load(POLICY.read_text())
    doc["actions"][1]["approval"]["not_by"] = not_by
    with pytest.raises(PolicyError) as caught:
        parse_policy(yaml.safe_dump(doc, sort_keys=False))
    (issue,) = caught.value.issues
    assert issue.path.startswith("actions[1].approval.not_by"), issue
    assert issue.line is not None
    assert says in issue.message, issue
