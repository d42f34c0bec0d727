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
    escalate,
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
    assert gate.unchecked == ("purchase_order.requested_by: the run read no purchase_order record with it",)
    refused = _vote(policy, gate, "farah")
    assert (refused.accepted, refused.code) == (False, "separation_of_duties")
    assert "cannot clear anyone to approve: purchase_order.requested_by: the run read no" in refused.reason


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


def _large(amount: str, currency: str = "EUR", farah: list[str] | None = None):  # type: ignore[no-untyped-def]
    doc = yaml.safe_load(POLICY.read_text())
    if farah is not None:  # farah's roles, for this test
        next(p for p in doc["reviewers"]["people"] if p["id"] == "farah")["roles"] = farah
    policy = parse_policy(yaml.safe_dump(doc, sort_keys=False))
    action = PAYMENT.model_copy(update={"fields": {**PAYMENT.fields, "amount": amount, "currency": currency}})
    reads = {"purchase_order": ({"id": "PO-0001", "requested_by": "finance-ops"},)}
    decision = decide(policy, action, RunContext(run_id="run-1", requester="gus", now=NOW, reads=reads))
    assert isinstance(decision, NeedsApproval)
    gate = next(g for g in decision.gates if g.rule == "large-payment")  # an unreadable amount takes both rules
    return policy, decision, gate


def test_within_their_limits_the_rule_s_approvers_decide() -> None:
    _, _decision, gate = _large("48250.00")
    assert (gate.rule, gate.eligible, gate.over_limit, gate.escalated) == (
        "large-payment",
        ("dana", "erik", "farah"),
        {},
        False,
    )
    assert gate.amount == "48,250.00 EUR"


def test_when_fewer_than_the_quorum_are_within_their_limits_the_gate_goes_to_the_role_that_can() -> None:
    # farah is a finance approver and a controller: within her limit, but the rule asks for two approvers,
    # each within their own limit (quorum and limits combine): the controllers, farah and hana.
    policy, decision, gate = _large("120000")
    assert (gate.eligible, gate.roles, gate.escalated) == (("farah", "hana"), ("controller",), True)
    assert gate.over_limit == {
        "dana": "may approve up to 50,000.00 EUR; this is 120,000.00 EUR",
        "erik": "may approve up to 50,000.00 EUR; this is 120,000.00 EUR",
    }
    assert "over their limit: dana, erik (120,000.00 EUR)" in decision.reason
    assert "it goes to controller" in decision.reason
    assert "cannot be met" not in decision.reason
    refused = _vote(policy, gate, "erik")
    assert (refused.accepted, refused.code) == (False, "no_authority")
    assert "may approve up to 50,000.00 EUR; this is 120,000.00 EUR" in refused.reason
    assert _vote(policy, gate, "hana").accepted


def test_above_every_limit_a_quorum_nobody_can_meet_is_said() -> None:
    policy, decision, gate = _large("600000", farah=["controller"])
    assert gate.escalated
    assert (gate.eligible, gate.roles) == ((), ())
    assert (
        "600,000.00 EUR: fewer than 2 of the people rule large-payment names may approve it within their limits: "
        "it goes to nobody"
    ) in decision.reason
    assert "quorum 2 cannot be met: only nobody may approve it" in decision.reason
    assert not _vote(policy, gate, "farah").accepted


@pytest.mark.parametrize(
    ("amount", "currency", "says"),
    [("120000", "USD", "the action is in USD, the limits in EUR"), ("lots", "EUR", "'lots', not an amount")],
)
def test_an_amount_the_limits_cannot_read_clears_nobody(amount: str, currency: str, says: str) -> None:
    policy, _, gate = _large(amount, currency)
    assert any(says in u for u in gate.unchecked), gate.unchecked
    refused = _vote(policy, gate, "farah")
    assert (refused.accepted, refused.code) == (False, "separation_of_duties")


