"""What-if of a policy against itself changes nothing, whoever voted and whatever a standing approval
approved (a property over past actions decided as a run decides them)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from govflow.activities.evidence.events import ApprovalAttemptRecord, PolicyDecisionRecord, RunRecord
from govflow.examples.support_triage import EXAMPLES
from govflow.policies import Action, NeedsApproval, RunContext, decide, decision_rule, parse_policy
from govflow.whatif import PastAction, redecide

POLICY = parse_policy((EXAMPLES / "support-triage.yaml").read_text())
PEOPLE = [p.id for p in POLICY.reviewers.people]
AT = datetime(2026, 12, 1, tzinfo=UTC)

_ACTIONS = st.sampled_from([
    Action(action_id="reply", system="ticketing", resource="ticket", operation="reply", record_id="T0001",
           fields={"reply_body": "Thanks"}),
    Action(action_id="flag", system="crm", resource="contact", operation="update", record_id="C0001",
           fields={"status": "churn-risk", "churn_reason": "price"}),
    Action(action_id="note", system="crm", resource="contact", operation="update", record_id="C0001",
           fields={"status": "active"}),
])  # fmt: skip


def _past(action: Action, requester: str, voters: list[str], grant: str | None) -> PastAction:
    ctx = RunContext(run_id="run-1", requester=requester, now=AT, record={"region": "eu"})
    decision = decide(POLICY, action, ctx, digest="d" * 64)
    gates = decision.gates if isinstance(decision, NeedsApproval) else []
    old = PolicyDecisionRecord(
        action_id=action.action_id, action_digest="d" * 64, policy_digest="p", decision=decision.kind,
        rule=decision_rule(decision), reason=decision.reason,
        gate={"gates": [g.model_dump(mode="json") for g in gates]} if gates else None,
    )  # fmt: skip
    eligible = {p for g in gates for p in g.eligible}
    votes = [
        ApprovalAttemptRecord(action_id=action.action_id, action_digest="d" * 64, reviewer=v, verdict="approve",
                              accepted=True, reason="ok")
        for v in voters if v in eligible and v != requester
    ]  # fmt: skip
    granted: dict[str, tuple[str, list[str]]] = {}
    rule = POLICY.rule(gates[0].rule) if gates else None
    if grant is not None and rule is not None and rule.allows_standing:  # as a run claims one
        votes.append(ApprovalAttemptRecord(action_id=action.action_id, action_digest="d" * 64,
                                           reviewer=f"grant:{grant}", verdict="approve", accepted=True,
                                           reason="standing", via="grant"))  # fmt: skip
        granters = sorted(eligible)[: gates[0].quorum]
        granted[grant] = (gates[0].rule, granters)
    run = RunRecord(run_id="run-1", task="support-triage", task_version="1", policy_digest="p", item_key="T0001",
                    requester=requester, stage="canary", mode="live", started_at=AT)  # fmt: skip
    return PastAction(run, AT, action, {"region": "eu"}, old, votes, granted)


@settings(max_examples=200, deadline=None, database=None)
@given(
    _ACTIONS,
    st.sampled_from(PEOPLE),
    st.lists(st.sampled_from(PEOPLE), max_size=4),
    st.none() | st.sampled_from(["grant-a", "grant-b"]),
)
def test_whatif_of_a_policy_against_itself_changes_nothing(
    action: Action, requester: str, voters: list[str], grant: str | None
) -> None:
    assert redecide(POLICY, _past(action, requester, voters, grant)) == []


def test_a_standing_approval_is_replayed_by_its_terms_under_the_candidate() -> None:
    reply = Action(action_id="reply", system="ticketing", resource="ticket", operation="reply", record_id="T0001",
                   fields={"reply_body": "Thanks"})  # fmt: skip
    past = _past(reply, "priya", [], "grant-a")
    forbids = parse_policy((EXAMPLES / "support-triage.yaml").read_text().replace(
        "      on_expiry: {to_role: support-manager, expires_after: 4h}\n",
        "      on_expiry: {to_role: support-manager, expires_after: 4h}\n      standing: false\n",
    ))  # fmt: skip
    (change,) = redecide(forbids, past)
    assert change.group == "standing approval no longer holds"
    assert "grant grant-a: rule reply-to-ticket forbids standing approvals" in change.detail
    assert change.detail.endswith("would NOT have been approved")
    quorum_two = parse_policy((EXAMPLES / "support-triage.yaml").read_text().replace(
        "      quorum: 1\n", "      quorum: 2\n", 1))  # fmt: skip
    groups = {c.group: c.detail for c in redecide(quorum_two, past)}
    assert "needs 2" in groups["standing approval no longer holds"]
