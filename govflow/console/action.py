"""One action's page, from its run's evidence: what the task read, the change as a diff per field, what
the model answered, the scores, the rule that holds it and who voted how, the run's other actions, and
whether the run's chain verifies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence.events import (
    ApprovalAttemptRecord,
    ContextRead,
    ModelCall,
    PolicyDecisionRecord,
    ProposalMade,
    QualityScoreRecord,
    RunFinished,
    parse_event,
)
from govflow.console.accounts import AccountError
from govflow.policies import Action

REDACTED = "[redacted]"


@dataclass(frozen=True)
class FieldChange:
    name: str
    before: Any
    after: Any

    @property
    def changed(self) -> bool:
        return bool(self.before != self.after)


@dataclass
class ActionPage:
    run_id: str
    action: Action
    decision: PolicyDecisionRecord
    reads: list[dict[str, Any]] = field(default_factory=list)
    """Each record the task read: system, resource, record id, and its values as recorded."""
    context: dict[str, Any] = field(default_factory=dict)
    changes: list[FieldChange] = field(default_factory=list)
    model_text: str = ""
    model: str = ""
    scores: list[QualityScoreRecord] = field(default_factory=list)
    votes: list[ApprovalAttemptRecord] = field(default_factory=list)
    others: list[PolicyDecisionRecord] = field(default_factory=list)
    finished: RunFinished | None = None
    verifies: bool = False
    chain_problem: str = ""

    @property
    def gate(self) -> Any:
        gates = self.decision.gates
        return gates[0] if gates else None


async def action_page(store: EvidenceStore, run_id: str, action_id: str) -> ActionPage:
    """The page of ``action_id`` in ``run_id``; an AccountError naming what is missing when there is none."""
    events = [parse_event(e["kind"], e["payload"]) for e in await store.events("run", run_id)]
    proposal = next((e for e in events if isinstance(e, ProposalMade)), None)
    action = next((a for a in (proposal.actions if proposal else []) if a.action_id == action_id), None)
    decision = next((e for e in events if isinstance(e, PolicyDecisionRecord) and e.action_id == action_id), None)
    if action is None or decision is None:
        raise AccountError(f"run {run_id} has no decided action {action_id}")
    page = ActionPage(run_id=run_id, action=action, decision=decision)
    read = next((e for e in events if isinstance(e, ContextRead)), None)
    if read is not None:
        page.context = read.context
        page.reads = [r.model_dump(mode="json") for r in read.reads]
    record = next(
        (r for r in page.reads if (r["system"], r["resource"], r["record_id"]) ==
         (action.system, action.resource, action.record_id or "")), None,
    )  # fmt: skip
    before: dict[str, Any] = (record or {}).get("values") or {}
    page.changes = [FieldChange(name, before.get(name), value) for name, value in action.fields.items()]
    call = next((e for e in events if isinstance(e, ModelCall)), None)
    if call is not None:
        page.model_text, page.model = call.text, call.model
    page.scores = [e for e in events if isinstance(e, QualityScoreRecord)]
    page.votes = [e for e in events if isinstance(e, ApprovalAttemptRecord) and e.action_id == action_id]
    page.others = [e for e in events if isinstance(e, PolicyDecisionRecord) and e.action_id != action_id]
    page.finished = next((e for e in events if isinstance(e, RunFinished)), None)
    report = await store.verify("run", run_id)
    page.verifies = report.ok
    page.chain_problem = "" if report.ok else str(report.problems[0]) if report.problems else "does not verify"
    return page
