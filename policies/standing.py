"""Standing approvals: the terms of a grant for a class of actions, and who may grant or revoke it.

Pure (the time comes in), like the engine. A standing approval lets the reviewers of one action rule
approve, in advance and within bounds, the actions of that rule that match some field values: at most
``max_uses`` of them, until ``expires_at``. Granting takes the rule's own quorum of distinct eligible
approvers, signed where the rule's votes must be; a rule may forbid grants (``approval.standing``), and
high-risk rules do unless they say otherwise. The run whose requester granted it is never approved by
it (separation of duties).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from govflow.policies.digest import canonical_json
from govflow.policies.engine import AttemptOutcome
from govflow.policies.model import Policy
from govflow.policies.signing import act_message, signature_problem

LONGEST = timedelta(days=30)
"""The longest a standing approval may run."""

Scalar = StrictBool | int | float | str


class GrantTerms(BaseModel):
    """What a standing approval covers: the task version, the rule, the field values, and its bounds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str = Field(min_length=1)
    task_version: str = Field(min_length=1)
    rule: str = Field(min_length=1)
    match: dict[str, Scalar]
    max_uses: int
    expires_at: datetime
    reason: str = Field(default="", max_length=500)


def terms_problem(policy: Policy, terms: GrantTerms, now: datetime) -> str | None:
    """Why these terms cannot be granted under ``policy``, or None."""
    rule = policy.rule(terms.rule)
    if rule is None:
        known = ", ".join(r.name for r in policy.actions if r.approval is not None) or "none"
        return f"policy {policy.name} has no action rule {terms.rule!r} (rules with approvals: {known})"
    if rule.approval is None:
        return f"rule {rule.name} asks for no approval: there is nothing to grant"
    if not rule.allows_standing:
        why = (
            " (high-risk rules do, unless their approval says standing: true)" if rule.approval.standing is None else ""
        )
        return f"rule {rule.name} forbids standing approvals{why}"
    if terms.max_uses < 1:
        return f"max uses must be at least 1, not {terms.max_uses}: a standing approval is bounded"
    if not terms.match:
        return "a standing approval needs a match on at least one field; one for every action of a rule is not bounded"
    if terms.expires_at <= now:
        return f"it would expire at {terms.expires_at.isoformat()}, which has passed"
    if terms.expires_at > now + LONGEST:
        return f"it would run until {terms.expires_at.isoformat()}: longer than {LONGEST.days} days"
    return None


def grant_message(grant_id: str, terms: GrantTerms) -> bytes:
    """What a granter signs: the grant and every term of it."""
    return act_message(
        "grant", grant_id, task=f"{terms.task} v{terms.task_version}", rule=terms.rule,
        match=canonical_json(terms.match).decode(), max_uses=str(terms.max_uses),
        expires_at=terms.expires_at.isoformat(),
    )  # fmt: skip


def judge_grant(
    policy: Policy, grant_id: str, terms: GrantTerms, person: str, signature: str | None, granted_by: list[str]
) -> AttemptOutcome:
    """One person's act of granting: authority for the rule, once each, signed where the rule's votes are."""
    rule = policy.rule(terms.rule)
    assert rule is not None
    assert rule.approval is not None
    eligible = policy.eligible(rule.approval.reviewers, rule.approval.roles)
    if person not in eligible:
        return AttemptOutcome(
            accepted=False, code="no_authority",
            reason=f"{person} may not approve rule {rule.name} (may: {', '.join(sorted(eligible))}), "
            "so may not grant a standing approval for it",
        )  # fmt: skip
    if person in granted_by:
        return AttemptOutcome(accepted=False, code="duplicate", reason=f"{person} has already granted {grant_id}")
    if rule.approval.signature_required or policy.signs("vote"):
        problem = signature_problem(policy, "grant", person, signature, grant_message(grant_id, terms))
        if problem:
            code = "signature_invalid" if signature else "signature_missing"
            return AttemptOutcome(accepted=False, code=code, reason=problem)
    have = len(granted_by) + 1
    return AttemptOutcome(
        accepted=True, code="accepted",
        reason=f"{person} granted {grant_id} ({have} of {rule.approval.quorum})",
    )  # fmt: skip


def quorum(policy: Policy, terms: GrantTerms) -> int:
    rule = policy.rule(terms.rule)
    return rule.approval.quorum if rule is not None and rule.approval is not None else 1


def may_revoke(policy: Policy, terms: GrantTerms, person: str) -> bool:
    """Anyone who could approve the rule may revoke a grant for it (it only takes authority away)."""
    rule = policy.rule(terms.rule)
    if rule is None or rule.approval is None:
        return False
    return person in policy.eligible(rule.approval.reviewers, rule.approval.roles)


def matches(match: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
    """Whether an action's fields hold every value a grant matches on."""
    return all(name in fields and fields[name] == value for name, value in match.items())


def standing_problem(
    policy: Policy, rule_name: str, granted_by: Sequence[str], decided_by: Sequence[str]
) -> str | None:
    """Why a standing approval for rule ``rule_name``, granted by ``granted_by``, would not approve an action
    that ``policy`` decides by the rules ``decided_by`` (its gates): None when it still would."""
    if rule_name not in decided_by:
        decided = ", ".join(decided_by) or "no rule"
        return f"the action is decided by {decided}, which a grant for rule {rule_name} does not cover"
    rule = policy.rule(rule_name)
    if rule is None or rule.approval is None:
        return f"rule {rule_name} asks for no approval under {policy.name}"
    if not rule.allows_standing:
        return f"rule {rule_name} forbids standing approvals under {policy.name}"
    eligible = policy.eligible(rule.approval.reviewers, rule.approval.roles)
    still = sorted(p for p in set(granted_by) if p in eligible)
    if len(still) < rule.approval.quorum:
        return (f"granted by {', '.join(sorted(set(granted_by))) or 'nobody'}; under {policy.name} "
                f"{len(still)} of them may grant rule {rule_name}, which needs {rule.approval.quorum}")  # fmt: skip
    return None
