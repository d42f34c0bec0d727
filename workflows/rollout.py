"""RolloutWorkflow: stages, the quality window, publish authority, pause and rollback.

One per (task, version), long-running. Live runs lease publish authority from it
right before they write; a paused rollout refuses. Runs report their outcome; each
report updates the stage's window, and the policy's statistics decide: promote,
hold (inconclusive), or stop (pause or roll back) at once, recording the figures.
govflow's pause is workflow state, not Temporal's server-side pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.run_models import DataRollback, PolicyRequest, RecordRolloutEvidence, RestoredRecord, RunSetup
    from policies import Policy, WindowCounts, WindowVerdict, evaluate_window, policy_from_json
    from policies.model import Stage, WindowRule
    from workflows import search_attributes as sa
    from workflows.closing import settle
    from workflows.rollout_models import (
        Admission,
        Breach,
        Control,
        ControlAnswer,
        LeaseRequest,
        RollbackRequest,
        RolloutInput,
        RolloutState,
        RolloutStatus,
        RunReport,
    )

_LOCAL = timedelta(seconds=30)
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


def bucket(item_key: str) -> float:
    """A stable number in [0, 1) for an item: the same item always lands the same way in a stage."""
    return int(hashlib.sha256(item_key.encode()).hexdigest()[:16], 16) / float(1 << 64)


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


@workflow.defn(name="Rollout")
class RolloutWorkflow:
    """Operators: signal ``pause`` / ``rollback`` (anyone) or ``resume`` / ``promote`` (named
    promoters), each with ``{"operator": "<you>", "reason": "..."}``."""

    @workflow.init
    def __init__(self, inp: RolloutInput) -> None:
        self._inp = inp
        self._state = inp.state.model_copy(deep=True) if inp.state else RolloutState()
        self._policy: Policy | None = None
        self._lock = asyncio.Lock()
        self._dirty = False
        self._ready = False
        self._attributes: tuple[str, bool] | None = None
        self._chain_continues = False
        self._fresh_window = False
        self._careful_handover = False

    # --- main loop ----------------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: RolloutInput) -> None:
        # Patches are read here, in the first activation, and hold for the whole run: a patched()
        # first called after a local activity that outlived its workflow task misreplays (measured).
        self._chain_continues = workflow.patched("rollout-chain-continues")
        self._fresh_window = workflow.patched("resume-fresh-window")
        self._careful_handover = workflow.patched("careful-continue-as-new")
        # A continued rollout evaluates what it carried over at once.
        self._dirty = self._careful_handover and inp.state is not None
        setup = await workflow.execute_local_activity(
            "govflow.load_policy",
            PolicyRequest(task=inp.task, task_version=inp.task_version),
            result_type=RunSetup,
            start_to_close_timeout=_LOCAL,
            retry_policy=_RETRY,
        )
        self._policy = policy_from_json(setup.policy_json)
        if self._state.stage_started_at is None:
            if self._chain_continues:
                # A rollout started again under the same id (after it was terminated) continues its chain.
                self._state.evidence_seq = await workflow.execute_local_activity(
                    "govflow.rollout_next_seq",
                    workflow.info().workflow_id,
                    result_type=int,
                    start_to_close_timeout=_LOCAL,
                    retry_policy=_RETRY,
                )
            self._state.stage_started_at = workflow.now()
            await self._record(
                "rollout_started",
                {"task": inp.task, "task_version": inp.task_version, "policy_digest": setup.policy_digest,
                 "stage": self._stage.name},
            )  # fmt: skip
        self._ready = True  # handlers wait for this: the policy is loaded and the chain opened
        self._show()
        while True:
            if self._dirty:
                self._dirty = False
                await self._evaluate()
            info = workflow.info()
            if info.is_continue_as_new_suggested() or info.get_current_history_length() > inp.history_limit:
                if self._careful_handover:
                    await settle(lambda: self._state.evidence_seq)
                else:
                    await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(inp.model_copy(update={"state": self._state}))
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._dirty, timeout=self._until_minimum())
            if not self._dirty:
                self._dirty = True  # the stage's minimum duration passed: evaluate again

    def _until_minimum(self) -> timedelta | None:
        stage = self._stage
        started = self._state.stage_started_at
        if stage.min_duration is None or started is None:
            return None
        left = started + stage.min_duration - workflow.now()
        return left if left > timedelta(0) else None

    @property
    def _stage(self) -> Stage:
        assert self._policy is not None
        return self._policy.rollout.stages[self._state.stage_index]

    def _verdicts(self) -> list[WindowVerdict]:
        assert self._policy is not None
        return [evaluate_window(rule, window_counts(rule, self._state.window)) for rule in self._policy.quality.window]

    async def _evaluate(self) -> None:
        assert self._policy is not None
        state, stage = self._state, self._stage
        if state.paused:
            return
        verdicts = self._verdicts()
        stops = {s.when: s.action for s in self._policy.stop_rules}
        tripped = [v for v in verdicts if v.status == "breach" and v.rule in stops]
        if tripped:
            action = "rollback" if any(stops[v.rule] == "rollback" for v in tripped) else "pause"
            state.last_breach = Breach(stage=stage.name, action=action, verdicts=tripped, at=workflow.now())
            if action == "pause":
                state.paused = True
                state.pause_reason = "; ".join(f"{v.rule} breached: {v.reason}" for v in tripped)
            await self._record(
                "breach",
                {"stage": stage.name, "action": action, "verdicts": [v.model_dump(mode="json") for v in tripped],
                 "leases_granted": state.leases_granted, "trigger": state.window[-1].run_id if state.window else None},
            )  # fmt: skip
            if action == "rollback":
                await self._move(max(0, state.stage_index - 1), "rollback", "stop rule: " + tripped[0].rule)
            self._show()
            return
        last = len(self._policy.rollout.stages) - 1
        if state.stage_index >= last or state.runs_in_stage < stage.min_runs or self._until_minimum() is not None:
            self._show()
            return
        if any(v.status != "pass" for v in verdicts):
            self._show()  # inconclusive holds; it never promotes
            return
        if "approval" in stage.gate:
            if not state.promotion_requested:
                state.promotion_requested = True
                await self._record("promotion_requested", {"stage": stage.name, "promoters": list(stage.promoters)})
            self._show()
            return
        await self._move(state.stage_index + 1, "promoted", "automatic gate passed")

    async def _move(self, index: int, kind: str, reason: str) -> None:
        state = self._state
        before = self._stage.name
        state.stage_index = index
        state.stage_started_at = workflow.now()
        state.window = []
        state.runs_in_stage = 0
        state.promotion_requested = False
        await self._record(kind, {"from": before, "to": self._stage.name, "reason": reason})
        self._show()

    # --- evidence ---------------------------------------------------------------------------------------

    async def _record(self, kind: str, payload: dict[str, object]) -> None:
        async with self._lock:
            seq = self._state.evidence_seq
            self._state.evidence_seq = await workflow.execute_local_activity(
                "govflow.record_rollout_evidence",
                RecordRolloutEvidence(
                    rollout_id=workflow.info().workflow_id,
                    task=self._inp.task,
                    task_version=self._inp.task_version,
                    seq=seq,
                    at=workflow.now(),
                    kind=kind,
                    payload=payload,
                ),
                result_type=int,
                start_to_close_timeout=_LOCAL,
                retry_policy=_RETRY,
            )

    # --- runs ---------------------------------------------------------------------------------------------

    @workflow.query(description="Where an item would run now: {stage, mode, live_fraction}")
    def admit(self, item_key: str) -> Admission:
        if not self._ready:
            raise RuntimeError("the rollout is starting; ask again in a moment")
        stage = self._stage
        live = not self._state.paused and bucket(item_key) < stage.live_fraction
        return Admission(stage=stage.name, mode="live" if live else "shadow", live_fraction=stage.live_fraction)

    @workflow.update(description="A live run asks for publish authority right before it writes")
    async def lease(self, request: LeaseRequest) -> ControlAnswer:
        await workflow.wait_condition(lambda: self._ready)
        state, stage = self._state, self._stage
        if state.paused:
            reason = f"rollout is paused: {state.pause_reason}"
        elif request.stage != stage.name:
            reason = f"the run was admitted to stage {request.stage}, the rollout is now at {stage.name}"
        elif stage.live_fraction == 0.0:
            reason = f"stage {stage.name} is shadow: nothing is published"
        else:
            state.leases_granted += 1
            return ControlAnswer(accepted=True, reason=f"lease for {request.run_id}", stage=stage.name, paused=False)
        state.leases_refused += 1
        return ControlAnswer(accepted=False, reason=reason, stage=stage.name, paused=state.paused)

    @workflow.signal(description="A finished run's outcome (sent by GovernedRun)")
    async def report(self, report: RunReport) -> None:
        await workflow.wait_condition(lambda: self._ready)
        if report.stage != self._stage.name:
            return  # a run of an earlier stage says nothing about this one
        self._state.window.append(report)
        assert self._policy is not None
        keep = max((r.window for r in self._policy.quality.window), default=1)
        del self._state.window[:-keep]
        self._state.runs_in_stage += 1
        self._dirty = True

    # --- operators ------------------------------------------------------------------------------------------

    def _authorities(self) -> set[str]:
        assert self._policy is not None
        return {p for s in self._policy.rollout.stages for p in s.promoters}

    def _answer(self, accepted: bool, reason: str) -> ControlAnswer:
        return ControlAnswer(accepted=accepted, reason=reason, stage=self._stage.name, paused=self._state.paused)

    async def _pause(self, control: Control, via: str) -> ControlAnswer:
        await workflow.wait_condition(lambda: self._ready)
        if not self._state.paused:
            self._state.paused = True
            self._state.pause_reason = f"paused by {control.operator}: {control.reason}".rstrip(": ")
            self._show()
        await self._record("paused", {"operator": control.operator, "reason": control.reason, "via": via})
        return self._answer(True, self._state.pause_reason)

    async def _resume(self, control: Control, via: str) -> ControlAnswer:
        await workflow.wait_condition(lambda: self._ready)
        if control.operator not in self._authorities():
            answer = self._answer(
                False, f"{control.operator} may not resume (may: {', '.join(sorted(self._authorities()))})"
            )
        else:
            self._state.paused = False
            self._state.pause_reason = ""
            reason = f"resumed by {control.operator}"
            if self._fresh_window:
                # A fresh window: the runs that tripped the pause would only trip it again at once.
                self._state.window = []
                reason += "; the quality window starts afresh"
            self._dirty = True
            answer = self._answer(True, reason)
        await self._record(
            "resume", {"operator": control.operator, "accepted": answer.accepted, "reason": answer.reason, "via": via}
        )
        self._show()
        return answer

    async def _promote(self, control: Control, via: str) -> ControlAnswer:
        await workflow.wait_condition(lambda: self._ready)
        assert self._policy is not None
        allowed = set(self._stage.promoters) or self._authorities()
        if control.operator not in allowed:
            answer = self._answer(
                False, f"{control.operator} may not promote {self._stage.name} (may: {', '.join(sorted(allowed))})"
            )
        elif self._state.paused:
            answer = self._answer(False, "the rollout is paused: resume it first")
        elif self._state.stage_index >= len(self._policy.rollout.stages) - 1:
            answer = self._answer(False, f"{self._stage.name} is the last stage")
        else:
            await self._move(self._state.stage_index + 1, "promoted", f"promoted by {control.operator}")
            answer = self._answer(True, f"promoted to {self._stage.name} by {control.operator}")
        if not answer.accepted:
            await self._record("promote_refused", {"operator": control.operator, "reason": answer.reason, "via": via})
        return answer

    async def _rollback(self, request: RollbackRequest, via: str) -> ControlAnswer:
        await workflow.wait_condition(lambda: self._ready)
        target = 0 if request.to == "shadow" else max(0, self._state.stage_index - 1)
        await self._move(target, "rollback", f"rolled back by {request.operator}: {request.reason}".rstrip(": "))
        if not request.data:
            return self._answer(True, f"rolled back to {self._stage.name}")
        results = await workflow.execute_activity(
            "govflow.rollback_data",
            DataRollback(
                rollout_id=workflow.info().workflow_id, task=self._inp.task, task_version=self._inp.task_version,
                since=request.since,
            ),
            result_type=list[RestoredRecord],
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=_RETRY,
        )  # fmt: skip
        for r in results:
            kind = "data_conflict" if r.outcome == "conflict" else "data_restored"
            await self._record(kind, r.model_dump(mode="json"))
        restored = sum(r.outcome == "restored" for r in results)
        conflicts = sum(r.outcome == "conflict" for r in results)
        return self._answer(
            True, f"rolled back to {self._stage.name}; {restored} records restored, {conflicts} conflicts for review"
        )

    @workflow.signal(description='Pause: live writes stop at once. {"operator": "omar", "reason": "..."}')
    async def pause(self, control: Control) -> None:
        await self._pause(control, "signal")

    @workflow.signal(description='Resume (named promoters only): {"operator": "omar", "reason": "..."}')
    async def resume(self, control: Control) -> None:
        await self._resume(control, "signal")

    @workflow.signal(description='Promote to the next stage (named promoters only): {"operator": "omar"}')
    async def promote(self, control: Control) -> None:
        await self._promote(control, "signal")

    @workflow.signal(description='Roll back: {"operator": "omar", "to": "previous" or "shadow", "reason": "..."}')
    async def rollback(self, request: RollbackRequest) -> None:
        await self._rollback(request, "signal")

    @workflow.update(description="Pause, with the answer (CLI)")
    async def pause_update(self, control: Control) -> ControlAnswer:
        return await self._pause(control, "update")

    @workflow.update(description="Resume, with the answer (CLI)")
    async def resume_update(self, control: Control) -> ControlAnswer:
        return await self._resume(control, "update")

    @workflow.update(description="Promote, with the answer (CLI)")
    async def promote_update(self, control: Control) -> ControlAnswer:
        return await self._promote(control, "update")

    @workflow.update(description="Roll back, with the answer (CLI)")
    async def rollback_update(self, request: RollbackRequest) -> ControlAnswer:
        return await self._rollback(request, "update")

    @workflow.query(description="Stage, live fraction, window figures, pause, last breach, pending promotion")
    def status(self) -> RolloutStatus:
        if not self._ready:
            raise RuntimeError("the rollout is starting; ask again in a moment")
        state, stage = self._state, self._stage
        return RolloutStatus(
            task=self._inp.task,
            task_version=self._inp.task_version,
            stage=stage.name,
            stage_index=state.stage_index,
            live_fraction=stage.live_fraction,
            paused=state.paused,
            pause_reason=state.pause_reason,
            runs_in_stage=state.runs_in_stage,
            verdicts=self._verdicts(),
            last_breach=state.last_breach,
            promotion_requested=state.promotion_requested,
            leases_granted=state.leases_granted,
            leases_refused=state.leases_refused,
        )

    # --- what operators see ------------------------------------------------------------------------------------

    def _show(self) -> None:
        if self._policy is None:
            return
        state, stage = self._state, self._stage
        # Only on change: every upsert is a history event, and _show runs on every report.
        shown = (stage.name, state.paused)
        if shown != self._attributes:
            self._attributes = shown
            workflow.upsert_search_attributes(
                [sa.TASK.value_set(self._inp.task), sa.STAGE.value_set(stage.name), sa.PAUSED.value_set(state.paused)]
            )
        lines = [
            f"**{self._inp.task} v{self._inp.task_version}** · stage **{stage.name}** "
            f"({stage.live_fraction:.0%} live) · {state.runs_in_stage} runs in stage",
            "",
            f"**PAUSED**: {state.pause_reason}" if state.paused else "Running.",
            "",
            "| rule | status | n | estimate | interval | threshold |",
            "|---|---|---|---|---|---|",
        ]
        for v in self._verdicts():
            est = f"{v.estimate:.3f}" if v.estimate is not None else "-"
            interval = f"[{v.low:.3f}, {v.high:.3f}]" if v.low is not None and v.high is not None else "-"
            lines.append(f"| {v.rule} | {v.status} | {v.n} | {est} | {interval} | {v.threshold} |")
        if state.last_breach:
            b = state.last_breach
            lines += [
                "",
                f"Last breach at {b.at.isoformat()} in {b.stage}: {b.action} ({', '.join(v.rule for v in b.verdicts)})",
            ]
        if state.promotion_requested:
            lines += ["", f"Promotion waits for: {', '.join(stage.promoters)} (Signal `promote`)"]
        lines += [
            "",
            'Signals: `pause` / `rollback` (anyone), `resume` / `promote` (promoters): `{"operator": "<you>"}`',
        ]
        workflow.set_current_details("\n".join(lines))
