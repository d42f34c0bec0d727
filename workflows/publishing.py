"""What a governed run writes, and how it ends: its actions' outcomes, its report to the rollout, its
last evidence row. Pure, as workflows/approvals.py is: the workflow records what these return.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from govflow.activities.connectors.guard import ReadLog
from govflow.activities.evidence.events import ActionStatus, RunFinished, RunReport, TouchedRecord
from govflow.activities.evidence.records import Mode
from govflow.activities.run_messages import Written
from govflow.policies import Action
from govflow.workflows.approvals import ActionState
from govflow.workflows.run_api import ActionOutcome, Outcome

Slot = ActionOutcome | ActionState
"""One action at publish time, in the proposal's order: its outcome already, or a live write to make."""


def plan(run_id: str, actions: Iterable[ActionState], reads: Iterable[ReadLog], *, live: bool
         ) -> tuple[list[Slot], list[TouchedRecord]]:  # fmt: skip
    """What publishing does with each action: a live run writes what was approved (the rest ends
    unapproved); a shadow run records what it would have written (the touched records returned)."""
    reads = list(reads)
    slots: list[Slot] = []
    shadowed: list[TouchedRecord] = []
    for state in actions:
        if not state.approved and live:
            slots.append(unapproved(state))
        elif state.action.operation == "read":
            continue
        elif not live:
            touched = shadow_write(run_id, state.action, reads)
            shadowed.append(touched)
            slots.append(would_write(state, touched))
        else:
            slots.append(state)
    return slots, shadowed


def published(slots: Sequence[Slot], written_: Sequence[Written]) -> list[ActionOutcome]:
    """The outcomes once the writes return: each planned write written, up to the first refused (the
    publish attempts nothing after it)."""
    by_id = {w.action_id: w for w in written_}
    outcomes: list[ActionOutcome] = []
    for slot in slots:
        if isinstance(slot, ActionOutcome):
            outcomes.append(slot)
        elif slot.action.action_id in by_id:
            w = by_id[slot.action.action_id]
            outcomes.append(written(slot, w.before, w.after))
        else:
            break
    return outcomes


def shadow_write(run_id: str, action: Action, reads: Iterable[ReadLog]) -> TouchedRecord:
    """What a shadow run would have written: the record as read, and as the action would leave it."""
    by_record = {(r.system, r.resource, r.record_id): r.values for r in reads}
    before = by_record.get((action.system, action.resource, action.record_id or ""))
    after = None if action.operation == "delete" else {**(before or {}), **action.fields}
    return TouchedRecord(
        action_id=action.action_id, system=action.system, resource=action.resource,
        record_id=action.record_id or "", operation=action.operation, mode="shadow",
        idempotency_key=f"{run_id}:{action.action_id}", before_image=before, after_image=after,
    )  # fmt: skip


def unapproved(state: ActionState) -> ActionOutcome:
    """A live action that ends without its approval: rejected by a reviewer, or expired."""
    status, why = ("expired", "approval expired") if state.expired else ("rejected", "rejected by a reviewer")
    return _outcome(state, status, reason=why)


def would_write(state: ActionState, touched: TouchedRecord) -> ActionOutcome:
    """A shadow run's action: what it would have written (``shadow_write``), and the approval it would need."""
    why = "" if state.approved else f"would need approval: {state.reason}"
    return _outcome(state, "would_write", reason=why, before=touched.before_image, after=touched.after_image)


def written(
    state: ActionState, before: dict[str, Any] | None = None, after: dict[str, Any] | None = None
) -> ActionOutcome:
    return _outcome(state, "written", before=before, after=after)


def _outcome(state: ActionState, status: str, **rest: Any) -> ActionOutcome:
    a = state.action
    return ActionOutcome(action_id=a.action_id, target=a.target, decision=state.decision, status=status, **rest)


def outcome_of(mode: str, outcomes: Sequence[ActionOutcome]) -> Outcome:
    if mode == "shadow":
        return "shadowed"
    if all(o.status == "written" for o in outcomes):
        return "published"
    return "partial" if any(o.status == "written" for o in outcomes) else "rejected"


def run_report(
    run_id: str, stage: str, mode: Mode, outcome: Outcome, outcomes: Sequence[ActionOutcome],
    checks_passed: bool, scores: Mapping[str, float],
) -> RunReport:  # fmt: skip
    """What a finished run tells its rollout's gates."""
    overridden = any(o.status == "rejected" for o in outcomes)
    return RunReport(run_id=run_id, stage=stage, mode=mode, checks_passed=checks_passed, scores=dict(scores),
                     overridden=overridden, error=outcome == "exception")  # fmt: skip


def finished_event(outcome: Outcome, outcomes: Sequence[ActionOutcome], reason: str,
                   report: RunReport | None) -> RunFinished:  # fmt: skip
    actions = [ActionStatus(action_id=o.action_id, status=o.status) for o in outcomes]
    return RunFinished(outcome=outcome, reason=reason, actions=actions, report=report)
