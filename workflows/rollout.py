"""RolloutWorkflow: stages, the quality window, publish authority, pause and rollback.

One per (task, version), long-running. Live runs lease publish authority from it
right before they write; a paused rollout refuses. Runs report their outcome; each
report updates the stage's window, and the policy's statistics decide: promote,
hold (inconclusive), or stop (pause or roll back) at once, recording the figures.
govflow's pause is workflow state, not Temporal's server-side pause.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from govflow.activities import names
    from govflow.activities.evidence import events as ev
    from govflow.activities.rollout_activities import RolloutActivities
    from govflow.activities.rollout_messages import AdmitRequest, OutcomeRequest, PolicyRequest, RunAdmission
    from govflow.policies import Policy, WindowVerdict, policy_from_json
    from govflow.policies.gates import Stage
    from govflow.workflows import handlers
    from govflow.workflows import rollout_rules as rules
    from govflow.workflows import search_attributes as sa
    from govflow.workflows.closing import settle
    from govflow.workflows.details import rollout_details
    from govflow.workflows.inputs import field_text, read
    from govflow.workflows.ledger import EVIDENCE_RETRY, LOCAL, RETRY, RolloutLedger
    from govflow.workflows.rollout_api import (
        Admission,
        Breach,
        ControlAnswer,
        LeaseRequest,
        ReportPoke,
        RolloutInput,
        RolloutState,
        RolloutStatus,
        RunReport,
    )
    from govflow.workflows.rollout_controls import OperatorControls
    from govflow.workflows.rollout_rules import bucket

_READ = timedelta(seconds=60)


@workflow.defn(name=names.ROLLOUT)
class RolloutWorkflow(OperatorControls):
    """Operators: signal ``pause`` / ``rollback`` (anyone) or ``resume`` / ``promote`` (named
    promoters), each with ``{"operator": "<you>", "reason": "..."}``."""

    @workflow.init
    def __init__(self, inp: RolloutInput) -> None:
        self._inp = inp
        self._state = inp.state.model_copy(deep=True) if inp.state else RolloutState()
        self._policy: Policy | None = None
        self._ledger = RolloutLedger(workflow.info().workflow_id, inp.task, inp.task_version, self._state)
        self._dirty = False
        self._ready = False
        self._attributes: tuple[str, bool] | None = None
        self._chain_continues = False
        self._fresh_window = False
        self._careful_handover = False
        self._v2 = False
        self._sequential = False
        self._to_count: list[str] = []
        self._local = False

    # --- main loop ----------------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: RolloutInput) -> None:
        # Patches are read here, in the first activation, and hold for the whole run: a patched()
        # first called after a local activity that outlived its workflow task misreplays (measured).
        self._chain_continues = workflow.patched("rollout-chain-continues")
        self._fresh_window = workflow.patched("resume-fresh-window")
        self._careful_handover = workflow.patched("careful-continue-as-new")
        # evidence-v2: rows appended by activities (identical on any retry), outcomes counted only from
        # the evidence of runs this rollout admitted, every input read as untrusted.
        self._v2 = self._ledger.v2 = workflow.patched("evidence-v2")
        # sequential-gates: rules with method cusum (the default) judge the whole stage with statistics
        # valid under continuous monitoring; before this patch every rule was a sliding window.
        self._sequential = workflow.patched("sequential-gates")
        # pause-fence: a pause takes the Postgres fence (waiting for every live write in progress) before
        # it is recorded, and a resume releases it; see migration 0004 and RunActivities.publish.
        self._ledger.fenced = workflow.patched("pause-fence")
        # local-fence: the outcomes of reported runs are read, and the fence set, by local activities in the
        # rollout's own task, not behind the runs' activities in the task queue (bench.pause_latency). Both
        # are safe to repeat: a read, and a fence set to what the rollout's state says.
        self._local = self._ledger.local = workflow.patched("local-fence")
        # backtest-gate: a policy's rollout.backtest is checked before the rollout starts (below).
        backtest_gate = workflow.patched("backtest-gate")
        # A continued rollout evaluates what it carried over at once.
        self._dirty = self._careful_handover and inp.state is not None
        setup = await workflow.execute_local_activity_method(
            RolloutActivities.load_policy,
            PolicyRequest(task=inp.task, task_version=inp.task_version),
            start_to_close_timeout=LOCAL,
            retry_policy=RETRY,
        )
        self._policy = policy_from_json(setup.policy_text())
        if self._state.stage_started_at is None:
            if self._chain_continues:
                # A rollout started again under the same id (after it was terminated) continues its chain.
                self._state.evidence_seq = await workflow.execute_local_activity_method(
                    RolloutActivities.rollout_next_seq,
                    workflow.info().workflow_id,
                    start_to_close_timeout=LOCAL,
                    retry_policy=RETRY,
                )
            if workflow.patched("fence-reset-at-start"):
                # A rollout started again under the same id starts unpaused, in its first stage: its fence
                # must say so too, or a pause of the run that was terminated would refuse every live write.
                await self._ledger.set_fence(False)
            relied = None
            if backtest_gate and self._policy.rollout.backtest is not None:
                found = await workflow.execute_local_activity_method(
                    RolloutActivities.find_backtest, PolicyRequest(task=inp.task, task_version=inp.task_version),
                    start_to_close_timeout=LOCAL, retry_policy=RETRY,
                )  # fmt: skip
                if found.refusal:
                    refused = ev.RolloutRefused(task=inp.task, task_version=inp.task_version,
                                                policy_digest=setup.policy_digest, reason=found.refusal)  # fmt: skip
                    await self._record(refused)
                    return
                relied = found.stream_id
            self._state.stage_started_at = workflow.now()
            await self._record(ev.RolloutStarted(task=inp.task, task_version=inp.task_version, backtest=relied,
                                              policy_digest=setup.policy_digest, stage=self._stage.name))  # fmt: skip
        self._ready = True  # handlers wait for this: the policy is loaded and the chain opened
        self._show()
        while True:
            if self._dirty:
                self._dirty = False
                await self._count_reports()
                await self._evaluate()
            info = workflow.info()
            if info.is_continue_as_new_suggested() or info.get_current_history_length() > inp.history_limit:
                if self._v2:
                    # Nothing to settle (every evidence row is an activity whose input history holds);
                    # reports still waiting to be counted are counted here, not carried over.
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    if self._to_count:
                        self._dirty = True
                        continue
                elif self._careful_handover:
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
    def policy(self) -> Policy:
        assert self._policy is not None, "the policy is loaded before anything reads it"
        return self._policy

    @property
    def _stage(self) -> Stage:
        return rules.stage_of(self.policy, self._state)

    def _verdicts(self) -> list[WindowVerdict]:
        return rules.verdicts(self.policy, self._state, sequential=self._sequential)

    async def _evaluate(self) -> None:
        state, stage = self._state, self._stage
        if state.paused:
            return
        verdicts = self._verdicts()
        stopping = rules.stop(self.policy, verdicts)
        if stopping:
            action, tripped = stopping
            state.last_breach = Breach(stage=stage.name, action=action, verdicts=tripped, at=workflow.now())
            if action == "pause":
                state.paused = True
                state.control_seq += 1
                state.pause_reason = "; ".join(f"{v.rule} breached: {v.reason}" for v in tripped)
                await self._ledger.set_fence(True)
            trigger = state.window[-1].run_id if state.window else None
            await self._record(ev.BreachDetected(stage=stage.name, action=action, verdicts=tripped,
                                              leases_granted=state.leases_granted, trigger=trigger))  # fmt: skip
            if action == "rollback":
                await self._move(max(0, state.stage_index - 1), "rollback", "stop rule: " + tripped[0].rule)
            self._show()
            return
        if not rules.ready_to_promote(self.policy, state, verdicts, waiting=self._until_minimum() is not None):
            self._show()
            return
        if "approval" in stage.gate:
            if not state.promotion_requested:
                state.promotion_requested = True
                await self._record(ev.PromotionRequested(stage=stage.name, promoters=list(stage.promoters)))
            self._show()
            return
        await self._move(state.stage_index + 1, "promoted", "automatic gate passed")

    async def _move(self, index: int, kind: str, reason: str) -> None:
        state = self._state
        before = self._stage.name
        rules.enter_stage(state, index, workflow.now())
        if kind == "rollback":
            # Like a pause: the writes of the stage being left finish before the rollback is recorded.
            await self._ledger.set_fence(True)
        change = ev.RolledBack if kind == "rollback" else ev.Promoted
        await self._record(change(from_stage=before, to=self._stage.name, reason=reason))
        if kind == "rollback" and not state.paused:
            await self._ledger.set_fence(False)
        self._show()

    # --- evidence ---------------------------------------------------------------------------------------

    async def _record(self, event: ev.Event) -> None:
        await self._ledger.record(event)

    # --- runs ---------------------------------------------------------------------------------------------

    @workflow.query(name=names.ADMIT, description="Where an item would run now: {stage, mode, live_fraction}")
    def admit(self, item_key: str) -> Admission:
        if not self._ready:
            raise RuntimeError("the rollout is starting; ask again in a moment")
        stage = self._stage
        live = not self._state.paused and bucket(item_key) < stage.live_fraction
        return Admission(stage=stage.name, mode="live" if live else "shadow", live_fraction=stage.live_fraction)

    @handlers.update(name=names.ADMIT_RUN, description="A run asks how it may run (sent by the govflow worker)")
    async def admit_run(self, *args: Any) -> RunAdmission:
        await workflow.wait_condition(lambda: self._ready)
        got = read(AdmitRequest, args, '{"run_id": "...", "item_key": "...", "requested": "live"}')
        stage = self._stage
        if got.value is None:
            return RunAdmission(rollout_id=workflow.info().workflow_id, stage=stage.name, mode="shadow",
                                reason=f"unreadable admission request: {got.problem}")  # fmt: skip
        mode = rules.admit(self._state, stage, got.value)
        return RunAdmission(rollout_id=workflow.info().workflow_id, stage=stage.name, mode=mode)

    @handlers.update(name=names.LEASE, description="A live run asks for publish authority right before it writes")
    async def lease(self, *args: Any) -> ControlAnswer:
        await workflow.wait_condition(lambda: self._ready)
        got = read(LeaseRequest, args, '{"run_id": "...", "stage": "canary"}')
        state, stage = self._state, self._stage
        if got.value is None:
            reason: str | None = f"unreadable lease request: {got.problem}"
        else:
            reason = rules.lease_refusal(state, stage, got.value, admissions=self._v2)
        if reason is None and got.value is not None:
            state.leases_granted += 1
            return ControlAnswer(accepted=True, reason=f"lease for {got.value.run_id}", stage=stage.name, paused=False,
                                 epoch=state.fence_epoch)  # fmt: skip
        state.leases_refused += 1
        return ControlAnswer(accepted=False, reason=reason, stage=stage.name, paused=state.paused)

    @handlers.signal(name=names.REPORT, description='A finished run\'s outcome: {"run_id": "..."}')
    async def report(self, *args: Any) -> None:
        await workflow.wait_condition(lambda: self._ready)
        if not self._v2:
            got_report = read(RunReport, args, "a RunReport")
            if got_report.value is not None:
                self._count(got_report.value)
            return
        got = read(ReportPoke, args, '{"run_id": "..."}')
        if got.value is None:
            await self._refuse_report(field_text(args, "run_id"), got.problem, got.raw)
        elif got.value.run_id not in self._state.admitted:
            await self._refuse_report(
                got.value.run_id, "this rollout did not admit the run, or has counted it already", got.raw
            )
        elif got.value.run_id in self._to_count:
            await self._refuse_report(got.value.run_id, "a report for this run is already being counted", got.raw)
        else:
            self._to_count.append(got.value.run_id)
            self._dirty = True

    async def _refuse_report(self, run_id: str | None, reason: str, raw: str) -> None:
        self._state.reports_refused += 1
        await self._record(ev.ReportRefused(run_id=run_id, reason=reason, payload_sent=raw))

    async def _count_reports(self) -> None:
        """Count the outcomes of reported runs, read from their evidence (v2)."""
        if not self._to_count:
            return
        batch = list(self._to_count)
        request = OutcomeRequest(rollout_id=workflow.info().workflow_id, run_ids=batch)
        if self._local:
            answers = await workflow.execute_local_activity_method(
                RolloutActivities.read_run_outcomes, request, start_to_close_timeout=_READ, retry_policy=EVIDENCE_RETRY
            )
        else:
            answers = await workflow.execute_activity_method(
                RolloutActivities.read_run_outcomes, request, start_to_close_timeout=_READ, retry_policy=EVIDENCE_RETRY
            )
        del self._to_count[: len(batch)]
        for answer in answers:
            if answer.released and answer.run_id in self._state.admitted:
                self._state.admitted.pop(answer.run_id, None)
                await self._record(ev.RunReleased(run_id=answer.run_id, reason=answer.released))
                continue
            if answer.report is None:
                await self._refuse_report(answer.run_id, answer.refused or answer.released, "")
                continue
            self._state.admitted.pop(answer.run_id, None)
            self._count(answer.report)

    def _count(self, report: RunReport) -> None:
        if rules.count(self.policy, self._state, report, sequential=self._sequential):
            self._dirty = True

    # Handlers take ``*args``: anyone can send anything (see workflows/inputs.py). None of them raises.

    @handlers.signal(name=names.PAUSE, description='Pause: live writes stop at once. {"operator": "omar"}')
    async def pause(self, *args: Any) -> None:
        await self._control("pause", args, "signal")

    @handlers.signal(name=names.RESUME, description='Resume (named promoters only): {"operator": "omar"}')
    async def resume(self, *args: Any) -> None:
        await self._control("resume", args, "signal")

    @handlers.signal(name=names.PROMOTE, description='Promote to the next stage (promoters): {"operator": "omar"}')
    async def promote(self, *args: Any) -> None:
        await self._control("promote", args, "signal")

    @handlers.signal(name=names.ROLLBACK, description='Roll back: {"operator": "omar", "to": "previous" or "shadow"}')
    async def rollback(self, *args: Any) -> None:
        await self._control("rollback", args, "signal")

    @handlers.update(name=names.control_update(names.PAUSE), description="Pause, with the answer (CLI)")
    async def pause_update(self, *args: Any) -> ControlAnswer:
        return await self._control("pause", args, "update")

    @handlers.update(name=names.control_update(names.RESUME), description="Resume, with the answer (CLI)")
    async def resume_update(self, *args: Any) -> ControlAnswer:
        return await self._control("resume", args, "update")

    @handlers.update(name=names.control_update(names.PROMOTE), description="Promote, with the answer (CLI)")
    async def promote_update(self, *args: Any) -> ControlAnswer:
        return await self._control("promote", args, "update")

    @handlers.update(name=names.control_update(names.ROLLBACK), description="Roll back, with the answer (CLI)")
    async def rollback_update(self, *args: Any) -> ControlAnswer:
        return await self._control("rollback", args, "update")

    @workflow.query(name=names.ROLLOUT_STATUS, description="Stage, window figures, pause, last breach, promotion")
    def status(self) -> RolloutStatus:
        if not self._ready:
            raise RuntimeError("the rollout is starting; ask again in a moment")
        return rules.status(self.policy, self._inp.task, self._inp.task_version, self._state, self._verdicts())

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
        details = rollout_details(self._inp.task, self._inp.task_version, stage, state, self._verdicts())
        workflow.set_current_details(details)