@pytest.mark.parametrize(
    ("limits", "path", "says"),
    [
        ({"field": "total", "currency": "EUR", "up_to": {"controller": 1}}, "limits.field", "'total' is not a field"),
        ({"field": "amount", "currency": "EUR", "up_to": {"controller": -5}}, "limits", "cannot be negative"),
        ({"field": "amount", "currency": "EUX", "up_to": {"controller": 5}}, "limits.currency", "not an ISO 4217"),
        (
            {"field": "amount", "currency": "EUR", "up_to": {"auditors": 5}},
            "limits.up_to",
            "neither a person nor a role",
        ),
        (
            {
                "field": "amount",
                "currency": "EUR",
                "up_to": {"controller": 5},
                "window": {"by": "vendor_id", "over": "a day"},
            },
            "limits.window.over",
            "is not a duration",
        ),
        (
            {
                "field": "amount",
                "currency": "EUR",
                "up_to": {"controller": 5},
                "window": {"by": "vendor", "over": "1d"},
            },
            "limits.window.by",
            "'vendor' is not a field",
        ),
    ],
)
def test_policy_check_refuses_limits_it_cannot_use(limits: dict[str, object], path: str, says: str) -> None:
    doc = yaml.safe_load(POLICY.read_text())
    doc["actions"][2]["approval"]["limits"] = limits
    with pytest.raises(PolicyError) as caught:
        parse_policy(yaml.safe_dump(doc, sort_keys=False))
    (issue,) = caught.value.issues
    assert issue.path.startswith(f"actions[2].approval.{path}"), issue
    assert issue.line is not None, issue
    assert says in issue.message, issue


def test_policy_diff_says_who_may_approve_less() -> None:
    from govflow.policies.diff import diff

    old = parse_policy(POLICY.read_text())
    doc = yaml.safe_load(POLICY.read_text())
    doc["actions"][2]["approval"]["limits"]["up_to"]["finance-approver"] = 20000
    doc["actions"][1]["approval"]["not_by"] = []
    lines = {(d.what, d.exposure) for d in diff(old, parse_policy(yaml.safe_dump(doc, sort_keys=False)))}
    assert ("limit of finance-approver: 50,000 -> 20,000 EUR", "lowers") in lines
    assert ("kept out by the data (not_by) removed: purchase_order.requested_by", "raises") in lines


def test_an_update_that_changes_nothing_is_not_sent_for_approval() -> None:
    policy = parse_policy(POLICY.read_text())
    update = PAYMENT.model_copy(update={"operation": "update", "fields": {"amount": "480.00", "status": "scheduled"}})
    same = {"amount": "480.00", "status": "scheduled", "vendor_id": "V001"}
    decision = decide(policy, update, RunContext(run_id="run-1", requester="gus", now=NOW, record=same))
    assert decision.kind == "allow"
    assert "changes nothing" in decision.reason
    moved = decide(policy, update, RunContext(run_id="run-1", requester="gus", now=NOW,
                                              record={**same, "status": "new"}))  # fmt: skip
    assert moved.kind == "needs_approval"


def test_an_expiry_that_escalates_keeps_to_the_limits() -> None:
    # 48,250 is within the finance approvers' limit; on expiry it escalates to the ap-clerks' role, whose
    # limit (the table's default, 0) covers nothing: nobody there may approve it, and why is said.
    doc = yaml.safe_load(POLICY.read_text())
    doc["actions"][2]["approval"]["on_expiry"] = {"to_role": "ap-clerk", "expires_after": "1h"}
    doc["reviewers"]["people"].append({"id": "ivo", "name": "Ivo", "roles": ["ap-clerk"]})
    doc["actions"][2]["approval"]["limits"]["up_to"]["ivo"] = 60000
    policy = parse_policy(yaml.safe_dump(doc, sort_keys=False))
    action = PAYMENT.model_copy(update={"fields": {**PAYMENT.fields, "amount": "48250.00"}})
    reads = {"purchase_order": ({"id": "PO-0001", "requested_by": "finance-ops"},)}
    decision = decide(policy, action, RunContext(run_id="run-1", requester="dana", now=NOW, reads=reads))
    assert isinstance(decision, NeedsApproval)
    (gate,) = decision.gates
    assert gate.total == "48250.00"
    later = escalate(policy, gate, NOW)
    assert later is not None
    assert (later.eligible, later.roles) == (("ivo",), ("ap-clerk",))  # gus: ap-clerk, limit 0
    assert later.over_limit["gus"] == "may approve up to 0.00 EUR; this is 48,250.00 EUR"
    refused = _vote(policy, later, "gus")
    assert (refused.accepted, refused.code) == (False, "no_authority")
    assert "may approve up to 0.00 EUR" in refused.reason
