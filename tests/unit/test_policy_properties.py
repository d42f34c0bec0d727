"""Properties of the engine that must hold for any action, any reviewer, any vote."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from govflow.policies import (
    Action,
    ApprovalAttempt,
    Deny,
    NeedsApproval,
    RunContext,
    check_attempt,
    check_scope,
    decide,
    parse_policy,
    quorum_met,
)
from govflow.policies.terms import WRITE_OPERATIONS
from tests.unit.policy_docs import BASE

POLICY = parse_policy(BASE)
NOW = datetime(2026, 11, 27, tzinfo=UTC)
GRANTED = {(g.system, g.resource, op) for g in POLICY.grants for op in g.operations}
WRITABLE = {(g.system, g.resource): set(g.fields) for g in POLICY.grants}
PEOPLE = [p.id for p in POLICY.reviewers.people]

names = st.sampled_from(["crm", "erp", "contact", "order", "ticket", "x"])
operations = st.sampled_from(["read", "create", "update", "delete", "reply", "pay", "drop"])
field_names = st.sampled_from(["status", "note", "owner", "email", "region"])
values = st.one_of(st.sampled_from(["churn-risk", "active", "x"]), st.integers(-(2**53) + 1, 2**53 - 1), st.booleans())
actions = st.builds(
    Action,
    action_id=st.sampled_from(["a1", "a2"]),
    system=names,
    resource=names,
    operation=operations,
    record_id=st.one_of(st.none(), st.text(min_size=1, max_size=5)),
    fields=st.dictionaries(field_names, values, max_size=4),
)
reviewers = st.sampled_from([*PEOPLE, "mallory"])


def _ctx(requester: str = "carol") -> RunContext:
    return RunContext(run_id="r", requester=requester, now=NOW)


@given(actions)
def test_no_action_outside_a_grant_is_ever_allowed(action: Action) -> None:
    decision = decide(POLICY, action, _ctx())
    if (action.system, action.resource, action.operation) not in GRANTED:
        assert isinstance(decision, Deny)
        assert decision.rule == "scope"


@given(actions)
def test_no_field_outside_a_grant_is_ever_writable(action: Action) -> None:
    if action.operation not in WRITE_OPERATIONS:
        return
    allowed = WRITABLE.get((action.system, action.resource), set())
    decision = decide(POLICY, action, _ctx())
    if set(action.fields) - allowed:
        assert isinstance(decision, Deny)
    scope = check_scope(POLICY, action.system, action.resource, action.operation, action.fields)
    if scope.allowed:
        assert set(action.fields) <= allowed


CHURN = Action(action_id="a1", system="crm", resource="contact", operation="update", fields={"status": "churn-risk"})


def _gate(requester: str):  # type: ignore[no-untyped-def]
    decision = decide(POLICY, CHURN, _ctx(requester))
    assert isinstance(decision, NeedsApproval)
    return decision.gates[0]


@given(requester=st.sampled_from(PEOPLE), approved=st.lists(st.sampled_from(PEOPLE), max_size=3))
def test_under_separation_of_duties_the_requester_never_satisfies_a_gate(requester: str, approved: list[str]) -> None:
    gate = _gate(requester)
    attempt = ApprovalAttempt(reviewer=requester, verdict="approve", action_digest=gate.action_digest, at=NOW)
    assert not check_attempt(POLICY, gate, attempt, run_id="r", approved_by=approved).accepted
    # Even if the requester's name got into the approvals, it would not count.
    without = [a for a in approved if a != requester]
    assert quorum_met(gate, [*approved, requester]) == quorum_met(gate, without)


@given(votes=st.lists(reviewers, max_size=8), requester=st.sampled_from(["carol", "alice"]))
def test_a_quorum_is_never_met_by_fewer_distinct_reviewers(votes: list[str], requester: str) -> None:
    gate = _gate(requester)
    accepted: list[str] = []
    for who in votes:
        attempt = ApprovalAttempt(reviewer=who, verdict="approve", action_digest=gate.action_digest, at=NOW)
        if check_attempt(POLICY, gate, attempt, run_id="r", approved_by=accepted).accepted:
            accepted.append(who)
    assert len(accepted) == len(set(accepted))
    if quorum_met(gate, accepted):
        assert len(set(accepted)) >= gate.quorum
        assert requester not in accepted


@settings(max_examples=200)
@given(
    reviewer=reviewers,
    other=actions,
    delay=st.integers(min_value=0, max_value=10 * 3600),
)
def test_an_approval_for_another_digest_never_counts(reviewer: str, other: Action, delay: int) -> None:
    gate = _gate("carol")
    if other.digest() == gate.action_digest:
        return
    attempt = ApprovalAttempt(
        reviewer=reviewer, verdict="approve", action_digest=other.digest(), at=NOW + timedelta(seconds=delay)
    )
    assert not check_attempt(POLICY, gate, attempt, run_id="r").accepted
