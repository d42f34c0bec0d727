"""Limits counted over a window (``approval.limits.window``): what the window already holds for an action's
group is read before the decision (through an activity, recorded), so the gate asks for the authority
the total needs; and the write is held to it again at publish, under a lock on the group, so two runs
racing cannot both stay under it. Workflow code."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from govflow.activities.run_activities import RunActivities
    from govflow.activities.run_messages import WindowCheck, WindowTotal
    from govflow.policies import Action, Policy
    from govflow.policies.matching import rule_matches
    from govflow.workflows.approvals import ActionState
    from govflow.workflows.ledger import RETRY

_ACTIVITY = timedelta(seconds=30)


async def prior_totals(
    policy: Policy, actions: Iterable[Action], records: Mapping[tuple[str, str, str], Any], now: datetime
) -> dict[str, dict[str, str]]:
    """By action id, by rule: what each windowed rule's window already holds for the action's group."""
    out: dict[str, dict[str, str]] = {}
    for action in actions:
        record = records.get((action.system, action.resource, action.record_id or ""))
        for rule in policy.actions:
            limits = rule.approval.limits if rule.approval else None
            if limits is None or limits.window is None or not rule_matches(rule, action, record):
                continue
            value = action.fields.get(limits.window.by)
            if value is None:
                continue
            query = WindowTotal(system=action.system, resource=action.resource, amount_field=limits.field,
                                by=limits.window.by, value=str(value), since=now - limits.window.over)  # fmt: skip
            total = await workflow.execute_activity_method(
                RunActivities.window_total, query, start_to_close_timeout=_ACTIVITY, retry_policy=RETRY
            )
            out.setdefault(action.action_id, {})[rule.name] = total
    return out


def window_check(policy: Policy, state: ActionState, now: datetime) -> WindowCheck | None:
    """What the write of ``state`` is held to at publish: its first windowed gate's group, its amount, and
    the lowest limit among the people who approved it (None: no windowed gate, or approved by a grant)."""
    action = state.action
    for gate in state.gates:
        rule = policy.rule(gate.gate.rule)
        limits = rule.approval.limits if rule and rule.approval else None
        if limits is None or limits.window is None:
            continue
        people = [p for p in (policy.person(name) for name in gate.approved_by) if p is not None]
        value, amount = action.fields.get(limits.window.by), action.fields.get(limits.field)
        if not people or value is None or amount is None:
            return None
        return WindowCheck(
            system=action.system, resource=action.resource, amount_field=limits.field, by=limits.window.by,
            value=str(value), since=now - limits.window.over, amount=str(amount),
            cap=str(min(limits.of(p) for p in people)), currency=limits.currency, rule=gate.gate.rule,
        )  # fmt: skip
    return None
