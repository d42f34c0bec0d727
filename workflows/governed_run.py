"""GovernedRunWorkflow: gather -> propose -> score -> decide -> approve -> publish, with evidence.

Deterministic: time is ``workflow.now()``, all I/O is in activities, the policy engine is pure.
The rooms around it: what is decided and how votes are judged (workflows/approvals.py, pure), the
evidence ledger (workflows/ledger.py), what the Temporal UI shows (workflows/details.py).
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities import names
    from activities import run_models as rm
    from activities.connectors.guard import ReadLog
    from activities.evidence import events as ev
    from activities.names import ErrorType
    from activities.run_activities import RunActivities
    from policies import Action, AttemptOutcome, Policy, RunContext, policy_from_json, signed_act_problem
    from workflows import approvals, handlers
    from workflows import search_attributes as sa
    from workflows.approvals import ActionState, GateState, Verdict, Via
    from workflows.closing import settle
    from workflows.details import run_details
    from workflows.exception_route import ExceptionRoute
    from workflows.inputs import read
    from workflows.ledger import LOCAL, RETRY, RunLedger, scope_refusal
    from workflows.reviewers import Announcer, claim_standing
    from workflows.rollout_models import ReportPoke
    from workflows.run_models import (
        REVISION,
        ActionOutcome,
        Outcome,
        Review,
        ReviewRequest,
        RunInput,
        RunResult,
        RunStatus,
        submit_message,
    )

_ACTIVITY = timedelta(seconds=60)


class RunRevisionError(RuntimeError):
    """A run submitted for newer workflow code: it fails the workflow task (retried), not the run."""


_REVIEW_EXAMPLE = '{"reviewer": "alice", "action_digest": "<digest>", "reason": "..."}'
_REVIEW_UPDATE_EXAMPLE = '{"verdict": "approve", "reviewer": "alice", "action_digest": "<digest>"}'


@workflow.defn(name=names.GOVERNED_RUN)
class GovernedRunWorkflow:
    """One item through one governed task. Reviewers vote with the ``approve`` / ``reject``
    signals (Temporal UI) or the ``review`` update (CLI)."""

    @workflow.init
    def __init__(self, inp: RunInput) -> None:
        self._inp = inp
        self._run_id = workflow.info().workflow_id
        self._ledger = RunLedger(self._run_id, inp.task, inp.task_version)
        self._settle_before_closing = False
        self._local_admit = False
        self._reported = False  # the publish sent the rollout its report nudge
        self._fence_generation: int | None = None  # admitted while no rollout ran: the fence's generation then
        self._policy: Policy | None = None
        self._phase = "starting"
        self._actions: dict[str, ActionState] = {}
        self._exceptions = ExceptionRoute(self._run_id, self._ledger)
        self._outcome: Outcome | None = None
        self._changes = 0
        self._reads: list[ReadLog] = []
        self._refusal = ""
        self._awaiting = False
        self._finish_recorded = False
        self._checks_passed = False
        self._scores: dict[str, float] = {}
        self._v2 = False
        self._patches_read = False
        self._started = False
        self._refused_start = False  # a second start under this run id: nothing of it goes in the run's chain
        self._announcer = Announcer(self._run_id)

    @property
    def policy(self) -> Policy:
        assert self._policy is not None, "the policy is loaded before anything reads it"
        return self._policy

    @workflow.run
    async def run(self, inp: RunInput) -> RunResult:
        try:
            return await self._run(inp)
        except FailureError:
            # The run fails (evidence refused, a task's bug...): its rollout must not keep its slot. The
            # rollout frees it once Temporal says this execution is closed (it believes no signal).
            if self._inp.rollout_id and not self._reported and not self._refused_start:
                await workflow.get_external_workflow_handle(self._inp.rollout_id).signal(
                    names.REPORT, ReportPoke(run_id=self._run_id)
                )
            raise

    async def _run(self, inp: RunInput) -> RunResult:
        # Read in the first activation, for the whole run (see RolloutWorkflow.run).
        # evidence-v2: evidence rows are appended by activities (scheduled with the workflow task, so a
        # retried task never rewrites them differently), the run asks its rollout for admission, reads
        # every signal as untrusted, and closes without settle's timer.
        # local-admit: admission is a local activity, in the task that starts the run, and search attributes
        # the start already set are not set again (bench.governed_vs_bare: one workflow task, one activity
        # task and visibility writes fewer per run). It implies every patch before it, so a new run
        # records one patch marker, not three (Core upserts TemporalChangeVersion for each marker).
        # open-gathers: the run's setup, admission and first gather are one regular activity, with no local
        # activity before it (bench.governed_vs_bare: a local activity costs a run an activation and a
        # marker). It implies local-admit and everything before it: a new run records this one marker.
        # A run started by govflow.client.submit says which code it starts on (RunInput.revision) and records
        # no patch marker: Core upserts TemporalChangeVersion for every marker, a visibility write per run
        # whose cost grows with the visibility store (bench.governed_vs_bare). Runs started any other way,
        # and histories from before revisions, decide by markers. A revision this code does not know is
        # left to a worker that does (the workflow task fails, and is retried; nothing is recorded).
        # Revision 3 (no marker: submitted runs only) also proposes in the opening activity, from what it
        # gathered: one activity and one workflow task fewer per run (bench.governed_vs_bare).
        if inp.revision > REVISION:
            raise RunRevisionError(
                f"run {self._run_id} was submitted for workflow revision {inp.revision}; this worker runs "
                f"revision {REVISION}: a newer worker must take it"
            )
        open_proposes = inp.revision >= 3
        self._open_gathers = inp.revision >= 1 or workflow.patched("open-gathers")
        self._local_admit = self._open_gathers or workflow.patched("local-admit")
        self._v2 = self._ledger.v2 = self._local_admit or workflow.patched("evidence-v2")
        self._settle_before_closing = self._local_admit or workflow.patched("settle-before-closing")
        self._patches_read = True
        if not self._v2:
            self._upsert_attributes(inp)
        start = rm.StartRun(
            run_id=self._run_id, task=inp.task, task_version=inp.task_version, item_key=inp.item_key,
            requester=inp.requester, stage=inp.stage, mode=inp.mode, at=workflow.now(), rollout_id=inp.rollout_id,
            temporal_run_id=workflow.info().run_id,
        )  # fmt: skip
        admission: rm.RunAdmission | None = None
        opened: rm.RunOpened | None = None
        if self._local_admit:
            request = rm.OpenRun(
                start=start, admit=self._admit_request(inp), submit_signature=inp.signature,
                submit_message=submit_message(self._run_id, inp).decode(),
                gather=self._gather_request() if self._open_gathers else None, propose=open_proposes,
            )  # fmt: skip
            if self._open_gathers:  # the phase stays "starting" until the run has its policy (run_cli)
                # Proposing too, it has the time of the two activities it stands for.
                timeout = _ACTIVITY * 2 if open_proposes else _ACTIVITY
                opened = await workflow.execute_activity_method(
                    RunActivities.open_run, request, start_to_close_timeout=timeout, retry_policy=RETRY
                )
            else:
                opened = await workflow.execute_local_activity_method(
                    RunActivities.open_run, request, start_to_close_timeout=_ACTIVITY, retry_policy=RETRY
                )
            setup, admission = opened.setup, opened.admission
            if opened.refused_start:
                return self._refuse_start(opened.refused_start)
        else:
            setup = await workflow.execute_local_activity_method(
                RunActivities.start_run, start, start_to_close_timeout=LOCAL, retry_policy=RETRY
            )
        self._policy = policy_from_json(setup.policy_text())
        self._ledger.seq = setup.next_seq
        # A submit the policy needs signed is checked before admission: an unsigned run takes no slot.
        no_rollout = self._submit_problem(inp)
        if self._v2 and not no_rollout:
            inp, no_rollout = await self._admit(inp, admission)
            start = start.model_copy(update={"stage": inp.stage, "mode": inp.mode, "rollout_id": inp.rollout_id})
            self._upsert_attributes(inp)
        # The run's row and its opening event go with the first evidence batch, in one commit.
        self._ledger.start = start.model_copy(update={"policy_digest": setup.policy_digest}) if self._v2 else start
        opening = ev.RunStarted(**start.model_dump(exclude={"at", "policy_digest"}), policy_digest=setup.policy_digest)
        self._ledger.defer(rm.EvidenceItem.of(opening, at=start.at))
        self._started = True  # input that arrived early is handled from here on
        if no_rollout:
            if opened is not None and opened.gathered is not None:  # not expected (the activity decides the same)
                self._ledger.defer(ev.ContextRead(reads=opened.gathered.reads, context=opened.gathered.context))
            return await self._finish("refused", reason=no_rollout)

        proposal = await self._gather_and_propose(opened)
        if proposal is None:
            return await self._finish("exception" if self._outcome is None else self._outcome)

        self._scores = dict(proposal.scores)
        ctx = RunContext(run_id=self._run_id, requester=inp.requester, now=workflow.now())
        decided = approvals.decide_proposal(self.policy, setup.policy_digest, proposal, self._reads, ctx)
        self._actions, self._checks_passed, events = decided
        granted = await claim_standing(self.policy, inp, self._run_id, self._actions)
        if granted:
            self._changes += 1
        events += granted
        waits = inp.mode == "live" and any(s.open for s in self._actions.values())
        if waits:
            await self._ledger.record(*events)  # committed before anyone is asked to approve
            await self._announcer.announce(self.policy, inp, self._actions, "waiting")
        else:
            # Committed with the next rows: by the first write, before it writes (one round trip fewer).
            self._ledger.defer(*events)

        denied = [s for s in self._actions.values() if s.decision == "deny"]
        if denied:
            # A proposal with a denied action publishes nothing: its actions may depend on each other.
            return await self._finish("refused", reason="; ".join(f"{s.action.action_id}: {s.reason}" for s in denied))

        # Shadow runs never write, so they do not ask reviewers for anything.
        if waits:
            await self._await_approvals()

        return await self._publish()

    def _refuse_start(self, reason: str) -> RunResult:
        """A second start under this run id (recorded by the opening activity in a chain of its own): it
        records nothing in the run's chain, which is the first execution's, and asks its rollout for nothing."""
        self._refused_start, self._outcome, self._refusal = True, "refused", reason
        self._set_phase("finished")
        return RunResult(run_id=self._run_id, outcome="refused", mode=self._inp.mode, actions=[], reason=reason,
                         evidence_rows=0, chain_head=None)  # fmt: skip

    def _submit_problem(self, inp: RunInput) -> str:
        message = submit_message(self._run_id, inp)
        problem = signed_act_problem(self.policy, "submit", inp.requester, inp.signature, message)
        return f"submit refused: {problem}" if problem else ""

    def _upsert_attributes(self, inp: RunInput) -> None:
        wanted: list[SearchAttributePair[Any]] = [*sa.run_start(inp.task, inp.stage, inp.mode)]
        if inp.revision < 2:  # since 2, GovflowAwaitingApproval is set once the run waits (``_set_awaiting``)
            wanted.append(SearchAttributePair(sa.AWAITING_APPROVAL, False))
        if self._local_admit:  # what the start set (govflow.client.submit) is set once
            current = workflow.info().typed_search_attributes
            wanted = [pair for pair in wanted if current.get(pair.key) != pair.value]
        if wanted:
            workflow.upsert_search_attributes([key.value_set(value) for key, value in wanted])

    def _admit_request(self, inp: RunInput) -> rm.AdmitInput:
        return rm.AdmitInput(
            run_id=self._run_id, task=inp.task, task_version=inp.task_version, item_key=inp.item_key,
            requested=inp.mode, rollout_id=inp.rollout_id, stage=inp.stage,
        )  # fmt: skip

    async def _admit(self, inp: RunInput, admission: rm.RunAdmission | None) -> tuple[RunInput, str]:
        """How this run may run, as its rollout answered (``admission``, asked with the run's setup), or
        asked now; the input's stage and mode are only a request.

        Returns the input as admitted, and why the run is refused when a live run needs a rollout
        (the policy's ``rollout.required``) and none runs.
        """
        if admission is None:
            admission = await workflow.execute_activity_method(
                RunActivities.admit, self._admit_request(inp), start_to_close_timeout=_ACTIVITY, retry_policy=RETRY
            )
        self._fence_generation = admission.fence_generation
        mode = "shadow" if inp.mode == "shadow" else admission.mode
        admitted = inp.model_copy(update={"stage": admission.stage, "mode": mode, "rollout_id": admission.rollout_id})
        self._inp = admitted
        if admission.lacks_rollout(inp.mode, self.policy.rollout.required):
            why = (
                f"policy {self.policy.name} requires a rollout for live runs and {admission.reason}: "
                f"start one with `govflow rollout start --task {inp.task} --version {inp.task_version}`"
            )
            return admitted, why
        return admitted, ""

    def _gather_request(self) -> rm.GatherInput:
        inp = self._inp
        return rm.GatherInput(run_id=self._run_id, task=inp.task, task_version=inp.task_version, item=inp.item)

    async def _gather(self, opened: rm.RunOpened | None) -> rm.GatherResult | ApplicationError:
        """The context, or the gather's failure: what the run's opening gathered, else the gather activity."""
        if opened is not None and opened.gathered is not None:
            return opened.gathered
        if opened is not None and opened.gather_failure is not None:
            failure = opened.gather_failure
            return ApplicationError(failure.message, *failure.details, type=failure.type, non_retryable=True)
        try:
            return await workflow.execute_activity_method(
                RunActivities.gather, self._gather_request(), start_to_close_timeout=_ACTIVITY, retry_policy=RETRY
            )
        except ActivityError as err:
            if isinstance(err.cause, ApplicationError) and err.cause.type in rm.GATHER_FAILURES:
                return err.cause
            raise

    async def _gather_and_propose(self, opened: rm.RunOpened | None = None) -> rm.ProposeResult | None:
        while True:
            self._set_phase("gathering")
            gathered = await self._gather(opened)
            proposed = opened.proposed if opened is not None else None
            opened = None  # a gather (and proposal) after an exception decision is the activities'
            if isinstance(gathered, ApplicationError):
                cause = gathered
                if cause.type == ErrorType.SCOPE_VIOLATION:
                    await self._ledger.record(scope_refusal(cause))
                    self._outcome = "refused"
                    self._refusal = cause.message
                    return None
                kind, detail = str(cause.type), cause.message
            else:
                self._reads = gathered.reads
                # Recorded with the proposal's rows, in one commit.
                self._ledger.defer(ev.ContextRead(reads=gathered.reads, context=gathered.context))
                self._set_phase("proposing")
                proposal = proposed if proposed is not None else await self._propose(gathered.context)
                self._ledger.defer(*(ev.ModelCall(**c.model_dump(mode="json")) for c in proposal.calls))
                if proposal.task_error is not None:
                    kind, detail = str(ErrorType.TASK_ERROR), proposal.task_error
                elif proposal.invalid is None:
                    return proposal
                else:
                    kind, detail = "invalid_model_output", proposal.invalid
            if not await self._exception_route(kind, detail):
                return None

    async def _propose(self, context: dict[str, Any]) -> rm.ProposeResult:
        inp = self._inp
        return await workflow.execute_activity_method(
            RunActivities.propose,
            rm.ProposeInput(run_id=self._run_id, task=inp.task, task_version=inp.task_version, context=context),
            start_to_close_timeout=_ACTIVITY,
            retry_policy=RETRY,
        )

    async def _exception_route(self, kind: str, detail: str) -> bool:
        """Wait for a human decision on input the run cannot decide on. True means retry."""

        def awaiting(value: bool) -> None:
            if value:
                self._phase = "awaiting exception decision"
            self._set_awaiting(value)

        why = await self._exceptions.wait(self.policy, kind, detail, awaiting)
        if why:
            self._refusal = why
        return not why

    async def _await_approvals(self) -> None:
        self._phase = "awaiting approval"
        self._set_awaiting(True)
        while True:
            open_gates = [g for s in self._actions.values() for g in s.gates if g.status == "open"]
            if not open_gates:
                break
            now = workflow.now()
            expired = [g for g in open_gates if g.gate.expires_at <= now]
            if expired:
                await self._expire(expired, now)
                continue
            # Until a vote or an expiry changes something, or the earliest gate expires.
            seen, earliest = self._changes, min(g.gate.expires_at for g in open_gates)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._changes != seen, timeout=earliest - now)  # noqa: B023
        self._set_awaiting(False)
        await self._announcer.announce(self.policy, self._inp, self._actions, "decided")

    async def _expire(self, expired: list[GateState], now: datetime) -> None:
        events = approvals.expire(self.policy, expired, now)
        self._changes += 1
        self._show()
        await self._ledger.record(*events)
        if any(isinstance(e, ev.GateEscalated) for e in events):
            await self._announcer.announce(self.policy, self._inp, self._actions, "escalated")

    async def _publish(self) -> RunResult:
        if self._local_admit:
            return await self._publish_all()
        inp = self._inp
        self._set_phase("publishing" if inp.mode == "live" else "recording shadow writes")
        outcomes: list[ActionOutcome] = []
        writes = [s for s in self._actions.values() if s.approved and s.action.operation != "read"]
        # When every action is written, the last write carries run_finished in its commit.
        last_closes_run = inp.mode == "live" and bool(writes) and len(writes) == len(self._actions)
        for state in self._actions.values():
            action = state.action
            if not state.approved and inp.mode == "live":
                outcomes.append(approvals.unapproved(state))
                continue
            if action.operation == "read":
                continue
            if inp.mode == "shadow":
                touched = approvals.shadow_write(self._run_id, action, self._reads)
                await self._ledger.record(touched)
                outcomes.append(approvals.would_write(state, touched))
                continue
            then: list[rm.EvidenceItem] = []
            if last_closes_run and state is writes[-1]:
                done = [*outcomes, approvals.written(state)]
                then = [rm.EvidenceItem.of(self._finished("published", done, ""))]
            written = await self._write(action, then)
            if written is None:
                return await self._finish("refused", outcomes=outcomes, reason=self._refusal)
            self._finish_recorded = bool(then)
            outcomes.append(approvals.written(state, written.before, written.after))
        return await self._finish(approvals.outcome_of(inp.mode, outcomes), outcomes=outcomes)

    async def _publish_all(self) -> RunResult:
        """Every approved write in one activity (one lease, one hold of the fence, one commit); shadow writes
        and outcomes that write nothing are recorded with run_finished."""
        inp = self._inp
        live = inp.mode == "live"
        self._set_phase("publishing" if live else "recording shadow writes")
        slots: list[ActionOutcome | ActionState] = []  # in the proposal's order; a state is a write to make
        for state in self._actions.values():
            if not state.approved and live:
                slots.append(approvals.unapproved(state))
            elif state.action.operation == "read":
                continue
            elif not live:
                touched = approvals.shadow_write(self._run_id, state.action, self._reads)
                self._ledger.defer(touched)
                slots.append(approvals.would_write(state, touched))
            else:
                slots.append(state)
        writes = [s for s in slots if isinstance(s, ActionState)]
        if not writes:
            unwritten = [s for s in slots if isinstance(s, ActionOutcome)]
            return await self._finish(approvals.outcome_of(inp.mode, unwritten), outcomes=unwritten)
        then: list[rm.EvidenceItem] = []
        report: ev.RunReport | None = None
        if len(writes) == len(self._actions):  # every action is written: run_finished rides with the writes
            done = [approvals.written(s) for s in writes]
            then = [rm.EvidenceItem.of(self._finished("published", done, ""))]
            report = self._report("published", done) if inp.rollout_id else None
        planned = [rm.PlannedWrite(action=s.action, grant=s.grant or None) for s in writes]
        result = await self._ledger.publish_all(
            planned, rollout_id=inp.rollout_id, stage=inp.stage, then=then, report=report,
            fence_generation=self._fence_generation,
        )  # fmt: skip
        self._reported = result.reported
        written = {w.action_id: w for w in result.written}
        outcomes: list[ActionOutcome] = []
        for slot in slots:
            if isinstance(slot, ActionOutcome):
                outcomes.append(slot)
            elif slot.action.action_id in written:
                w = written[slot.action.action_id]
                outcomes.append(approvals.written(slot, w.before, w.after))
            else:  # refused (recorded by the publish), and nothing after it was attempted
                break
        if result.refused is not None:
            self._refusal = result.refused.reason
            return await self._finish("refused", outcomes=outcomes, reason=self._refusal)
        self._finish_recorded = bool(then)
        return await self._finish(approvals.outcome_of(inp.mode, outcomes), outcomes=outcomes)

    async def _write(self, action: Action, then: list[rm.EvidenceItem]) -> rm.PublishResult | None:
        inp = self._inp
        rollout_id = inp.rollout_id if inp.mode == "live" else None
        state = self._actions.get(action.action_id)
        grants = [state.grant] if state is not None and state.grant else []
        written = await self._ledger.publish(action, rollout_id=rollout_id, stage=inp.stage, then=then, grants=grants)
        if isinstance(written, str):
            self._refusal = written
            return None
        return written

    async def _finish(
        self, outcome: Outcome, *, outcomes: list[ActionOutcome] | None = None, reason: str | None = None
    ) -> RunResult:
        self._outcome = outcome
        # Votes still being recorded finish first, so their rows precede run_finished.
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._phase = "finished"
        reason = reason if reason is not None else self._refusal
        if not self._finish_recorded:
            await self._ledger.record(self._finished(outcome, outcomes or [], reason))
        self._set_awaiting(False)
        self._show()
        if self._inp.rollout_id and not self._reported:
            # Only a nudge: the rollout reads the outcome from this run's evidence (v2).
            await workflow.get_external_workflow_handle(self._inp.rollout_id).signal(
                names.REPORT, self._report(outcome, outcomes or [])
            )
        if self._v2:
            # A vote that raced the close is recorded (after run_finished, refused as closed) before
            # the run completes; evidence appended by activities is identical if this task is retried.
            await workflow.wait_condition(workflow.all_handlers_finished)
        elif self._settle_before_closing:
            await settle(lambda: self._ledger.seq)
        return RunResult(
            run_id=self._run_id, outcome=outcome, mode=self._inp.mode, actions=outcomes or [], reason=reason,
            evidence_rows=self._ledger.seq - 1, chain_head=self._ledger.head,
        )  # fmt: skip

    def _report(self, outcome: Outcome, outcomes: list[ActionOutcome]) -> ev.RunReport:
        i = self._inp
        return approvals.run_report(self._run_id, i.stage, i.mode, outcome, outcomes, self._checks_passed, self._scores)

    def _finished(self, outcome: Outcome, outcomes: list[ActionOutcome], reason: str) -> ev.RunFinished:
        # What the rollout counts: read from here, never from a signal.
        report = self._report(outcome, outcomes) if self._v2 and self._inp.rollout_id else None
        return approvals.finished_event(outcome, outcomes, reason, report)

    # --- reviewers ------------------------------------------------------------------------------------
    # Handlers take ``*args``: anyone can send anything (see workflows/inputs.py). None of them raises.

    @handlers.signal(
        name=names.APPROVE, description='Approve an action: {"reviewer": "alice", "action_digest": "<digest>"}'
    )
    async def approve(self, *args: Any) -> None:
        await self._vote(args, "approve", "signal")

    @handlers.signal(
        name=names.REJECT,
        description='Reject an action: {"reviewer": "alice", "action_digest": "<digest>", "reason": "..."}',
    )
    async def reject(self, *args: Any) -> None:
        await self._vote(args, "reject", "signal")

    @handlers.update(name=names.REVIEW, description="Approve or reject an action and get the verdict back (CLI)")
    async def review(self, *args: Any) -> AttemptOutcome:
        if not await self._ready():
            return self._not_started()
        got = read(ReviewRequest, args, _REVIEW_UPDATE_EXAMPLE)
        if got.value is None:  # the validator refuses these; a replayed history may still hold one
            return AttemptOutcome(accepted=False, code="closed", reason=f"unreadable vote: {got.problem}")
        return await self._review(got.value, got.value.verdict, "update")

    @review.validator
    def _validate_review(self, *args: Any) -> None:
        # What cannot be recorded is refused here, with the reason: a run that is not reviewing, or a
        # payload without a readable verdict (the record needs one). Every other attempt is recorded.
        if self._policy is None or self._phase == "finished":
            raise ValueError(f"run {self._run_id} is not reviewing anything (phase: {self._phase})")
        got = read(ReviewRequest, args, _REVIEW_UPDATE_EXAMPLE)
        if got.value is None:
            raise ValueError(f"review refused: {got.problem}")

    async def _ready(self) -> bool:
        """Input that arrives before the run is set up (policy loaded, admitted) waits for it; it is never dropped.
        False: the run's start was refused, and the input is answered without a record (the chain under this
        run id is another execution's)."""
        await workflow.wait_condition(lambda: self._patches_read)
        if self._v2:
            await workflow.wait_condition(lambda: self._started or self._refused_start)
        return not self._refused_start

    def _not_started(self) -> AttemptOutcome:
        return AttemptOutcome(accepted=False, code="closed", reason=f"run {self._run_id}: {self._refusal}")

    async def _vote(self, args: Any, verdict: Verdict, via: Via) -> AttemptOutcome:
        if not await self._ready():
            return self._not_started()
        got = read(Review, args, _REVIEW_EXAMPLE)
        if got.value is not None:
            return await self._review(got.value, verdict, via)
        outcome = AttemptOutcome(accepted=False, code="closed", reason=f"unreadable vote: {got.problem}")
        if self._v2:  # before v2 the SDK dropped such a signal unseen
            await self._ledger.record(approvals.unreadable_vote_event(args, verdict, via, got))
        return outcome

    async def _review(self, review: Review, verdict: Verdict, via: Via) -> AttemptOutcome:
        state = approvals.find(self._actions, review)
        live = self._inp.mode == "live"
        judged = state is not None and live and state.open  # reaches a gate: a change, accepted or not
        late = self._v2 and self._phase in ("publishing", "finished")
        outcome = approvals.judge_vote(
            self.policy, state, review, verdict, run_id=self._run_id, live=live,
            now=workflow.now(), late=f"arrived after the run's decision, while {self._phase}" if late else "",
        )  # fmt: skip
        if judged:
            self._changes += 1
        self._show()
        event = approvals.vote_event(review, verdict, outcome, state, via, full=self._v2)
        decided = judged and not any(s.open for s in self._actions.values())
        if self._local_admit and decided and live and self._ledger.idle:
            # The vote that closes the last gate: its row is committed with what follows at once (the
            # publish, or run_finished), one activity sooner than a commit of its own.
            self._ledger.defer(event)
        else:
            await self._ledger.record(event)
        return outcome

    @handlers.signal(
        name=names.RESOLVE_EXCEPTION,
        description='Decide on input the run could not: {"reviewer": "alice", "decision": "retry" or "discard"}',
    )
    async def resolve_exception(self, *args: Any) -> None:
        await self._resolve(args)

    @handlers.update(name=names.RESOLVE_EXCEPTION_UPDATE, description="Decide on an exception, with the verdict")
    async def resolve_exception_update(self, *args: Any) -> AttemptOutcome:
        return await self._resolve(args)

    async def _resolve(self, args: Any) -> AttemptOutcome:
        if not await self._ready():
            return self._not_started()
        return await self._exceptions.decide(self.policy, args, record_unreadable=self._v2)

    @workflow.query(name=names.RUN_STATUS, description="Phase, pending actions with their digests and gates, exception")
    def status(self) -> RunStatus:
        inp = self._inp
        return RunStatus(
            run_id=self._run_id, task=inp.task, item_key=inp.item_key, requester=inp.requester, mode=inp.mode,
            stage=inp.stage, phase=self._phase,
            pending=approvals.pending(self._actions.values()) if inp.mode == "live" else [],
            exception=self._exceptions.problem,
            exception_expires_at=self._exceptions.expires_at if self._exceptions.problem else None,
            outcome=self._outcome,
        )  # fmt: skip

    # --- what operators see ------------------------------------------------------------------------------

    def _set_phase(self, phase: str) -> None:
        self._phase = phase
        self._show()

    def _set_awaiting(self, value: bool) -> None:
        if value != self._awaiting:
            self._awaiting = value
            workflow.upsert_search_attributes([sa.AWAITING_APPROVAL.value_set(value)])
        self._show()

    def _show(self) -> None:
        problem = self._exceptions.problem
        details = run_details(self._run_id, self._inp, self._phase, self._outcome, problem, self._actions.values())
        workflow.set_current_details(details)
