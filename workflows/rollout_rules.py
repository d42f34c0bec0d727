"""What a rollout decides: admissions, leases, the gates' verdicts, stops, promotions, operators' authority.

Pure (no Temporal): the workflow applies these to its state, records the evidence and shows it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from govflow.activities.evidence.records import Mode
from govflow.activities.rollout_messages import AdmitRequest
from govflow.policies import Policy, WindowCounts, WindowVerdict, evaluate_window, signed_act_problem
from govflow.policies.gates import Stage, WindowRule
from govflow.policies.stats import cusum_limit, evaluate_sequential, observe
from govflow.workflows.rollout_api import (
    AdmittedRun,
    Control,
    LeaseRequest,
    RollbackRequest,
    RolloutState,
    RolloutStatus,
    RunReport,
    control_message,
    restore_message,
)


def bucket(item_key: str) -> float:
    """A stable number in [0, 1) for an item: the same item always lands the same way in a stage."""
    return int(hashlib.sha256(item_key.encode()).hexdigest()[:16], 16) / float(1 << 64)


def report_value(rule: WindowRule, report: RunReport) -> float | None:
    """What one run says for a rule: 1.0 or 0.0 for a rate's hit, the score for mean_score (None if absent)."""
    if rule.metric == "mean_score":
        return report.scores.get(rule.score or "")
    if rule.metric == "pass_rate":
        return float(report.checks_passed and not report.error)
    if rule.metric == "override_rate":
        return float(report.overridden)
    return float(report.error)


def window_counts(rule: WindowRule, reports: list[RunReport]) -> WindowCounts:
    recent = reports[-rule.window :]
    if rule.metric == "mean_score":
        scores = [r.scores[rule.score] for r in recent if rule.score in r.scores]
        return WindowCounts(n=len(scores), total=sum(scores), total_sq=sum(x * x for x in scores))
    if rule.metric == "pass_rate":
        hits = sum(1 for r in recent if r.checks_passed and not r.error)
    elif rule.metric == "override_rate":
        hits = sum(1 for r in recent if r.overridden)
    else:
        hits = sum(1 for r in recent if r.error)
    return WindowCounts(n=len(recent), successes=hits)


# --- what a rollout decides, on its state (pure: the workflow applies, records and shows) ------------------

ADMITTED_LIMIT = 15_000
"""Admitted runs kept waiting for their outcome (~80 bytes each in the continue-as-new input, whose
payload limit is 2 MB); past this the oldest is forgotten and its report will be refused."""


def stage_of(policy: Policy, state: RolloutState) -> Stage:
    return policy.rollout.stages[state.stage_index]


def verdicts(policy: Policy, state: RolloutState, *, sequential: bool) -> list[WindowVerdict]:
    """Each quality rule's verdict on the stage so far (cusum rules on the whole stage, window rules on
    the last runs; before sequential-gates every rule was a window)."""
    return [
        evaluate_sequential(rule, state.gates.get(rule.name, WindowCounts()))
        if sequential and rule.method == "cusum"
        else evaluate_window(rule, window_counts(rule, state.window))
        for rule in policy.quality.window
    ]


def may_stop(policy: Policy, state: RolloutState, *, sequential: bool) -> bool:
    """Whether a stop rule could trip now, judged without the anytime intervals (cheap): a cusum rule
    at its limit, or any rule on a sliding window. False means :func:`stop` would say no stop."""
    stops = {s.when for s in policy.stop_rules}
    for rule in policy.quality.window:
        if rule.name not in stops:
            continue
        if not (sequential and rule.method == "cusum"):
            return True
        if state.gates.get(rule.name, WindowCounts()).cusum >= cusum_limit(rule):
            return True
    return False


def stop(policy: Policy, found: list[WindowVerdict]) -> tuple[Literal["pause", "rollback"], list[WindowVerdict]] | None:
    """The stop rules' answer to a breach: the action, and the verdicts that tripped it (None: no stop)."""
    stops = {s.when: s.action for s in policy.stop_rules}
    tripped = [v for v in found if v.status == "breach" and v.rule in stops]
    if not tripped:
        return None
    return ("rollback" if any(stops[v.rule] == "rollback" for v in tripped) else "pause"), tripped


def ready_to_promote(policy: Policy, state: RolloutState, found: list[WindowVerdict], *, waiting: bool) -> bool:
    """Whether the stage may move on: not the last, enough runs, its minimum duration passed (not
    ``waiting``), and every rule passing (inconclusive holds; it never promotes)."""
    stage = stage_of(policy, state)
    if state.stage_index >= len(policy.rollout.stages) - 1 or state.runs_in_stage < stage.min_runs or waiting:
        return False
    return all(v.status == "pass" for v in found)


def enter_stage(state: RolloutState, index: int, now: datetime) -> None:
    state.stage_index = index
    state.stage_started_at = now
    state.window = []
    state.gates = {}
    state.runs_in_stage = 0
    state.promotion_requested = False
    state.control_seq += 1


