"""What a governed run decides, and how its votes, expiries and exception decisions are judged.

Pure: no Temporal here (the workflow passes the time in), so every rule is unit-tested directly
(tests/unit/test_approvals.py). Each function returns the evidence events it implies; the workflow
records them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from govflow.activities.connectors.guard import ReadLog
from govflow.activities.evidence.events import (
    ApprovalAttemptRecord,
    Event,
    ExceptionDecided,
    GateEscalated,
    GateExpired,
    PolicyDecisionRecord,
    ProposalMade,
    QualityCheckFailed,
    QualityScoreRecord,
)
from govflow.activities.run_messages import ProposeResult
from govflow.policies import (
    Action,
    ApprovalAttempt,
    AttemptOutcome,
    Gate,
    NeedsApproval,
    Policy,
    RunContext,
    check_attempt,
    decide,
    decision_rule,
    escalate,
    quorum_met,
    run_checks,
    signed_act_problem,
)
from govflow.policies.authority import reads_by_resource
from govflow.policies.stats import CheckResult
from govflow.workflows.inputs import Read, field_text
from govflow.workflows.run_api import (
    ExceptionDecision,
    GateView,
    PendingAction,
    Review,
    ReviewRequest,
    exception_message,
)

Verdict = Literal["approve", "reject"]
Via = Literal["signal", "update"]


@dataclass
class GateState:
    gate: Gate
    approved_by: list[str] = field(default_factory=list)
    status: Literal["open", "approved", "rejected", "expired"] = "open"


@dataclass
class ActionState:
    action: Action
    digest: str
    decision: Literal["allow", "needs_approval", "deny"]
    reason: str
    gates: list[GateState] = field(default_factory=list)
    grant: str | None = None
    """The standing approval that approved it, if one did."""

    @property
    def open(self) -> bool:
        return any(g.status == "open" for g in self.gates)

    @property
    def approved(self) -> bool:
        return self.decision == "allow" or (
            self.decision == "needs_approval" and all(g.status == "approved" for g in self.gates)
        )

    @property
    def expired(self) -> bool:
        return any(g.status == "expired" for g in self.gates)


# --- deciding a proposal -----------------------------------------------------------------------------


def score_events(policy: Policy, scores: Mapping[str, float], checks: Sequence[CheckResult]) -> list[Event]:
    """One score event per metric (passed when every check on it passed), and the failed checks of
    metrics the proposal did not score."""
    by_check = {c.name: c for c in policy.quality.checks}
    events: list[Event] = []
    for metric, score in sorted(scores.items()):
        verdicts = [r.passed for r in checks if by_check[r.check].score == metric]
        events.append(QualityScoreRecord(metric=metric, score=score, passed=all(verdicts) if verdicts else None))
    events += [QualityCheckFailed(**r.model_dump()) for r in checks if not r.passed and r.check not in scores]
    return events


def decide_proposal(
    policy: Policy,
    policy_digest: str,
    proposal: ProposeResult,
    reads: Iterable[ReadLog],
    ctx: RunContext,
    totals: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[dict[str, ActionState], bool, list[Event]]:
    """Score and decide a proposal: each action's state, whether every quality check passed, and the
    evidence (the proposal, its scores, a decision per action). ``ctx`` is the run's; each action's
    record is the one the run read, for record filters."""
    checks = run_checks(policy, proposal.scores)
    failed = tuple(f"{c.check}: {c.reason}" for c in checks if not c.passed)
    made = ProposalMade.model_validate({**(proposal.proposal or {}), "actions": proposal.actions})
    ctx, by_record = read_context(ctx.model_copy(update={"failed_checks": failed}), reads)
    totals = totals or {}
    contexts = {a.action_id: action_context(ctx, a, by_record, totals.get(a.action_id)) for a in proposal.actions}
    states, decisions = decide_actions(policy, policy_digest, proposal.actions, contexts)
    return states, all(c.passed for c in checks), [made, *score_events(policy, proposal.scores, checks), *decisions]


RecordKey = tuple[str, str, str]


def read_context(ctx: RunContext, reads: Iterable[ReadLog]) -> tuple[RunContext, dict[RecordKey, Any]]:
    """``ctx`` (the run's) with every record the run read (for ``not_by``), and those records by key: built
    once per run, shared by its actions' contexts (``action_context``)."""
    by_record = {(r.system, r.resource, r.record_id): r.values for r in reads}
    return ctx.model_copy(update={"reads": reads_by_resource(by_record)}), by_record


def action_context(
    ctx: RunContext, action: Action, by_record: Mapping[RecordKey, Any], totals: Mapping[str, str] | None = None
) -> RunContext:
    """``ctx`` (from ``read_context``) for one action: the record it changes as the run read it, and what its
    rules' limits windows already hold (``totals``, by rule)."""
    record = by_record.get((action.system, action.resource, action.record_id or ""))
    return ctx.model_copy(update={"record": record, "window_totals": dict(totals or {})})


def decide_actions(
    policy: Policy, policy_digest: str, actions: Iterable[Action], contexts: Mapping[str, RunContext]
) -> tuple[dict[str, ActionState], list[Event]]:
    """Decide each action against the policy (``contexts`` by action id): its state, and its decision event."""
    states: dict[str, ActionState] = {}
    events: list[Event] = []
    for action in actions:
        decision = decide(policy, action, contexts[action.action_id])
        state = ActionState(action=action, digest=action.digest(), decision=decision.kind, reason=decision.reason)
        if isinstance(decision, NeedsApproval):
            state.gates = [GateState(gate=g) for g in decision.gates]
        states[action.action_id] = state
        events.append(
            PolicyDecisionRecord(
                action_id=action.action_id,
                action_digest=state.digest,
                policy_digest=policy_digest,
                decision=decision.kind,
                rule=decision_rule(decision),
                reason=decision.reason,
                gate={"gates": [g.model_dump(mode="json") for g in decision.gates]}
                if isinstance(decision, NeedsApproval)
                else None,
            )
        )
    return states, events


# --- what a run wrote, or would have ---------------------------------------------------------------------


# --- votes ---------------------------------------------------------------------------------------------


def find(actions: Mapping[str, ActionState], review: Review) -> ActionState | None:
    if review.action_id is not None:
        return actions.get(review.action_id)
    return next((s for s in actions.values() if s.digest == review.action_digest), None)


def judge_vote(
    policy: Policy,
    state: ActionState | None,
    review: Review,
    verdict: Verdict,
    *,
    run_id: str,
    live: bool,
    now: datetime,
    late: str = "",
    passkey: str | bool | None = False,
) -> AttemptOutcome:
    """Judge one vote on ``state`` (the action it names, None if none) and apply it to the gates.

    ``live`` False: a shadow run writes nothing, so nothing in it is approved. ``late`` says what the
    run was doing when a vote on an already decided action arrived (shown in the refusal). ``passkey``:
    False when the vote carries no passkey; else None when its assertion held, or why it does not.
    """
    gate_state = next((g for g in state.gates if g.status == "open"), None) if state and live else None
    if state is None:
        what = review.action_id or review.action_digest or "(no action named)"
        return AttemptOutcome(accepted=False, code="stale_digest", reason=f"no action of this run matches {what}")
    if not live:
        return AttemptOutcome(
            accepted=False, code="closed", reason="a shadow run writes nothing: there is nothing to approve"
        )
    if gate_state is None:
        if state.expired:
            closed_at = max(g.gate.expires_at for g in state.gates)
            why = f"the approval window for {state.action.action_id} closed at {closed_at.isoformat()}"
            return AttemptOutcome(accepted=False, code="expired", reason=why)
        gates = ", ".join(g.status for g in state.gates) or "no gate"
        why = f"{state.action.action_id} is already decided ({state.decision}, {gates})"
        return AttemptOutcome(accepted=False, code="closed", reason=why + (f"; {late}" if late else ""))
    attempt = ApprovalAttempt(
        reviewer=review.reviewer,
        verdict=verdict,
        action_digest=review.action_digest or "(no digest given)",
        at=now,
        signature=review.signature,
        reason=review.reason,
        passkey=passkey is not False,
        passkey_problem=passkey if isinstance(passkey, str) else None,
    )
    # A gate open on several rules: the vote goes to the first open gate that accepts it.
    outcome = check_attempt(policy, gate_state.gate, attempt, run_id=run_id, approved_by=gate_state.approved_by)
    if outcome.accepted and verdict == "reject":
        for g in state.gates:
            g.status = "rejected"
    elif outcome.accepted:
        for g in state.gates:
            if g.status != "open" or review.reviewer in g.approved_by:
                continue
            if check_attempt(policy, g.gate, attempt, run_id=run_id, approved_by=g.approved_by).accepted:
                g.approved_by.append(review.reviewer)
                if quorum_met(g.gate, g.approved_by):
                    g.status = "approved"
    return outcome


def vote_event(
    review: Review,
    verdict: Verdict,
    outcome: AttemptOutcome,
    state: ActionState | None,
    via: Via,
    passkey: dict[str, Any] | None = None,
) -> ApprovalAttemptRecord:
    """The evidence of one vote, accepted or refused, with the reviewer's note and signature; a vote that
    names a console session came from the console (as the console says: #30's passkey acts prove it)."""
    session = review.session if isinstance(review, ReviewRequest) else None
    return ApprovalAttemptRecord(
        action_id=state.action.action_id if state else review.action_id or "",
        action_digest=review.action_digest or (state.digest if state else ""),
        reviewer=review.reviewer,
        verdict=verdict,
        accepted=outcome.accepted,
        reason=outcome.reason if outcome.accepted else f"{outcome.code}: {outcome.reason}",
        signed=review.signature is not None or passkey is not None,
        via="console" if session else via,
        note=review.reason,
        signature=review.signature,
        session=session,
        passkey=passkey,
        failed_checks_seen=next((list(g.gate.failed_checks) for g in state.gates if g.gate.failed_checks), None)
        if state
        else None,
    )


def unreadable_vote_event(args: Sequence[Any], verdict: Verdict, via: Via, got: Read[Any]) -> ApprovalAttemptRecord:
    """A vote whose payload does not read: recorded, refused, with the payload as it came."""
    return ApprovalAttemptRecord(
        action_id=field_text(args, "action_id") or "",
        action_digest=field_text(args, "action_digest", 64) or "",
        reviewer=field_text(args, "reviewer") or "(unreadable)",
        verdict=verdict,
        accepted=False,
        reason=f"unreadable: {got.problem}; payload: {got.raw}",
        signed=False,
        via=via,
    )


# --- expiry --------------------------------------------------------------------------------------------


def expire(policy: Policy, expired: Iterable[GateState], now: datetime) -> list[Event]:
    """Gates whose window closed: escalated where the policy says so (a fresh gate, votes reset),
    otherwise expired (the action is not published)."""
    events: list[Event] = []
    for state in expired:
        successor = escalate(policy, state.gate, now)
        if successor is None:
            state.status = "expired"
            events.append(GateExpired(action_id=state.gate.action_id, rule=state.gate.rule, result="rejected"))
            continue
        events.append(
            GateEscalated(
                action_id=state.gate.action_id,
                rule=state.gate.rule,
                to_roles=list(successor.roles),
                eligible=list(successor.eligible),
                expires_at=successor.expires_at,
            )
        )
        state.gate = successor
        state.approved_by = []
    return events


# --- exceptions ----------------------------------------------------------------------------------------


def judge_exception(
    policy: Policy, decision: ExceptionDecision, *, run_id: str, waiting: bool, expires_at: datetime | None
) -> tuple[AttemptOutcome, ExceptionDecided]:
    """Judge a person's decision on the exception the run waits on (``waiting``), and its evidence."""
    route = policy.exceptions
    allowed = policy.eligible(route.reviewers, route.roles) if route else set()
    if not waiting:
        outcome = AttemptOutcome(accepted=False, code="expired", reason="no exception is waiting for a decision")
    elif decision.reviewer not in allowed:
        outcome = AttemptOutcome(
            accepted=False,
            code="no_authority",
            reason=f"{decision.reviewer} may not decide exceptions (may: {', '.join(sorted(allowed))})",
        )
    elif decision.decision == "retry" and (
        problem := signed_act_problem(
            policy,
            "exception",
            decision.reviewer,
            decision.signature,
            exception_message(run_id, decision.decision, expires_at),
        )
    ):
        # Only "retry" moves the run on; "discard" ends it, so it is never refused for its signature.
        code = "signature_invalid" if decision.signature else "signature_missing"
        outcome = AttemptOutcome(accepted=False, code=code, reason=problem)
    else:
        outcome = AttemptOutcome(accepted=True, code="accepted", reason=f"{decision.reviewer}: {decision.decision}")
    event = ExceptionDecided(**decision.model_dump(), accepted=outcome.accepted, why=outcome.reason)
    return outcome, event


def unreadable_decision_event(args: Sequence[Any], got: Read[Any], outcome: AttemptOutcome) -> ExceptionDecided:
    return ExceptionDecided(
        reviewer=field_text(args, "reviewer") or "(unreadable)",
        decision=None,
        reason="",
        accepted=False,
        why=f"{outcome.reason}; payload: {got.raw}",
    )


# --- what waits ------------------------------------------------------------------------------------------


def pending(actions: Iterable[ActionState]) -> list[PendingAction]:
    """The actions still waiting for votes, with their gates, as the status query shows them."""
    return [
        PendingAction(
            action_id=s.action.action_id,
            target=s.action.target,
            record_id=s.action.record_id,
            fields=s.action.fields,
            digest=s.digest,
            gates=[
                GateView(
                    rule=g.gate.rule,
                    quorum=g.gate.quorum,
                    eligible=list(g.gate.eligible),
                    approved_by=list(g.approved_by),
                    expires_at=g.gate.expires_at,
                    signature_required=g.gate.signature_required,
                    status=g.status,
                    escalated=g.gate.escalated,
                    failed_checks=list(g.gate.failed_checks),
                )
                for g in s.gates
            ],
        )
        for s in actions
        if s.open
    ]
