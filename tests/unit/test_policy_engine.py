"""The engine on the example policies: decisions, approval attempts, quorum, expiry, signatures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from govflow.policies import (
    Action,
    Allow,
    ApprovalAttempt,
    Deny,
    Gate,
    NeedsApproval,
    Policy,
    RunContext,
    check_attempt,
    decide,
    escalate,
    load_policy,
    quorum_met,
    signing_message,
)
from tests.helpers import fixture_signature

EXAMPLES = Path(__file__).parents[2] / "policies" / "examples"
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def triage() -> Policy:
    return load_policy(EXAMPLES / "support-triage.yaml")


@pytest.fixture(scope="module")
def invoices() -> Policy:
    return load_policy(EXAMPLES / "invoice-matching.yaml")


def ctx(requester: str = "priya", record: dict[str, object] | None = None) -> RunContext:
    return RunContext(run_id="run-1", requester=requester, now=NOW, record=record or {"region": "eu"})


CHURN = Action(
    action_id="a1",
    system="crm",
    resource="contact",
    operation="update",
    record_id="42",
    fields={"status": "churn-risk", "churn_reason": "three angry tickets"},
)
REPLY = Action(
    action_id="a2",
    system="ticketing",
    resource="ticket",
    operation="reply",
    record_id="T-9",
    fields={"reply_body": "Sorry!"},
)
PAYMENT = Action(
    action_id="p1",
    system="finance",
    resource="payment",
    operation="create",
    fields={"invoice_id": "INV-1", "vendor_id": "V001", "amount": 12_000, "currency": "EUR"},
)


def _gate(decision: object) -> Gate:
    assert isinstance(decision, NeedsApproval), decision
    (gate,) = decision.gates
    return gate


def vote(reviewer: str, gate: Gate, *, at: datetime = NOW, verdict: str = "approve", **kw: object) -> ApprovalAttempt:
    return ApprovalAttempt.model_validate(
        {"reviewer": reviewer, "verdict": verdict, "action_digest": gate.action_digest, "at": at, **kw}
    )


def sign(person: str, run_id: str, digest: str, verdict: str = "approve") -> str:
    return fixture_signature(person, signing_message(run_id, digest, verdict))


# --- decide ----------------------------------------------------------------------------------------


def test_churn_risk_needs_two_support_leads_not_the_requester(triage: Policy) -> None:
    gate = _gate(decide(triage, CHURN, ctx()))
    assert gate.rule == "flag-churn-risk"
    assert gate.quorum == 2
    assert gate.eligible == ("alice", "bob", "chen")
    assert gate.separation_of_duties
    assert gate.expires_at == NOW + timedelta(hours=24)
    assert gate.action_digest == CHURN.digest()


def test_a_reply_needs_one_lead_and_escalates_on_expiry(triage: Policy) -> None:
    gate = _gate(decide(triage, REPLY, ctx()))
    assert (gate.rule, gate.quorum) == ("reply-to-ticket", 1)
    later = gate.expires_at
    escalated = escalate(triage, gate, later)
    assert escalated is not None
    assert escalated.eligible == ("chen",)
    assert escalated.expires_at == later + timedelta(hours=4)
    assert escalate(triage, escalated, escalated.expires_at) is None  # then it fails closed


def test_a_plain_status_update_is_allowed_by_its_low_risk_rule(triage: Policy) -> None:
    action = CHURN.model_copy(update={"fields": {"status": "active"}})
    decision = decide(triage, action, ctx())
    assert isinstance(decision, Allow)
    assert decision.rules == ("other-contact-updates",)


def test_outside_the_grants_is_denied_with_the_reason(triage: Policy) -> None:
    delete = CHURN.model_copy(update={"operation": "delete"})
    assert decide(triage, delete, ctx()) == Deny(
        rule="scope",
        reason="no grant allows crm.contact.delete (grants for crm.contact allow: read, update)",
    )
    owner = CHURN.model_copy(update={"fields": {"owner": "mallory"}})
    denied = decide(triage, owner, ctx())
    assert isinstance(denied, Deny)
    assert "field 'owner' is outside grant crm-contacts" in denied.reason


def test_a_record_outside_the_filter_or_unknown_is_denied(triage: Policy) -> None:
    denied = decide(triage, CHURN, ctx(record={"region": "apac"}))
    assert isinstance(denied, Deny)
    assert "its region is 'apac'" in denied.reason
    unknown = decide(triage, CHURN, RunContext(run_id="r", requester="priya", now=NOW))
    assert isinstance(unknown, Deny)
    assert "current values are not known" in unknown.reason


def test_a_write_without_a_rule_is_denied(invoices: Policy) -> None:
    po = Action(action_id="x", system="finance", resource="purchase_order", operation="read")
    assert isinstance(decide(invoices, po, ctx()), Allow)  # reads need no rule


# --- approval attempts -------------------------------------------------------------------------------


def test_the_right_reviewer_is_accepted(triage: Policy) -> None:
    gate = _gate(decide(triage, CHURN, ctx()))
    outcome = check_attempt(triage, gate, vote("alice", gate), run_id="run-1")
    assert outcome.accepted
    assert outcome.reason == "alice approved under rule flag-churn-risk"


@pytest.mark.parametrize(
    ("reviewer", "requester", "already", "overrides", "code", "reason"),
    [
        ("zed", "priya", [], {}, "unknown_reviewer", "'zed' is not in the policy's reviewers directory"),
        (
            "omar",
            "priya",
            [],
            {},
            "no_authority",
            "omar may not approve under rule flag-churn-risk (may approve: alice, bob, chen)",
        ),
        (
            "alice",
            "alice",
            [],
            {},
            "separation_of_duties",
            "alice requested this run and cannot approve its actions",
        ),
        ("alice", "priya", ["alice"], {}, "duplicate", "alice has already approved a1"),
        (
            "alice",
            "priya",
            [],
            {"action_digest": "0" * 64},
            "stale_digest",
            "the vote is for action digest 000000000000",
        ),
        (
            "alice",
            "priya",
            [],
            {"at": NOW + timedelta(hours=24)},
            "expired",
            "the gate closed at 2026-11-28T09:00:00+00:00",
        ),
    ],
)
def test_refused_attempts_say_why(
    triage: Policy,
    reviewer: str,
    requester: str,
    already: list[str],
    overrides: dict[str, object],
    code: str,
    reason: str,
) -> None:
    gate = _gate(decide(triage, CHURN, ctx(requester=requester)))
    attempt = vote(reviewer, gate).model_copy(update=overrides)
    outcome = check_attempt(triage, gate, attempt, run_id="run-1", approved_by=already)
    assert not outcome.accepted
    assert outcome.code == code
    assert reason in outcome.reason


def test_quorum_two_needs_two_distinct_reviewers(triage: Policy) -> None:
    gate = _gate(decide(triage, CHURN, ctx()))
    assert not quorum_met(gate, ["alice"])
    assert not quorum_met(gate, ["alice", "alice"])
    assert quorum_met(gate, ["alice", "bob"])


def test_a_reject_reduces_exposure_and_is_accepted_from_any_known_reviewer(triage: Policy) -> None:
    gate = _gate(decide(triage, CHURN, ctx()))
    outcome = check_attempt(triage, gate, vote("omar", gate, verdict="reject"), run_id="run-1")
    assert outcome.accepted


def test_payments_need_two_signed_finance_approvals(invoices: Policy) -> None:
    ordered = {"purchase_order": ({"id": "PO-0001", "requested_by": "finance-ops"},)}  # read, as a run reads it
    gate = _gate(decide(invoices, PAYMENT, ctx(requester="gus").model_copy(update={"reads": ordered})))
    assert gate.signature_required
    assert gate.quorum == 2
    assert gate.expires_at == NOW + timedelta(hours=4)
    assert gate.on_expiry == "reject"
    assert escalate(invoices, gate, gate.expires_at) is None

    unsigned = check_attempt(invoices, gate, vote("dana", gate), run_id="run-1")
    assert (unsigned.accepted, unsigned.code) == (False, "signature_missing")

    by_other_key = sign("erik", "run-1", gate.action_digest)
    forged = check_attempt(invoices, gate, vote("dana", gate, signature=by_other_key), run_id="run-1")
    assert (forged.accepted, forged.code) == (False, "signature_invalid")

    other_run = sign("dana", "run-2", gate.action_digest)
    replayed = check_attempt(invoices, gate, vote("dana", gate, signature=other_run), run_id="run-1")
    assert (replayed.accepted, replayed.code) == (False, "signature_invalid")

    good = sign("dana", "run-1", gate.action_digest)
    assert check_attempt(invoices, gate, vote("dana", gate, signature=good), run_id="run-1").accepted
    garbage = check_attempt(invoices, gate, vote("erik", gate, signature="%%%"), run_id="run-1")
    assert garbage.code == "signature_invalid"
