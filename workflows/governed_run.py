"""GovernedRunWorkflow: gather -> propose -> score -> decide -> approve -> publish, with evidence.

Deterministic: time is ``workflow.now()``, all I/O is in activities, the policy engine is pure.
One generation: a run is PINNED to the worker build it started on (Worker Versioning), so a change to
this code needs no patch (``make lint`` refuses one). Every run, however started, takes one path: the
opening activity sets it up, admits it, gathers and proposes; one activity publishes every write.
The rooms around it: its state (workflows/run_state.py), what is decided and how votes are judged
(workflows/approvals.py, pure), the evidence ledger (workflows/ledger.py), what the Temporal UI shows
(workflows/details.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from temporalio import workflow
from temporalio.common import SearchAttributePair
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from govflow.activities import names
    from govflow.activities import run_messages as rm
    from govflow.activities.evidence import events as ev
    from govflow.activities.rollout_messages import RunAdmission
    from govflow.activities.run_activities import RunActivities
    from govflow.policies import AttemptOutcome, Policy, RunContext, policy_from_json, signed_act_problem
    from govflow.workflows import approvals, handlers, publishing, regating, windows
    from govflow.workflows import search_attributes as sa
    from govflow.workflows.approvals import ActionState, GateState
    from govflow.workflows.details import run_details
    from govflow.workflows.exception_route import ExceptionRoute
    from govflow.workflows.gathering import Gathering, gather_request
    from govflow.workflows.ledger import RETRY, RunLedger
    from govflow.workflows.reviewers import Announcer, Votes, claim_standing
    from govflow.workflows.rollout_api import ReportPoke
    from govflow.workflows.run_api import ActionOutcome, Outcome, RunInput, RunResult, RunStatus, submit_message
    from govflow.workflows.run_state import RunState

_ACTIVITY = timedelta(seconds=60)


@workflow.defn(name=names.GOVERNED_RUN)
class GovernedRunWorkflow:
    """One item through one governed task. Reviewers vote with the ``approve`` / ``reject``
    signals (Temporal UI) or the ``review`` update (CLI)."""

    PINNED: ClassVar[bool] = True
    """One generation: a versioned worker registers it PINNED, and it asks no patch (workflows/versioned.py)."""

    @workflow.init
    def __init__(self, inp: RunInput) -> None:
        self._run_id = workflow.info().workflow_id
        self._s = RunState(inp=inp)
        self._ledger = RunLedger(self._run_id, inp.task, inp.task_version)
        self._exceptions = ExceptionRoute(self._run_id, self._ledger)
        self._announcer = Announcer(self._run_id)
        self._votes = Votes(self._run_id, self._s, self._ledger, self._exceptions, self._show)
        self._gathering = Gathering(
            self._run_id, self._s, self._ledger, self._exceptions, self._set_phase, self._set_awaiting
        )

    @property
    def policy(self) -> Policy:
        assert self._s.policy is not None, "the policy is loaded before anything reads it"
        return self._s.policy

    @workflow.run
    async def run(self, inp: RunInput) -> RunResult:
        try:
            return await self._run(inp)
        except FailureError:
            # The run fails (evidence refused, a task's bug...): its rollout must not keep its slot. The
            # rollout frees it once Temporal says this execution is closed (it believes no signal).
            s = self._s
            if s.inp.rollout_id and not s.reported and not s.refused_start:
                await workflow.get_external_workflow_handle(s.inp.rollout_id).signal(
                    names.REPORT, ReportPoke(run_id=self._run_id)
                )
            raise

    async def _run(self, inp: RunInput) -> RunResult:
        s = self._s
        start = rm.StartRun(
            run_id=self._run_id, task=inp.task, task_version=inp.task_version, item_key=inp.item_key,
            requester=inp.requester, stage=inp.stage, mode=inp.mode, at=workflow.now(), rollout_id=inp.rollout_id,
            temporal_run_id=workflow.info().run_id,
        )  # fmt: skip
        request = rm.OpenRun(
            start=start, admit=self._admit_request(inp), submit_signature=inp.signature,
            submit_message=submit_message(self._run_id, inp).decode(), gather=gather_request(self._run_id, s),
        )  # fmt: skip
        # It stands for setup, admission, a gather and a proposal; the phase stays "starting" meanwhile.
        opened = await workflow.execute_activity_method(
            RunActivities.open_run, request, start_to_close_timeout=_ACTIVITY * 2, retry_policy=RETRY
        )
        if opened.refused_start:
            return self._refuse_start(opened.refused_start)
        setup = opened.setup
        s.policy = policy_from_json(setup.policy_text())
        s.console = setup.console
        self._ledger.seq = setup.next_seq
        # A submit the policy needs signed is checked before admission: an unsigned run takes no slot.
        no_rollout = self._submit_problem(inp)
        if not no_rollout:
            assert opened.admission is not None, "the opening activity admits every run it does not refuse"
            no_rollout = self._admit(inp, opened.admission)
            start = start.model_copy(update={"stage": s.inp.stage, "mode": s.inp.mode, "rollout_id": s.inp.rollout_id})
            self._upsert_attributes(s.inp)
        # The run's row and its opening event go with the first evidence batch, in one commit.
        self._ledger.start = start.model_copy(update={"policy_digest": setup.policy_digest})
        opening = ev.RunStarted(
            **start.model_dump(exclude={"at", "policy_digest", "submit_signature", "submit_message"}),
            policy_digest=setup.policy_digest,
            submit_signature=inp.signature, submit_message=request.submit_message if inp.signature else "",
        )  # fmt: skip
        self._ledger.defer(rm.EvidenceItem.of(opening, at=start.at))
        s.started = True  # input that arrived early is handled from here on
        if no_rollout:
            return await self._finish("refused", reason=no_rollout)

        proposal = await self._gathering.proposal(opened)
        if proposal is None:
            return await self._finish("exception" if s.outcome is None else s.outcome)

        s.scores = dict(proposal.scores)
        ctx = RunContext(run_id=self._run_id, requester=inp.requester, now=workflow.now())
        records = {(r.system, r.resource, r.record_id): r.values for r in s.reads}
        totals = await windows.prior_totals(self.policy, proposal.actions, records, ctx.now) if s.live else {}
        s.actions, s.checks_passed, events = approvals.decide_proposal(
            self.policy, setup.policy_digest, proposal, s.reads, ctx, totals
        )
        granted = await claim_standing(self.policy, s.inp, self._run_id, s.actions)
        if granted:
            s.changes += 1
        events += granted
        waits = s.live and any(a.open for a in s.actions.values())
        if waits:
            await self._ledger.record(*events)  # committed before anyone is asked to approve
            await self._announcer.announce(self.policy, s.inp, s.actions, "waiting")
        else:
            # Committed with the next rows: by the first write, before it writes (one round trip fewer).
            self._ledger.defer(*events)

        denied = [a for a in s.actions.values() if a.decision == "deny"]
        if denied:
            # A proposal with a denied action publishes nothing: its actions may depend on each other.
            return await self._finish("refused", reason="; ".join(f"{a.action.action_id}: {a.reason}" for a in denied))

        # Shadow runs never write, so they do not ask reviewers for anything.
        if waits:
            await self._await_approvals()
        return await self._publish()

    def _refuse_start(self, reason: str) -> RunResult:
        """A second start under this run id (recorded by the opening activity in a chain of its own): it
        records nothing in the run's chain, which is the first execution's, and asks its rollout for nothing."""
        s = self._s
        s.refused_start, s.outcome, s.refusal = True, "refused", reason
        self._set_phase("finished")
        return RunResult(run_id=self._run_id, outcome="refused", mode=s.inp.mode, actions=[], reason=reason,
                         evidence_rows=0, chain_head=None)  # fmt: skip

    def _submit_problem(self, inp: RunInput) -> str:
        message = submit_message(self._run_id, inp)
        problem = signed_act_problem(self.policy, "submit", inp.requester, inp.signature, message)
        return f"submit refused: {problem}" if problem else ""

    def _upsert_attributes(self, inp: RunInput) -> None:
        """The run's search attributes; what the start already set (govflow.client.submit) is not set again.
        GovflowAwaitingApproval is set once the run waits (``_set_awaiting``)."""
        current = workflow.info().typed_search_attributes
        wanted: list[SearchAttributePair[Any]] = [
            pair for pair in sa.run_start(inp.task, inp.stage, inp.mode) if current.get(pair.key) != pair.value
        ]
        if wanted:
            workflow.upsert_search_attributes([key.value_set(value) for key, value in wanted])

    def _admit_request(self, inp: RunInput) -> rm.AdmitInput:
        return rm.AdmitInput(
            run_id=self._run_id, task=inp.task, task_version=inp.task_version, item_key=inp.item_key,
            requested=inp.mode, rollout_id=inp.rollout_id, stage=inp.stage,
        )  # fmt: skip

    def _admit(self, inp: RunInput, admission: RunAdmission) -> str:
        """Run as the rollout admitted the run (the input's stage and mode are only a request). Returns why
        the run is refused when a live run needs a rollout (the policy's ``rollout.required``) and none runs."""
        s = self._s
        s.fence_generation = admission.fence_generation
        mode = "shadow" if inp.mode == "shadow" else admission.mode
        s.inp = inp.model_copy(update={"stage": admission.stage, "mode": mode, "rollout_id": admission.rollout_id})
        if not admission.lacks_rollout(inp.mode, self.policy.rollout.required):
            return ""
        return (
            f"policy {self.policy.name} requires a rollout for live runs and {admission.reason}: "
            f"start one with `govflow rollout start --task {inp.task} --version {inp.task_version}`"
        )

    async def _await_approvals(self) -> None:
        s = self._s
        s.phase = "awaiting approval"
        self._set_awaiting(True)
        while open_gates := [g for a in s.actions.values() for g in a.gates if g.status == "open"]:
            now = workflow.now()
            expired = [g for g in open_gates if g.gate.expires_at <= now]
            if expired:
                await self._expire(expired, now)
                continue
            # Until a vote or an expiry changes something, or the earliest gate expires.
            seen, earliest = s.changes, min(g.gate.expires_at for g in open_gates)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: s.changes != seen, timeout=earliest - now)  # noqa: B023
        self._set_awaiting(False)
        await self._announcer.announce(self.policy, s.inp, s.actions, "decided")

    async def _expire(self, expired: list[GateState], now: datetime) -> None:
        events = approvals.expire(self.policy, expired, now)
        self._s.changes += 1
        self._show()
        await self._ledger.record(*events)
        if any(isinstance(e, ev.GateEscalated) for e in events):
            await self._announcer.announce(self.policy, self._s.inp, self._s.actions, "escalated")

    async def _publish(self) -> RunResult:
        """Every approved write in one activity (one lease, one hold of the fence, one commit); shadow writes
        and outcomes that write nothing are recorded with run_finished. A write its limits' window refuses
        (another run wrote to the group since it was approved) waits for the authority the new total needs,
        then what is not yet written is published again."""
        s = self._s
        self._set_phase("publishing" if s.live else "recording shadow writes")
        done: dict[str, ActionOutcome] = {}  # written by an earlier publish of this run
        while True:
            pending = [a for a in s.actions.values() if a.action.action_id not in done]
            slots, shadowed = publishing.plan(self._run_id, pending, s.reads, live=s.live)
            self._ledger.defer(*shadowed)
            writes = [t for t in slots if isinstance(t, ActionState)]
            if not writes:
                unwritten = [t for t in slots if isinstance(t, ActionOutcome)]
                everything = self._in_order(done, unwritten)
                return await self._finish(publishing.outcome_of(s.inp.mode, everything), outcomes=everything)
            then: list[rm.EvidenceItem] = []
            report: ev.RunReport | None = None
            if len(writes) == len(pending):  # every action is written: run_finished rides with the writes
                every = self._in_order(done, [publishing.written(w) for w in writes])
                then = [rm.EvidenceItem.of(self._finished("published", every, ""))]
                report = self._report("published", every) if s.inp.rollout_id else None
            now = workflow.now()
            check = windows.window_check
            planned = [rm.PlannedWrite(action=w.action, grant=w.grant or None, window=check(self.policy, w, now))
                       for w in writes]  # fmt: skip
            result = await self._ledger.publish_all(
                planned, rollout_id=s.inp.rollout_id, stage=s.inp.stage, then=then, report=report,
                fence_generation=s.fence_generation,
            )  # fmt: skip
            s.reported = result.reported
            outcomes = publishing.published(slots, result.written)
            done.update((o.action_id, o) for o in outcomes if o.status == "written")
            refused = result.refused
            if refused is not None and refused.window_rule and await self._ask_again(refused, now):
                continue
            everything = self._in_order(done, outcomes)
            if refused is not None:
                s.refusal = refused.reason
                return await self._finish("refused", outcomes=everything, reason=s.refusal)
            s.finish_recorded = bool(then)
            return await self._finish(publishing.outcome_of(s.inp.mode, everything), outcomes=everything)

    def _in_order(self, done: Mapping[str, ActionOutcome], more: Iterable[ActionOutcome]) -> list[ActionOutcome]:
        """What earlier publishes of this run wrote (``done``) and ``more``, in the proposal's order."""
        found = {**done, **{o.action_id: o for o in more}}
        return [found[a] for a in self._s.actions if a in found]

    async def _ask_again(self, refused: rm.PublishRefusal, now: datetime) -> bool:
        """The window refused a write its approvers' limits no longer cover: its gate asks again with the
        window's new total, and the run waits for it (True). False: nothing to ask again (fail closed)."""
        s = self._s
        state = s.actions.get(refused.action_id)
        if state is None:
            return False
        ctx, by_record = approvals.read_context(RunContext(run_id=self._run_id, requester=s.inp.requester, now=now),
                                                s.reads)  # fmt: skip
        events = regating.regate(self.policy, state, refused.window_rule, refused.window_prior,
                                  approvals.action_context(ctx, state.action, by_record), refused.reason)  # fmt: skip
        if not events:
            return False
        s.changes += 1
        self._show()
        await self._ledger.record(*events)
        await self._announcer.announce(self.policy, s.inp, s.actions, "escalated")
        await self._await_approvals()
        self._set_phase("publishing")
        return True

    async def _finish(
        self, outcome: Outcome, *, outcomes: list[ActionOutcome] | None = None, reason: str | None = None
    ) -> RunResult:
        s = self._s
        s.outcome = outcome
        # Votes still being recorded finish first, so their rows precede run_finished.
        await workflow.wait_condition(workflow.all_handlers_finished)
        s.phase = "finished"
        reason = reason if reason is not None else s.refusal
        if not s.finish_recorded:
            await self._ledger.record(self._finished(outcome, outcomes or [], reason))
        self._set_awaiting(False)
        if s.inp.rollout_id and not s.reported:
            # Only a nudge: the rollout reads the outcome from this run's evidence.
            await workflow.get_external_workflow_handle(s.inp.rollout_id).signal(
                names.REPORT, self._report(outcome, outcomes or [])
            )
        # A vote that raced the close is recorded (after run_finished, refused as closed) before the run
        # completes; evidence appended by activities is identical if this task is retried.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return RunResult(
            run_id=self._run_id, outcome=outcome, mode=s.inp.mode, actions=outcomes or [], reason=reason,
            evidence_rows=self._ledger.seq - 1, chain_head=self._ledger.head,
        )  # fmt: skip

    def _report(self, outcome: Outcome, outcomes: list[ActionOutcome]) -> ev.RunReport:
        s, i = self._s, self._s.inp
        return publishing.run_report(self._run_id, i.stage, i.mode, outcome, outcomes, s.checks_passed, s.scores)

    def _finished(self, outcome: Outcome, outcomes: list[ActionOutcome], reason: str) -> ev.RunFinished:
        # What the rollout counts: read from here, never from a signal.
        report = self._report(outcome, outcomes) if self._s.inp.rollout_id else None
        return publishing.finished_event(outcome, outcomes, reason, report)

    # --- reviewers ------------------------------------------------------------------------------------
    # Handlers take ``*args``: anyone can send anything (see workflows/inputs.py). None of them raises.

    @handlers.signal(
        name=names.APPROVE, description='Approve an action: {"reviewer": "alice", "action_digest": "<digest>"}'
    )
    async def approve(self, *args: Any) -> None:
        await self._votes.vote(args, "approve", "signal")

    @handlers.signal(
        name=names.REJECT,
        description='Reject an action: {"reviewer": "alice", "action_digest": "<digest>", "reason": "..."}',
    )
    async def reject(self, *args: Any) -> None:
        await self._votes.vote(args, "reject", "signal")

    @handlers.update(name=names.REVIEW, description="Approve or reject an action and get the verdict back (CLI)")
    async def review(self, *args: Any) -> AttemptOutcome:
        return await self._votes.review(args)

    @review.validator
    def _validate_review(self, *args: Any) -> None:
        self._votes.validate_review(args)

    @handlers.signal(
        name=names.RESOLVE_EXCEPTION,
        description='Decide on input the run could not: {"reviewer": "alice", "decision": "retry" or "discard"}',
    )
    async def resolve_exception(self, *args: Any) -> None:
        await self._votes.resolve(args)

    @handlers.update(name=names.RESOLVE_EXCEPTION_UPDATE, description="Decide on an exception, with the verdict")
    async def resolve_exception_update(self, *args: Any) -> AttemptOutcome:
        return await self._votes.resolve(args)

    @workflow.query(name=names.RUN_STATUS, description="Phase, pending actions with their digests and gates, exception")
    def status(self) -> RunStatus:
        s, inp = self._s, self._s.inp
        return RunStatus(
            run_id=self._run_id, task=inp.task, item_key=inp.item_key, requester=inp.requester, mode=inp.mode,
            stage=inp.stage, phase=s.phase, pending=approvals.pending(s.actions.values()) if s.live else [],
            exception=self._exceptions.problem,
            exception_expires_at=self._exceptions.expires_at if self._exceptions.problem else None,
            exception_eligible=self._exceptions.eligible if self._exceptions.problem else [],
            outcome=s.outcome,
        )  # fmt: skip

    # --- what operators see ------------------------------------------------------------------------------

    def _set_phase(self, phase: str) -> None:
        self._s.phase = phase
        self._show()

    def _set_awaiting(self, value: bool) -> None:
        if value != self._s.awaiting:
            self._s.awaiting = value
            workflow.upsert_search_attributes([sa.AWAITING_APPROVAL.value_set(value)])
        self._show()

    def _show(self) -> None:
        s = self._s
        details = run_details(self._run_id, s.inp, s.phase, s.outcome, self._exceptions.problem, s.actions.values(),
                              console=s.console)  # fmt: skip
        workflow.set_current_details(details)
