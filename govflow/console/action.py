"""One action's page, from its run's evidence: what the task read, the change as a diff per field, what
the model answered, the scores, the rule that holds it and who voted how, the run's other actions,
earlier runs of the same item, and whether the run's chain verifies. And the page of the exception a run
waits on: the problem, what the task read and the model answered, the decisions so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence.events import (
    ApprovalAttemptRecord,
    ContextRead,
    ExceptionDecided,
    ExceptionRaised,
    ModelCall,
    PolicyDecisionRecord,
    ProposalMade,
    QualityScoreRecord,
    RunFinished,
    RunStarted,
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


@dataclass(frozen=True)
class EarlierRun:
    run_id: str
    task_version: str
    started_at: datetime
    requester: str
    mode: str
    outcome: str
    """How it ended (published, rejected, ...), or "running"."""
    written: int
    """Records it wrote (live)."""


@dataclass
class RunPage:
    """What both pages show of a run: what it read, what the model answered, its scores, its chain."""

    run_id: str
    started: RunStarted | None = None
    reads: list[dict[str, Any]] = field(default_factory=list)
    """Each record the task read: system, resource, record id, and its values as recorded."""
    context: dict[str, Any] = field(default_factory=dict)
    model_text: str = ""
    model: str = ""
    scores: list[QualityScoreRecord] = field(default_factory=list)
    finished: RunFinished | None = None
    checked: bool = False
    """Whether the chain was verified (and earlier runs read) for this page: not on the answer to an act,
    which shows the run's verdict as fast as it can; every page opened does both."""
    verifies: bool = False
    chain_problem: str = ""
    earlier: list[EarlierRun] = field(default_factory=list)


@dataclass
class ActionPage(RunPage):
    action: Action | None = None
    decision: PolicyDecisionRecord | None = None
    changes: list[FieldChange] = field(default_factory=list)
    votes: list[ApprovalAttemptRecord] = field(default_factory=list)
    others: list[PolicyDecisionRecord] = field(default_factory=list)

    @property
    def gate(self) -> Any:
        gates = self.decision.gates if self.decision else []
        return gates[0] if gates else None


@dataclass
class ExceptionPage(RunPage):
    raised: ExceptionRaised | None = None
    decisions: list[ExceptionDecided] = field(default_factory=list)
    waiting: bool = False
    """Whether the run still waits on it (no accepted decision, not expired, the run not finished)."""


_EARLIER = """
SELECT r.run_id, r.task_version, r.started_at, r.requester, r.mode,
       (SELECT e.payload->>'outcome' FROM evidence_events e WHERE e.stream = 'run' AND e.stream_id = r.run_id
          AND e.kind = 'run_finished' LIMIT 1) AS outcome,
       (SELECT count(*) FROM touched_records t WHERE t.run_id = r.run_id AND t.mode = 'live') AS written
FROM runs r WHERE r.task = $1 AND r.item_key = $2 AND r.run_id <> $3
ORDER BY r.started_at DESC LIMIT 10
"""


async def _run(store: EvidenceStore, page: RunPage, check: bool) -> list[Any]:
    """Fill what both pages show (with ``check``, the chain verified and earlier runs); returns the run's
    events (an AccountError when it has none)."""
    rows = await store.events("run", page.run_id)
    if not rows:
        raise AccountError(
            f"there is no run {page.run_id} (or none of its evidence is written yet: reload in a moment)"
        )
    events = [parse_event(e["kind"], e["payload"]) for e in rows]
    page.started = next((e for e in events if isinstance(e, RunStarted)), None)
    read = next((e for e in events if isinstance(e, ContextRead)), None)
    if read is not None:
        page.context = read.context
        page.reads = [r.model_dump(mode="json") for r in read.reads]
    call = next((e for e in reversed(events) if isinstance(e, ModelCall)), None)
    if call is not None:
        page.model_text, page.model = call.text, call.model
    page.scores = [e for e in events if isinstance(e, QualityScoreRecord)]
    page.finished = next((e for e in events if isinstance(e, RunFinished)), None)
    if not check:
        return events
    page.checked = True
    report = await store.verify("run", page.run_id)
    page.verifies = report.ok
    page.chain_problem = "" if report.ok else str(report.problems[0]) if report.problems else "does not verify"
    if page.started is not None:
        found = await store.pool.fetch(_EARLIER, page.started.task, page.started.item_key, page.run_id)
        page.earlier = [
            EarlierRun(run_id=r["run_id"], task_version=r["task_version"], started_at=r["started_at"],
                       requester=r["requester"], mode=r["mode"], outcome=r["outcome"] or "running",
                       written=int(r["written"]))
            for r in found
        ]  # fmt: skip
    return events


async def action_page(store: EvidenceStore, run_id: str, action_id: str, check: bool = True) -> ActionPage:
    """The page of ``action_id`` in ``run_id``; an AccountError naming what is missing when there is none."""
    page = ActionPage(run_id=run_id)
    events = await _run(store, page, check)
    proposal = next((e for e in events if isinstance(e, ProposalMade)), None)
    action = next((a for a in (proposal.actions if proposal else []) if a.action_id == action_id), None)
    decision = next((e for e in events if isinstance(e, PolicyDecisionRecord) and e.action_id == action_id), None)
    if action is None or decision is None:
        raise AccountError(f"run {run_id} has no decided action {action_id}")
    page.action, page.decision = action, decision
    record = next(
        (r for r in page.reads if (r["system"], r["resource"], r["record_id"]) ==
         (action.system, action.resource, action.record_id or "")), None,
    )  # fmt: skip
    before: dict[str, Any] = (record or {}).get("values") or {}
    page.changes = [FieldChange(name, before.get(name), value) for name, value in action.fields.items()]
    page.votes = [e for e in events if isinstance(e, ApprovalAttemptRecord) and e.action_id == action_id]
    page.others = [e for e in events if isinstance(e, PolicyDecisionRecord) and e.action_id != action_id]
    return page


async def exception_page(store: EvidenceStore, run_id: str, check: bool = True) -> ExceptionPage:
    """The page of the exception ``run_id`` raised last; an AccountError when it raised none."""
    page = ExceptionPage(run_id=run_id)
    events = await _run(store, page, check)
    at = next((i for i in range(len(events) - 1, -1, -1) if isinstance(events[i], ExceptionRaised)), None)
    if at is None:
        raise AccountError(f"run {run_id} raised no exception")
    raised = events[at]
    assert isinstance(raised, ExceptionRaised)
    after = events[at + 1 :]
    page.raised = raised
    page.decisions = [e for e in after if isinstance(e, ExceptionDecided)]
    ended = any(d.accepted for d in page.decisions) or any(
        e.kind in ("exception_expired", "run_finished") for e in after
    )
    page.waiting = raised.route is not None and not ended
    return page
