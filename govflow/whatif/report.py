"""Policy what-if over the evidence: what a candidate policy would have done to past runs and rollouts.

Reads a task's runs (and the rollouts that admitted them) from the evidence store, refuses to compute
over any chain that does not verify, then:

- re-decides every past proposed action under the candidate with the pure engine (the same
  ``decide`` a run calls, at the time the run decided, on the record as the run read it), and lists
  each action whose outcome would change, grouped;
- replays each rollout's outcome stream (every admitted run's ``run_finished`` report, in the order
  they finished, in the stage each ran in) through the candidate's gates and stop rules, with the
  same rules a rollout applies (workflows/rollout_rules.py), against what actually happened.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from govflow.activities.evidence.events import (
    BreachDetected,
    Paused,
    Promoted,
    RolledBack,
    RunReport,
)
from govflow.policies import (
    Decision,
    Gate,
    NeedsApproval,
    Policy,
    RunContext,
    decide,
    decision_rule,
    policy_digest,
)
from govflow.policies.standing import standing_problem
from govflow.whatif.collect import Evidence, PastAction, standing_votes, without_cyclic_gc
from govflow.workflows import rollout_rules as rules
from govflow.workflows.rollout_api import RolloutState

GROUPS = (
    "newly denied",
    "newly allowed",
    "newly automatic",
    "newly needs approval",
    "quorum raised",
    "quorum lowered",
    "reviewers lose authority",
    "reviewers gain authority",
    "approved by someone the data excludes",
    "approved above the approver's limit",
    "votes no longer count",
    "standing approval no longer holds",
    "signature newly required",
    "signature no longer required",
)
_RAISES = {"newly allowed", "newly automatic", "quorum lowered", "reviewers gain authority",
           "signature no longer required"}  # fmt: skip
"""Groups that raise exposure (more is written, or with less review); the others lower it."""


class ActionChange(BaseModel):
    run_id: str
    action_id: str
    target: str
    record_id: str | None
    group: str
    exposure: str = Field(description="raises or lowers")
    before: str
    after: str
    detail: str = ""


class RolloutReplay(BaseModel):
    rollout_id: str
    outcomes: int
    actual: list[str]
    candidate: list[str]
    actual_stop_run: str | None = None
    candidate_stop_run: str | None = None


class WhatIfReport(BaseModel):
    task: str
    version: str | None
    candidate: str
    candidate_digest: str
    runs: int
    actions: int
    verified_streams: int
    ran_under: dict[str, int]
    changes: list[ActionChange]
    rollouts: list[RolloutReplay]

    def by_group(self) -> dict[str, list[ActionChange]]:
        grouped: dict[str, list[ActionChange]] = {g: [] for g in GROUPS}
        for change in self.changes:
            grouped[change.group].append(change)
        return {g: c for g, c in grouped.items() if c}

    @property
    def changed_actions(self) -> int:
        return len({(c.run_id, c.action_id) for c in self.changes})


def _summary(kind: str, rule: str | None, gates: Sequence[Gate]) -> str:
    if kind == "needs_approval" and gates:
        return kind + " (" + "; ".join(f"{g.rule}: {g.quorum} of {len(g.eligible)}" for g in gates) + ")"
    return f"{kind} ({rule})" if rule else kind


def _new_summary(decision: Decision) -> str:
    if isinstance(decision, NeedsApproval):
        return _summary(decision.kind, None, decision.gates)
    return _summary(decision.kind, decision_rule(decision), [])


def redecide(candidate: Policy, past: PastAction) -> list[ActionChange]:
    """The candidate's decision on one past action, as the changes it makes (none: the same)."""
    ctx = RunContext(run_id=past.run.run_id, requester=past.run.requester, now=past.decided_at, record=past.record,
                     reads=past.reads)  # fmt: skip
    new = decide(candidate, past.action, ctx, digest=past.old.action_digest)
    old_gates = past.old.gates
    before = _summary(past.old.decision, past.old.rule, old_gates)
    after = _new_summary(new)

    def change(group: str, detail: str = "") -> ActionChange:
        return ActionChange(
            run_id=past.run.run_id, action_id=past.action.action_id, target=past.action.target,
            record_id=past.action.record_id, group=group, exposure="raises" if group in _RAISES else "lowers",
            before=before, after=after, detail=detail,
        )  # fmt: skip

    old_kind = past.old.decision
    if new.kind == old_kind == "deny" or (new.kind == old_kind == "allow"):
        return []
    if new.kind == "deny":
        return [change("newly denied", new.reason)]
    if old_kind == "deny":
        return [change("newly allowed", new.reason)]
    if old_kind == "needs_approval" and new.kind == "allow":
        return [change("newly automatic", f"written without review; before, {_votes(past)} approved it")]
    assert isinstance(new, NeedsApproval)
    if old_kind == "allow":
        return [change("newly needs approval", f"it was written without review; now {after}")]
    return _gate_changes(candidate, past, old_gates, new.gates, change)


