"""A gate asked again: a write its limits' window refused at publish (another run wrote to the same group
after this one's approvals). Pure, as workflows/approvals.py is; the workflow records what it returns."""

from __future__ import annotations

from govflow.activities.evidence.events import Event, GateEscalated
from govflow.policies import Policy, RunContext, make_gate
from govflow.workflows.approvals import ActionState


def regate(policy: Policy, state: ActionState, rule: str, prior: str, ctx: RunContext, why: str) -> list[Event]:
    """A write refused at publish by its limits' window (another run wrote to the group since the gate was
    decided): the gate of ``rule`` asks again, with what the window holds now (``prior``) counted, so only
    people whose limit covers the total may approve it (votes reset, a fresh expiry). ``ctx`` is the
    action's (``action_context``)."""
    found = policy.rule(rule)
    targets = [g for g in state.gates if g.gate.rule == rule]
    if found is None or not targets:
        return []
    fresh = make_gate(policy, found, state.action, ctx.model_copy(update={"window_totals": {rule: prior}}),
                      digest=state.digest)  # fmt: skip
    for target in targets:
        target.gate, target.approved_by, target.status = fresh, [], "open"
    reason = f"asked again: {why}"
    if fresh.escalated:
        reason += f"; {fresh.amount} goes to {', '.join(fresh.roles) or ', '.join(fresh.eligible) or 'nobody'}"
    return [
        GateEscalated(action_id=state.action.action_id, rule=rule, to_roles=list(fresh.roles),
                      eligible=list(fresh.eligible), expires_at=fresh.expires_at, reason=reason)
    ]  # fmt: skip
