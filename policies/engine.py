"""The policy engine: decide an action, and check one approval attempt against a gate.

Pure functions of their arguments (time comes in through :class:`RunContext`
and :class:`ApprovalAttempt`), so workflows can call them deterministically.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from govflow.policies.actions import Action, RunContext
from govflow.policies.authority import covered, not_by, within_limits
from govflow.policies.gates import HoldFailed
from govflow.policies.matching import rule_matches
from govflow.policies.model import ActionRule, Escalation, Policy
from govflow.policies.scope import check_scope, record_images
from govflow.policies.signing import (
    vote_signature_problem,
)
from govflow.policies.terms import WRITE_OPERATIONS, Risk


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Gate(_Frozen):
    """One approval an action waits for: who, how many, until when, signed or not."""

    rule: str
    action_id: str
    action_digest: str
    requester: str
    eligible: tuple[str, ...] = Field(description="Everyone who may approve, resolved from roles.")
    reviewers: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    quorum: int
    separation_of_duties: bool
    expires_at: datetime
    on_expiry: Literal["reject"] | Escalation
    signature_required: bool
    escalated: bool = False
    risk: Risk | None = Field(default=None, description="The rule's risk (gates recorded before it carried none).")
    passkey: bool = Field(default=False, description="A passkey in the reviewer console may sign its approvals.")
    excluded: dict[str, str] = Field(
        default_factory=dict,
        description="Who may not approve by the data (approval.not_by), with why: the field and its value.",
    )
    unchecked: tuple[str, ...] = Field(
        default=(),
        description="What clears nobody to approve: a not_by field the run read no record of, an "
        "amount the limits cannot read.",
    )
    over_limit: dict[str, str] = Field(
        default_factory=dict, description="Who the rule names but whose limit the amount is above, with why."
    )
    amount: str = Field(default="", description="The amount the limits were read against, with its currency.")
    failed_checks: tuple[str, ...] = Field(
        default=(), description="The run's failed quality checks, shown to whoever approves (quality.hold_failed)."
    )
    total: str = Field(default="", description="That amount as a decimal (the action's, with its window's).")


class Allow(_Frozen):
    kind: Literal["allow"] = "allow"
    rules: tuple[str, ...] = ()
    reason: str


class NeedsApproval(_Frozen):
    kind: Literal["needs_approval"] = "needs_approval"
    gates: tuple[Gate, ...] = Field(min_length=1)
    reason: str

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(g.rule for g in self.gates)


class Deny(_Frozen):
    kind: Literal["deny"] = "deny"
    rule: str
    reason: str


Decision = Annotated[Allow | NeedsApproval | Deny, Field(discriminator="kind")]


def decision_rule(decision: Allow | NeedsApproval | Deny) -> str | None:
    """The rule behind a decision as evidence records it: the denying rule, or the comma-joined rules
    that allow or gate it; None for a read in scope that no rule names."""
    return decision.rule if isinstance(decision, Deny) else ",".join(decision.rules) or None


def decide(policy: Policy, action: Action, ctx: RunContext, *, digest: str | None = None) -> Decision:
    """Allow, NeedsApproval (the gates) or Deny (the rule and the reason).

    ``digest``: the action's digest where the caller knows it already (what-if, over recorded
    decisions); computed here otherwise, once however many gates bind to it.

    Order: the scope grants first (outside them, nothing is allowed); then every
    matching action rule applies and the strictest wins (deny, then approval);
    a write that no rule covers is denied.
    """
    for image in record_images(action.operation, ctx.record, action.fields):
        scope = check_scope(policy, action.system, action.resource, action.operation, action.fields, image)
        if not scope.allowed:
            return Deny(rule="scope", reason=scope.reason)

    if (
        action.operation == "update"
        and ctx.record is not None
        and action.fields
        and all(k in ctx.record and ctx.record[k] == v for k, v in action.fields.items())
    ):
        return Allow(
            reason=f"{action.target} {action.record_id} changes nothing: the record holds these values already"
        )
    matching = [r for r in policy.actions if rule_matches(r, action, ctx.record)]
    for rule in matching:
        if rule.deny is not None:
            return Deny(rule=rule.name, reason=rule.deny)
    approving = [rule for rule in matching if rule.approval is not None]
    hold = policy.quality.hold_failed if ctx.failed_checks and action.operation in WRITE_OPERATIONS else None
    bound = (digest or action.digest()) if approving or hold else ""
    gates = tuple(make_gate(policy, rule, action, ctx, digest=bound) for rule in approving)
    if hold is not None:
        gates = tuple(g.model_copy(update={"failed_checks": ctx.failed_checks}) for g in gates)
        gates = gates or (_hold_gate(policy, hold, action, ctx, bound),)
    if gates:
        need = "; ".join(f"{rule_label(g)} (rule {g.rule}, until {g.expires_at.isoformat()})" for g in gates)
        data = [f"not {p}: {why}" for g in gates for p, why in g.excluded.items()]
        if hold is not None:
            data.append(f"the run's quality checks failed, shown to the approver: {'; '.join(ctx.failed_checks)}")
        data += [f"over their limit: {', '.join(g.over_limit)} ({g.amount})" for g in gates if g.over_limit]
        data += [
            f"{g.amount}: fewer than {g.quorum} of the people rule {g.rule} names may approve it within their "
            f"limits: it goes to "
            f"{', '.join(g.roles) or ', '.join(g.eligible) or 'nobody'}"
            for g in gates if g.escalated
        ]  # fmt: skip
        data += [
            f"quorum {g.quorum} cannot be met: only {', '.join(g.eligible) or 'nobody'} may approve it"
            for g in gates
            if len(set(g.eligible) - set(g.excluded) - ({g.requester} if g.separation_of_duties else set())) < g.quorum
        ]
        data += [f"nobody can be cleared ({u})" for g in gates for u in g.unchecked]
        return NeedsApproval(gates=gates, reason=f"{action.target} needs {need}" + "".join(f"; {d}" for d in data))
    if not matching and action.operation in WRITE_OPERATIONS:
        return Deny(
            rule="no-rule",
            reason=f"no action rule covers {action.target}: every write needs a rule",
        )
    names = tuple(r.name for r in matching)
    return Allow(
        rules=names,
        reason=f"{scope.reason}; " + (f"rules {', '.join(names)} allow it" if names else "a read"),
    )


def _hold_gate(policy: Policy, hold: HoldFailed, action: Action, ctx: RunContext, digest: str) -> Gate:
    """The gate of a write no rule gates, in a run whose quality checks failed (quality.hold_failed)."""
    return Gate(
        rule=FAILED_CHECKS, action_id=action.action_id, action_digest=digest, requester=ctx.requester,
        eligible=tuple(sorted(policy.eligible(hold.reviewers, hold.roles))), reviewers=hold.reviewers,
        roles=hold.roles, quorum=hold.quorum, separation_of_duties=True, expires_at=ctx.now + hold.expires_after,
        on_expiry="reject", signature_required=policy.signs("vote"), passkey=policy.passkey_signs("vote"),
        failed_checks=ctx.failed_checks,
    )  # fmt: skip


FAILED_CHECKS = "failed-quality-checks"
"""The rule name of a gate quality.hold_failed adds to a write no rule gates."""


def rule_label(gate: Gate) -> str:
    who = [*gate.reviewers, *(f"role {r}" for r in gate.roles)]
    signed = " signed" if gate.signature_required else ""
    return f"{gate.quorum}{signed} approval(s) from {' or '.join(who)}"


def make_gate(policy: Policy, rule: ActionRule, action: Action, ctx: RunContext, *, digest: str | None = None) -> Gate:
    approval = rule.approval
    assert approval is not None
    excluded, unchecked = not_by(approval.not_by, action, ctx)
    named = policy.eligible(approval.reviewers, approval.roles)
    requester = ctx.requester if approval.separation_of_duties else ""
    prior = ctx.window_totals.get(rule.name, "0")
    limited = within_limits(policy, approval.limits, action, named, requester, prior, approval.quorum)
    return Gate(
        rule=rule.name,
        action_id=action.action_id,
        action_digest=digest or action.digest(),
        requester=ctx.requester,
        eligible=tuple(sorted(limited.eligible)),
        reviewers=approval.reviewers if not limited.escalated else (),
        roles=approval.roles if not limited.escalated else limited.roles,
        quorum=approval.quorum,
        separation_of_duties=approval.separation_of_duties,
        expires_at=ctx.now + approval.expires_after,
        on_expiry=approval.on_expiry,
        signature_required=approval.signature_required or policy.signs("vote"),
        risk=rule.risk,
        passkey=policy.passkey_signs("vote"),
        excluded=excluded,
        unchecked=(*unchecked, *limited.unchecked),
        over_limit=limited.over_limit,
        amount=limited.amount,
        total=limited.total,
        escalated=limited.escalated,
    )


def escalate(policy: Policy, gate: Gate, now: datetime) -> Gate | None:
    """The gate that replaces an expired one, or None when expiry rejects (fail closed)."""
    if gate.escalated or gate.on_expiry == "reject":
        return None
    esc = gate.on_expiry
    assert isinstance(esc, Escalation)
    rule = policy.rule(gate.rule)
    limits = rule.approval.limits if rule is not None and rule.approval is not None else None
    eligible, over = covered(policy, limits, policy.members(esc.to_role), gate.total)
    return gate.model_copy(
        update={
            "eligible": tuple(sorted(eligible)),
            "over_limit": {**gate.over_limit, **over},
            "reviewers": (),
            "roles": (esc.to_role,),
            "expires_at": now + esc.expires_after,
            "on_expiry": "reject",
            "escalated": True,
        }
    )


# --- approval attempts ------------------------------------------------------------------------


class ApprovalAttempt(_Frozen):
    """One reviewer's vote on one action, as a signal or update carries it."""

    reviewer: str = Field(min_length=1)
    verdict: Literal["approve", "reject"]
    action_digest: str = Field(min_length=1)
    at: datetime
    signature: str | None = Field(default=None, description="base64 Ed25519 signature")
    reason: str = ""
    passkey: bool = Field(default=False, description="Signed with a passkey (checked before: passkey_problem).")
    passkey_problem: str | None = Field(default=None, description="Why the passkey's assertion does not hold.")


