"""The governed run's decisions, votes, expiry and exception decisions, judged without Temporal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from govflow.activities.evidence.events import GateEscalated, GateExpired, PolicyDecisionRecord, parse_event
from govflow.policies import Action, AttemptOutcome, Policy, RunContext, load_policy
from govflow.workflows import approvals
from govflow.workflows.run_api import ExceptionDecision, Review

EXAMPLES = Path(__file__).parents[2] / "policies" / "examples"
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
CHURN = Action(
    action_id="a1", system="crm", resource="contact", operation="update", record_id="42",
    fields={"status": "churn-risk", "churn_reason": "three angry tickets"},
)  # fmt: skip
REPLY = Action(
    action_id="a2", system="ticketing", resource="ticket", operation="reply", record_id="T-9",
    fields={"reply_body": "Sorry!"},
)  # fmt: skip


@pytest.fixture(scope="module")
def triage() -> Policy:
    return load_policy(EXAMPLES / "support-triage.yaml")


def decided(policy: Policy, *actions: Action) -> dict[str, approvals.ActionState]:
    contexts = {a.action_id: RunContext(run_id="run-1", requester="priya", now=NOW, record={"region": "eu"})
                for a in actions}  # fmt: skip
    states, events = approvals.decide_actions(policy, "p" * 64, actions, contexts)
    assert [type(e) for e in events] == [PolicyDecisionRecord] * len(actions)
    return states


def vote(policy: Policy, state: approvals.ActionState | None, reviewer: str, *, verdict: str = "approve",
         live: bool = True, digest: str | None = None) -> AttemptOutcome:  # fmt: skip
    review = Review(reviewer=reviewer, action_digest=digest or (state.digest if state else "0" * 64))
    return approvals.judge_vote(policy, state, review, verdict, run_id="run-1", live=live, now=NOW)  # type: ignore[arg-type]


def test_a_quorum_of_two_needs_two_distinct_eligible_reviewers(triage: Policy) -> None:
    state = decided(triage, CHURN)["a1"]
    assert state.open
    assert not state.approved
    assert vote(triage, state, "priya").code == "no_authority"  # the requester is no support lead
    assert vote(triage, state, "alice").accepted
    assert vote(triage, state, "alice").code == "duplicate"
    assert state.open
    assert vote(triage, state, "bob").accepted
    assert state.approved
    assert not state.open
    closed = vote(triage, state, "chen")
    assert (closed.accepted, closed.code) == (False, "closed")
    assert "already decided" in closed.reason


def test_a_reject_closes_every_gate_and_shadow_runs_approve_nothing(triage: Policy) -> None:
    state = decided(triage, CHURN)["a1"]
    shadow = vote(triage, state, "alice", live=False)
    assert (shadow.accepted, shadow.code) == (False, "closed")
    assert state.open
    assert vote(triage, state, "alice", verdict="reject").accepted
    assert not state.open
    assert not state.approved


def test_a_vote_for_no_action_of_the_run_is_stale(triage: Policy) -> None:
    states = decided(triage, CHURN)
    review = Review(reviewer="alice", action_digest="f" * 64)
    assert approvals.find(states, review) is None
    assert vote(triage, None, "alice").code == "stale_digest"


def test_expiry_escalates_then_expires_and_votes_after_it_are_refused(triage: Policy) -> None:
    state = decided(triage, REPLY)["a2"]
    gate = state.gates[0]
    escalated = approvals.expire(triage, [gate], gate.gate.expires_at)
    assert [type(e) for e in escalated] == [GateEscalated]
    assert gate.status == "open"
    assert gate.gate.eligible == ("chen",)
    expired = approvals.expire(triage, [gate], gate.gate.expires_at)
    assert [type(e) for e in expired] == [GateExpired]
    assert state.expired
    assert not state.approved
    late = vote(triage, state, "chen")
    assert (late.accepted, late.code) == (False, "expired")


def test_the_vote_event_round_trips_through_the_store_format(triage: Policy) -> None:
    state = decided(triage, CHURN)["a1"]
    review = Review(reviewer="alice", action_digest=state.digest, reason="looks right")
    outcome = approvals.judge_vote(triage, state, review, "approve", run_id="run-1", live=True, now=NOW)
    event = approvals.vote_event(review, "approve", outcome, state, "signal")
    assert parse_event(event.kind, event.payload()) == event
    assert (event.accepted, event.note, event.action_id) == (True, "looks right", "a1")


def test_exception_decisions_need_authority_and_a_waiting_exception(triage: Policy) -> None:
    route = triage.exceptions
    assert route is not None
    allowed = sorted(triage.eligible(route.reviewers, route.roles))
    expires = NOW + timedelta(hours=1)
    retry = ExceptionDecision(reviewer=allowed[0], decision="retry")
    ok, event = approvals.judge_exception(triage, retry, run_id="run-1", waiting=True, expires_at=expires)
    assert ok.accepted
    assert event.accepted
    nothing, _ = approvals.judge_exception(triage, retry, run_id="run-1", waiting=False, expires_at=expires)
    assert (nothing.accepted, nothing.code) == (False, "expired")
    stranger = ExceptionDecision(reviewer="mallory", decision="retry")
    refused, event = approvals.judge_exception(triage, stranger, run_id="run-1", waiting=True, expires_at=expires)
    assert (refused.code, event.accepted) == ("no_authority", False)