def admit(state: RolloutState, stage: Stage, request: AdmitRequest) -> Mode:
    """Admit a run: live by a stable hash of its item when it asks for live and the stage is (partly)
    live and not paused; remembered until its outcome is counted."""
    live = request.requested == "live" and not state.paused and bucket(request.item_key) < stage.live_fraction
    mode: Mode = "live" if live else "shadow"
    state.admitted.pop(request.run_id, None)
    state.admitted[request.run_id] = AdmittedRun(stage=stage.name, mode=mode)
    while len(state.admitted) > ADMITTED_LIMIT:
        del state.admitted[next(iter(state.admitted))]
    return mode


def lease_refusal(state: RolloutState, stage: Stage, request: LeaseRequest, *, admissions: bool) -> str | None:
    """Why a live write may not go ahead now (None: it may). ``admissions``: the run must have been
    admitted live to this stage by this rollout (every rollout since evidence-v2)."""
    admitted = state.admitted.get(request.run_id)
    if state.paused:
        return f"rollout is paused: {state.pause_reason}"
    if request.stage != stage.name:
        return f"the run was admitted to stage {request.stage}, the rollout is now at {stage.name}"
    if stage.live_fraction == 0.0:
        return f"stage {stage.name} is shadow: nothing is published"
    if admissions and (admitted is None or admitted.mode != "live" or admitted.stage != stage.name):
        return f"run {request.run_id} was not admitted live to {stage.name} by this rollout"
    return None


def count(policy: Policy, state: RolloutState, report: RunReport, *, sequential: bool) -> bool:
    """Count a finished run's report into its stage's gates; False when it is of another stage."""
    if report.stage != stage_of(policy, state).name:
        return False  # a run of an earlier stage says nothing about this one
    state.window.append(report)
    if sequential:
        for rule in policy.quality.window:
            value = report_value(rule, report)
            if rule.method == "cusum" and value is not None:
                state.gates[rule.name] = observe(rule, state.gates.get(rule.name, WindowCounts()), value)
    keep = max((r.window for r in policy.quality.window), default=1)
    del state.window[:-keep]
    state.runs_in_stage += 1
    return True


def authorities(policy: Policy) -> set[str]:
    """Who may resume: every stage's promoters."""
    return set(policy.rollout.resumers)


def restorers(policy: Policy) -> set[str]:
    """Who may undo a rollout's live writes: ``rollout.restore_by`` (people, and roles' members), else whoever
    may resume."""
    named = policy.rollout.restore_by
    if not named:
        return authorities(policy)
    role_ids = {r.id for r in policy.reviewers.roles}
    return policy.eligible(tuple(n for n in named if n not in role_ids), tuple(n for n in named if n in role_ids))


def restore_refusal(policy: Policy, state: RolloutState, request: RollbackRequest, rollout_id: str) -> str | None:
    """Why undoing the rollout's live writes is refused (None: it may go ahead): authority, and a signature
    where the policy requires ``restore`` signed. Checked against the stage the request was signed at."""
    allowed = restorers(policy)
    if request.operator not in allowed:
        return f"{request.operator} may not undo live writes (may: {', '.join(sorted(allowed)) or 'nobody'})"
    message = restore_message(rollout_id, stage_of(policy, state).name, state.control_seq, request.since)
    return signed_act_problem(policy, "restore", request.operator, request.signature, message)


def control_refusal(
    policy: Policy, state: RolloutState, command: Literal["resume", "promote"], control: Control, rollout_id: str
) -> str | None:
    """Why an operator's resume or promote is refused (None: accepted): authority, signature where the
    policy requires one, and for a promote a paused rollout or the last stage."""
    stage = stage_of(policy, state)
    allowed = authorities(policy) if command == "resume" else set(stage.promoters) or authorities(policy)
    if control.operator not in allowed:
        what = "resume" if command == "resume" else f"promote {stage.name}"
        return f"{control.operator} may not {what} (may: {', '.join(sorted(allowed))})"
    message = control_message(command, rollout_id, stage.name, state.control_seq)
    if problem := signed_act_problem(policy, command, control.operator, control.signature, message):
        return problem
    if command == "promote" and state.paused:
        return "the rollout is paused: resume it first"
    if command == "promote" and state.stage_index >= len(policy.rollout.stages) - 1:
        return f"{stage.name} is the last stage"
    return None


def status(
    policy: Policy, task: str, task_version: str, state: RolloutState, found: list[WindowVerdict]
) -> RolloutStatus:
    """What the ``status`` query answers: stage, window figures, pause, last breach, leases, reports."""
    stage = stage_of(policy, state)
    return RolloutStatus(
        task=task, task_version=task_version, stage=stage.name, stage_index=state.stage_index,
        live_fraction=stage.live_fraction, paused=state.paused, pause_reason=state.pause_reason,
        runs_in_stage=state.runs_in_stage, verdicts=found, last_breach=state.last_breach,
        promotion_requested=state.promotion_requested, leases_granted=state.leases_granted,
        leases_refused=state.leases_refused, runs_in_flight=len(state.admitted), reports_refused=state.reports_refused,
        control_seq=state.control_seq,
    )  # fmt: skip