def _votes(past: PastAction) -> str:
    return ", ".join(sorted({v.reviewer for v in past.votes})) or "nobody"


def _gate_changes(
    candidate: Policy, past: PastAction, old: Sequence[Gate], new: Sequence[Gate], change: Any
) -> list[ActionChange]:
    out: list[ActionChange] = []
    old_q, new_q = max((g.quorum for g in old), default=0), max((g.quorum for g in new), default=0)
    if new_q > old_q:
        out.append(change("quorum raised", f"{old_q} -> {new_q}"))
    elif new_q < old_q:
        out.append(change("quorum lowered", f"{old_q} -> {new_q}"))
    old_who = {p for g in old for p in g.eligible}
    new_who = {p for g in new for p in g.eligible}
    if old_who - new_who:
        out.append(change("reviewers lose authority", ", ".join(sorted(old_who - new_who))))
    if new_who - old_who:
        out.append(change("reviewers gain authority", ", ".join(sorted(new_who - old_who))))
    excluded = {p: why for g in new for p, why in g.excluded.items()}
    barred = sorted({v.reviewer for v in past.votes if v.reviewer in excluded})
    if barred:
        out.append(change("approved by someone the data excludes", "; ".join(f"{p}: {excluded[p]}" for p in barred)))
    over = {p: why for g in new for p, why in g.over_limit.items() if p not in g.eligible}
    above = sorted({v.reviewer for v in past.votes if v.reviewer in over})
    if above:
        out.append(change("approved above the approver's limit", "; ".join(f"{p} {over[p]}" for p in above)))
    # A standing approval approves the gate whole, by the grant's terms under the candidate: does the candidate
    # still decide the action by the grant's rule, allow grants there, and hold its granters to be a quorum?
    holding = False
    for grant_id in standing_votes(past):
        rule, granted_by = past.granted.get(grant_id, ("", []))
        problem = (
            standing_problem(candidate, rule, granted_by, [g.rule for g in new]) if rule else "its chain holds no terms"
        )
        if problem:
            out.append(change("standing approval no longer holds", f"grant {grant_id}: {problem}: would NOT have "
                              "been approved"))  # fmt: skip
        else:
            holding = True
    people = [v for v in past.votes if v.via != "grant"]
    sod = any(g.separation_of_duties for g in new)
    lost = sorted({v.reviewer for v in people
                   if v.reviewer not in new_who or (sod and v.reviewer == past.run.requester)})  # fmt: skip
    if lost:
        still = len({v.reviewer for v in people} - set(lost))
        verdict = "still approved" if still >= new_q or holding else "would NOT have been approved"
        out.append(change("votes no longer count", f"{', '.join(lost)}; {still} of {new_q} remain: {verdict}"))
    old_sig, new_sig = any(g.signature_required for g in old), any(g.signature_required for g in new)
    if new_sig and not old_sig:
        unsigned = sorted({v.reviewer for v in past.votes if not v.signed})
        out.append(change("signature newly required", f"unsigned votes: {', '.join(unsigned) or 'none'}"))
    elif old_sig and not new_sig:
        out.append(change("signature no longer required"))
    return out


# --- replaying rollouts ------------------------------------------------------------------------------------


def _actual(events: Iterable[Any]) -> tuple[list[str], str | None]:
    said: list[str] = []
    stop_run: str | None = None
    for e in events:
        if isinstance(e, BreachDetected):
            rules_ = ", ".join(v.rule for v in e.verdicts)
            said.append(f"breach at stage {e.stage} ({rules_}) -> {e.action}, at run {e.trigger}")
            stop_run = stop_run or e.trigger
        elif isinstance(e, Promoted | RolledBack):
            said.append(f"{e.kind.replace('_', ' ')} {e.from_stage} -> {e.to} ({e.reason})")
        elif isinstance(e, Paused):
            said.append(f"paused by {e.operator}")
    return said, stop_run