RefusalCode = Literal[
    "unknown_reviewer",
    "stale_digest",
    "expired",
    "no_authority",
    "separation_of_duties",
    "duplicate",
    "signature_missing",
    "signature_invalid",
    "closed",
    "unreadable",
]


class AttemptOutcome(_Frozen):
    accepted: bool
    code: Literal["accepted"] | RefusalCode
    reason: str


def _refuse(code: RefusalCode, reason: str) -> AttemptOutcome:
    return AttemptOutcome(accepted=False, code=code, reason=reason)


def check_attempt(
    policy: Policy,
    gate: Gate,
    attempt: ApprovalAttempt,
    *,
    run_id: str,
    approved_by: Iterable[str] = (),
) -> AttemptOutcome:
    """Accept or refuse one attempt. ``approved_by`` are the gate's accepted approvers so far.

    A reject reduces exposure, so it is accepted from any reviewer in the
    policy's directory while the gate is open; an approval must pass every check.
    """
    person = policy.person(attempt.reviewer)
    if person is None:
        return _refuse("unknown_reviewer", f"{attempt.reviewer!r} is not in the policy's reviewers directory")
    if attempt.at >= gate.expires_at:
        return _refuse(
            "expired",
            f"the gate closed at {gate.expires_at.isoformat()}; the vote came at {attempt.at.isoformat()}",
        )
    if attempt.passkey and attempt.passkey_problem:  # a passkey that does not hold is refused, whatever the verdict
        return _refuse("signature_invalid", attempt.passkey_problem)
    if attempt.verdict == "reject":
        return AttemptOutcome(accepted=True, code="accepted", reason=f"{person.id} rejected {gate.action_id}")
    if attempt.action_digest != gate.action_digest:
        return _refuse(
            "stale_digest",
            f"the vote is for action digest {attempt.action_digest[:12]}, but the action "
            f"waiting is {gate.action_digest[:12]}: review the current action",
        )
    if person.id in gate.over_limit and person.id not in gate.eligible:
        return _refuse(
            "no_authority", f"{person.id} may not approve this under rule {gate.rule}: {gate.over_limit[person.id]}"
        )
    if person.id not in gate.eligible:
        who = ", ".join(gate.eligible) or "nobody"
        return _refuse(
            "no_authority",
            f"{person.id} may not approve under rule {gate.rule} (may approve: {who})",
        )
    if gate.separation_of_duties and person.id == gate.requester:
        return _refuse(
            "separation_of_duties",
            f"{person.id} requested this run and cannot approve its actions (separation of duties)",
        )
    if person.id in gate.excluded:
        return _refuse(
            "separation_of_duties",
            f"{person.id} may not approve under rule {gate.rule}: {gate.excluded[person.id]} (separation of duties)",
        )
    if gate.unchecked:
        return _refuse(
            "separation_of_duties",
            f"rule {gate.rule} cannot clear anyone to approve: {'; '.join(gate.unchecked)}",
        )
    if person.id in set(approved_by):
        return _refuse("duplicate", f"{person.id} has already approved {gate.action_id}")
    if gate.signature_required:
        problem = _method_problem(policy, gate, attempt)
        if problem:
            return problem
        if not attempt.passkey:
            found = vote_signature_problem(
                person.public_key, attempt.reviewer, attempt.signature, attempt.action_digest, attempt.verdict, run_id
            )
            if found:
                return _refuse("signature_invalid", found)
    return AttemptOutcome(accepted=True, code="accepted", reason=f"{person.id} approved under rule {gate.rule}")