def replay(candidate: Policy, rollout_id: str, events: list[Any], reports: Sequence[RunReport]) -> RolloutReplay:
    """Feed a rollout's reports, in the order its runs finished, through the candidate's gates."""
    stages = {s.name: i for i, s in enumerate(candidate.rollout.stages)}
    state = RolloutState()
    current: str | None = None
    said: list[str] = []
    stop_run: str | None = None
    ready: set[str] = set()
    for n, report in enumerate(reports, 1):
        if report.stage != current:
            current = report.stage
            if current not in stages:
                said.append(f"stage {current} is not in the candidate: its runs are not replayed")
                continue
            rules.enter_stage(state, stages[current], datetime.min)
        if current not in stages:
            continue
        rules.count(candidate, state, report, sequential=True)
        # The anytime intervals are the costly part: computed only when a stop could trip, or while the
        # stage may still become ready to promote (the rollout computes them after every report).
        found = None
        if rules.may_stop(candidate, state, sequential=True):
            found = rules.verdicts(candidate, state, sequential=True)
            stopping = rules.stop(candidate, found)
            if stopping:
                action, tripped = stopping
                why = "; ".join(f"{v.rule}: {v.reason}" for v in tripped)
                said.append(f"would {action} at run {report.run_id} (outcome {n}, stage {current}): {why}")
                stop_run = report.run_id
                break
        last = state.stage_index >= len(candidate.rollout.stages) - 1
        if last or current in ready or state.runs_in_stage < rules.stage_of(candidate, state).min_runs:
            continue
        found = found or rules.verdicts(candidate, state, sequential=True)
        if rules.ready_to_promote(candidate, state, found, waiting=False):
            ready.add(current)
            said.append(f"would be ready to promote {current} at run {report.run_id} (outcome {n})")
    actual, actual_stop = _actual(events)
    return RolloutReplay(rollout_id=rollout_id, outcomes=len(reports), actual=actual or ["no breach, no stage change"],
                         candidate=said or ["no stop, no promotion"], actual_stop_run=actual_stop,
                         candidate_stop_run=stop_run)  # fmt: skip


# --- the whole report --------------------------------------------------------------------------------------


def whatif(candidate: Policy, evidence: Evidence, task: str, version: str | None) -> WhatIfReport:
    with without_cyclic_gc():
        return _whatif(candidate, evidence, task, version)


def _whatif(candidate: Policy, evidence: Evidence, task: str, version: str | None) -> WhatIfReport:
    changes = [c for past in evidence.actions for c in redecide(candidate, past)]
    rollout_of = {r.run_id: r.rollout_id for r in evidence.runs}
    finished: dict[str, list[tuple[datetime, str, RunReport]]] = {}
    for run_id, (at, report) in evidence.outcomes.items():
        rollout_id = rollout_of.get(run_id)
        if rollout_id is not None:
            finished.setdefault(rollout_id, []).append((at, run_id, report))
    replays = [
        replay(candidate, rollout_id, events, [r for _, _, r in sorted(finished.get(rollout_id, []))])
        for rollout_id, events in evidence.rollouts.items()
    ]
    return WhatIfReport(
        task=task, version=version, candidate=candidate.name, candidate_digest=policy_digest(candidate),
        runs=len(evidence.runs), actions=len(evidence.actions), verified_streams=evidence.verified,
        ran_under=dict(Counter(r.policy_digest for r in evidence.runs).most_common()), changes=changes,
        rollouts=replays,
    )  # fmt: skip


def render(report: WhatIfReport, *, markdown: bool = False, limit: int = 20) -> str:
    """The report in words: plain text for the terminal, or Markdown for the file."""
    h, li = ("## ", "- ") if markdown else ("", "  ")
    scope = f"{report.task}" + (f" v{report.version}" if report.version else "")
    lines = [
        ("# " if markdown else "") + f"What-if: policy {report.candidate} ({report.candidate_digest[:12]}) "
        f"over {report.runs} runs ({report.actions} actions) of {scope}",
        "",
        f"Evidence: all {report.verified_streams} chains read verify.",
        "Ran under: " + "; ".join(f"{d[:12]} ({n} runs)" for d, n in report.ran_under.items()),
        "",
        f"{h}Actions whose outcome would change: {report.changed_actions} of {report.actions}",
    ]
    for group, changes in report.by_group().items():
        lines += ["", f"{h}{group} ({len(changes)}, {changes[0].exposure} exposure)"]
        for c in changes[:limit]:
            detail = f": {c.detail}" if c.detail else ""
            lines.append(f"{li}run {c.run_id} {c.action_id} {c.target} {c.record_id or ''}: "
                         f"{c.before} -> {c.after}{detail}")  # fmt: skip
        if len(changes) > limit:
            lines.append(f"{li}... and {len(changes) - limit} more (all in the JSON)")
    lines += ["", f"{h}Rollouts replayed through the candidate's gates: {len(report.rollouts)}"]
    for r in report.rollouts:
        lines += ["", f"{h}{r.rollout_id} ({r.outcomes} outcomes)"]
        lines += [f"{li}actually: {a}" for a in r.actual]
        lines += [f"{li}candidate: {c}" for c in r.candidate]
    return "\n".join(lines) + "\n"