def _method_problem(policy: Policy, gate: Gate, attempt: ApprovalAttempt) -> AttemptOutcome | None:
    """A signed approval made the way the policy does not take for votes (identity.passkey, passkey_only)."""
    by_passkey, by_key = policy.passkey_signs("vote"), policy.key_signs("vote")
    if attempt.passkey and not by_passkey:
        return _refuse("signature_invalid", f"rule {gate.rule}'s approvals are signed with Ed25519 keys, not passkeys")
    if attempt.passkey:
        return None
    if attempt.signature and not by_key:
        return _refuse(
            "signature_missing",
            f"rule {gate.rule} requires an approval signed with your passkey in the reviewer console "
            "(identity.passkey_only: an Ed25519 key file does not do)",
        )
    if not attempt.signature:
        how = {
            (True, True): "your passkey in the reviewer console, or an Ed25519 key (the CLI's --key)",
            (True, False): "your passkey in the reviewer console (identity.passkey_only)",
        }.get((by_passkey, by_key), "an Ed25519 key (the CLI's --key)")
        return _refuse("signature_missing", f"rule {gate.rule} requires a signed approval: sign it with {how}")
    return None


def quorum_met(gate: Gate, approved_by: Iterable[str]) -> bool:
    """Met when at least ``quorum`` distinct eligible reviewers approved."""
    distinct = set(approved_by) & set(gate.eligible)
    if gate.separation_of_duties:
        distinct.discard(gate.requester)
    return len(distinct) >= gate.quorum
