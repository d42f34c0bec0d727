"""GovernedRunWorkflow: gather -> propose -> score -> decide -> approve -> publish, with evidence.

Deterministic: time is ``workflow.now()``, all I/O is in activities, the policy
engine is pure. Evidence rows get their sequence numbers here, under a lock, so
retries and redelivered signals can never duplicate or reorder them.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.connectors.guard import ReadLog
    from activities.run_models import (
        CONTRADICTORY_INPUT,
        INCOMPLETE_INPUT,
        LEASE_REFUSED,
        SCOPE_VIOLATION,
        AdmitInput,
        Appended,
        EvidenceItem,
        GatherInput,
        GatherResult,
        ProposeInput,
        ProposeResult,
        PublishInput,
        PublishResult,
        RecordEvidence,
        RunAdmission,
        RunSetup,
        StartRun,
    )
    from policies import (
        Action,
        ApprovalAttempt,
        AttemptOutcome,
        Deny,
        Gate,
        NeedsApproval,
        Policy,
        RunContext,
        check_attempt,
        decide,
        escalate,
        policy_from_json,
        quorum_met,
        run_checks,
        signed_act_problem,
    )
    from workflows import search_attributes as sa
    from workflows.closing import settle
    from workflows.inputs import field_text, read
    from workflows.rollout_models import RunReport
    from workflows.run_models import (
        ActionOutcome,
        ExceptionDecision,
        GateView,
        Outcome,
        PendingAction,
        Review,
        ReviewRequest,
        RunInput,
        RunResult,
        RunStatus,
        exception_message,
        submit_message,
    )

_LOCAL = timedelta(seconds=30)
_ACTIVITY = timedelta(seconds=60)
# A write is one short transaction; a worker that dies mid-write is retried after this.
_PUBLISH = timedelta(seconds=10)
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
# Evidence appends retry quickly at first: a short outage should cost a run little.
_EVIDENCE_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))
_REVIEW_EXAMPLE = '{"reviewer": "alice", "action_digest": "<digest>", "reason": "..."}'
_REVIEW_UPDATE_EXAMPLE = '{"verdict": "approve", "reviewer": "alice", "action_digest": "<digest>"}'
_DECISION_EXAMPLE = '{"reviewer": "alice", "decision": "retry"}'


@dataclass
class _GateState:
    gate: Gate
    approved_by: list[str] = field(default_factory=list)
    status: Literal["open", "approved", "rejected", "expired"] = "open"


@dataclass
class _ActionState:
    action: Action
    digest: str
    decision: Literal["allow", "needs_approval", "deny"]
    reason: str
    gates: list[_GateState] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return any(g.status == "open" for g in self.gates)

    @property
    def approved(self) -> bool:
        return self.decision == "allow" or (
            self.decision == "needs_approval" and all(g.status == "approved" for g in self.gates)
        )


@workflow.defn(name="GovernedRun")
class GovernedRunWorkflow:
    """One item through one governed task. Reviewers vote with the ``approve`` / ``reject``
    signals (Temporal UI) or the ``review`` update (CLI)."""

    @workflow.init
    def __init__(self, inp: RunInput) -> None:
        self._inp = inp
        self._run_id = workflow.info().workflow_id
        self._seq = 1
        self._settle_before_closing = False
        self._lock = asyncio.Lock()
        self._policy: Policy | None = None
        self._phase = "starting"
        self._actions: dict[str, _ActionState] = {}
        self._exception: str | None = None
        self._exception_decision: ExceptionDecision | None = None
        self._exception_expires: datetime | None = None
        self._outcome: Outcome | None = None
        self._changes = 0
        self._reads: list[ReadLog] = []
        self._refusal = ""
        self._pending: list[EvidenceItem] = []
        self._awaiting = False
        self._finish_recorded = False
        self._checks_passed = False
        self._scores: dict[str, float] = {}
        self._v2 = False
        self._patches_read = False
        self._started = False
        self._start: StartRun | None = None
        self._head: str | None = None

    # --- main flow -----------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: RunInput) -> RunResult:
        # Read in the first activation, for the whole run (see RolloutWorkflow.run).
        # evidence-v2: evidence rows are appended by activities (scheduled with the workflow task, so a
        # retried task never rewrites them differently), the run asks its rollout for admission, reads
        # every signal as untrusted, and closes without settle's timer.
        self._v2 = workflow.patched("evidence-v2")
        self._settle_before_closing = workflow.patched("settle-before-closing")
        self._patches_read = True
        if not self._v2:
            self._upsert_attributes(inp)
        start = StartRun(
            run_id=self._run_id,
            task=inp.task,
            task_version=inp.task_version,
            item_key=inp.item_key,
            requester=inp.requester,
            stage=inp.stage,
            mode=inp.mode,
            at=workflow.now(),
            rollout_id=inp.rollout_id,
        )
        setup = await workflow.execute_local_activity(
            "govflow.start_run",
            start,
            result_type=RunSetup,
            start_to_close_timeout=_LOCAL,
            retry_policy=_RETRY,
        )
        self._policy = policy_from_json(setup.policy_json)
        self._seq = setup.next_seq
        # A submit the policy needs signed is checked before admission: an unsigned run takes no slot.
        no_rollout = self._submit_problem(inp)
        if self._v2 and not no_rollout:
            inp, no_rollout = await self._admit(inp)
            start = start.model_copy(update={"stage": inp.stage, "mode": inp.mode, "rollout_id": inp.rollout_id})
            self._upsert_attributes(inp)
        # The run's row and its opening event go with the first evidence batch, in one commit.
        self._start = start.model_copy(update={"policy_digest": setup.policy_digest}) if self._v2 else start
        self._pending.append(
            EvidenceItem(
                kind="run_started",
                payload={**start.model_dump(mode="json", exclude={"at"}), "policy_digest": setup.policy_digest},
                at=start.at,
            )
        )
        self._started = True  # input that arrived early is handled from here on
        if no_rollout:
            return await self._finish("refused", reason=no_rollout)

        proposal = await self._gather_and_propose()
        if proposal is None:
            return await self._finish("exception" if self._outcome is None else self._outcome)

        checks = run_checks(self._policy, proposal.scores)
        self._checks_passed = all(c.passed for c in checks)
        self._scores = dict(proposal.scores)
        items = [
            EvidenceItem(
                kind="proposal",
                payload={"actions": [a.model_dump(mode="json") for a in proposal.actions], **(proposal.proposal or {})},
            )
        ]
        by_check = {c.name: c for c in self._policy.quality.checks}
        for metric, score in sorted(proposal.scores.items()):
            verdicts = [r.passed for r in checks if by_check[r.check].score == metric]
            items.append(
                EvidenceItem(
                    kind="quality_score",
                    payload={"metric": metric, "score": score, "passed": all(verdicts) if verdicts else None},
                )
            )
        for result in checks:
            if not result.passed and result.check not in proposal.scores:
                items.append(EvidenceItem(kind="quality_check_failed", payload=result.model_dump()))

        reads = {(r.system, r.resource, r.record_id): r.values for r in self._reads}
        now = workflow.now()
        for action in proposal.actions:
            ctx = RunContext(
                run_id=self._run_id,
                requester=inp.requester,
                now=now,
                record=reads.get((action.system, action.resource, action.record_id or "")),
            )
            decision = decide(self._policy, action, ctx)
            state = _ActionState(action=action, digest=action.digest(), decision=decision.kind, reason=decision.reason)
            if isinstance(decision, NeedsApproval):
                state.gates = [_GateState(gate=g) for g in decision.gates]
            self._actions[action.action_id] = state
            items.append(
                EvidenceItem(
                    kind="policy_decision",
                    payload={
                        "action_id": action.action_id,
                        "action_digest": state.digest,
                        "policy_digest": setup.policy_digest,
                        "decision": decision.kind,
                        "rule": decision.rule if isinstance(decision, Deny) else ",".join(decision.rules) or None,
                        "reason": decision.reason,
                        "gate": {"gates": [g.model_dump(mode="json") for g in decision.gates]}
                        if isinstance(decision, NeedsApproval)
                        else None,
                    },
                )
            )
        if inp.mode == "live" and any(s.open for s in self._actions.values()):
            await self._record(items)  # committed before anyone is asked to approve
        else:
            # Committed with the next rows: by the first write, before it writes (one round trip fewer).
            self._pending += items

        denied = [s for s in self._actions.values() if s.decision == "deny"]
        if denied:
            # A proposal with a denied action publishes nothing: its actions may depend on each other.
            return await self._finish("refused", reason="; ".join(f"{s.action.action_id}: {s.reason}" for s in denied))

        # Shadow runs never write, so they do not ask reviewers for anything.
        if inp.mode == "live" and any(s.open for s in self._actions.values()):
            await self._await_approvals()

        return await self._publish()

    def _submit_problem(self, inp: RunInput) -> str:
        assert self._policy is not None
        problem = signed_act_problem(
            self._policy, "submit", inp.requester, inp.signature, submit_message(self._run_id, inp)
        )
        return f"submit refused: {problem}" if problem else ""

    def _upsert_attributes(self, inp: RunInput) -> None:
        workflow.upsert_search_attributes(
            [
                sa.TASK.value_set(inp.task),
                sa.STAGE.value_set(inp.stage),
                sa.MODE.value_set(inp.mode),
                sa.AWAITING_APPROVAL.value_set(False),
            ]
        )

    async def _admit(self, inp: RunInput) -> tuple[RunInput, str]:
        """Ask the rollout how this run may run; the input's stage and mode are only a request.

        Returns the input as admitted, and why the run is refused when a live run needs a rollout
        (the policy's ``rollout.required``) and none runs.
        """
        assert self._policy is not None
        admission: RunAdmission = await workflow.execute_activity(
            "govflow.admit",
            AdmitInput(
                run_id=self._run_id, task=inp.task, task_version=inp.task_version, item_key=inp.item_key,
                requested=inp.mode, rollout_id=inp.rollout_id, stage=inp.stage,
            ),
            result_type=RunAdmission,
            start_to_close_timeout=_ACTIVITY,
            retry_policy=_RETRY,
        )  # fmt: skip
        mode = "shadow" if inp.mode == "shadow" else admission.mode
        admitted = inp.model_copy(update={"stage": admission.stage, "mode": mode, "rollout_id": admission.rollout_id})
        self._inp = admitted
        if admission.rollout_id is None and inp.mode == "live" and self._policy.rollout.required:
            why = (
                f"policy {self._policy.name} requires a rollout for live runs and {admission.reason}: "
                f"start one with `govflow rollout start --task {inp.task} --version {inp.task_version}`"
            )
            return admitted, why
        return admitted, ""

    async def _gather_and_propose(self) -> ProposeResult | None:
        assert self._policy is not None
        inp = self._inp
        while True:
            self._phase = "gathering"
            self._show()
            kind: str | None = None
            detail = ""
            try:
                gathered = await workflow.execute_activity(
                    "govflow.gather",
                    GatherInput(run_id=self._run_id, task=inp.task, task_version=inp.task_version, item=inp.item),
                    result_type=GatherResult,
                    start_to_close_timeout=_ACTIVITY,
                    retry_policy=_RETRY,
                )
            except ActivityError as err:
                cause = err.cause
                if not isinstance(cause, ApplicationError):
                    raise
                if cause.type == SCOPE_VIOLATION:
                    refusal = cause.details[0] if cause.details else {"reason": cause.message}
                    await self._record([EvidenceItem(kind="scope_refusal", payload=dict(refusal))])
                    self._outcome = "refused"
                    self._refusal = cause.message
                    return None
                if cause.type not in (INCOMPLETE_INPUT, CONTRADICTORY_INPUT):
                    raise
                kind, detail = cause.type, cause.message
            else:
                self._reads = gathered.reads
                # Recorded with the proposal's rows, in one commit (see _record).
                self._pending.append(
                    EvidenceItem(
                        kind="context_read",
                        payload={
                            "reads": [r.model_dump(mode="json") for r in gathered.reads],
                            "context": gathered.context,
                        },
                    )
                )
                self._phase = "proposing"
                self._show()
                proposal: ProposeResult = await workflow.execute_activity(
                    "govflow.propose",
                    ProposeInput(
                        run_id=self._run_id, task=inp.task, task_version=inp.task_version, context=gathered.context
                    ),
                    result_type=ProposeResult,
                    start_to_close_timeout=_ACTIVITY,
                    retry_policy=_RETRY,
                )
                self._pending += [
                    EvidenceItem(kind="model_call", payload=c.model_dump(mode="json")) for c in proposal.calls
                ]
                if proposal.invalid is None:
                    return proposal
                kind, detail = "invalid_model_output", proposal.invalid
            if not await self._exception_route(kind, detail):
                return None

    async def _exception_route(self, kind: str, detail: str) -> bool:
        """Wait for a human decision on input the run cannot decide on. True means retry."""
        assert self._policy is not None
        route = self._policy.exceptions
        self._exception = f"{kind}: {detail}"
        self._exception_decision = None
        if route is None or kind not in route.handles:
            await self._record(
                [EvidenceItem(kind="exception_raised", payload={"kind": kind, "detail": detail, "route": None})]
            )
            self._refusal = f"{kind} and no exception route handles it: {detail}"
            return False
        self._exception_expires = workflow.now() + route.expires_after
        await self._record(
            [
                EvidenceItem(
                    kind="exception_raised",
                    payload={
                        "kind": kind,
                        "detail": detail,
                        "route": {"reviewers": list(route.reviewers), "roles": list(route.roles)},
                        "expires_at": self._exception_expires.isoformat(),
                    },
                )
            ]
        )
        self._phase = "awaiting exception decision"
        self._set_awaiting(True)
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: self._exception_decision is not None, timeout=route.expires_after)
        self._set_awaiting(False)
        decision = self._exception_decision
        if decision is None:
            await self._record([EvidenceItem(kind="exception_expired", payload={"kind": kind})])
            self._refusal = f"{kind}: nobody decided before {self._exception_expires.isoformat()}"
            return False
        self._exception = None
        if decision.decision == "discard":
            self._refusal = f"{kind}: discarded by {decision.reviewer} ({decision.reason})"
            return False
        return True

    async def _await_approvals(self) -> None:
        assert self._policy is not None
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
            earliest = min(g.gate.expires_at for g in open_gates)
            await self._wait_for_change(earliest - now)
        self._set_awaiting(False)

    async def _wait_for_change(self, at_most: timedelta) -> None:
        """Until a vote or an expiry changes something, or ``at_most`` passes."""
        seen = self._changes
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: self._changes != seen, timeout=at_most)

    async def _expire(self, expired: list[_GateState], now: datetime) -> None:
        assert self._policy is not None
        items = []
        for state in expired:
            successor = escalate(self._policy, state.gate, now)
            if successor is None:
                state.status = "expired"
                items.append(
                    EvidenceItem(
                        kind="gate_expired",
                        payload={"action_id": state.gate.action_id, "rule": state.gate.rule, "result": "rejected"},
                    )
                )
            else:
                items.append(
                    EvidenceItem(
                        kind="gate_escalated",
                        payload={
                            "action_id": state.gate.action_id,
                            "rule": state.gate.rule,
                            "to_roles": list(successor.roles),
                            "eligible": list(successor.eligible),
                            "expires_at": successor.expires_at.isoformat(),
                        },
                    )
                )
                state.gate = successor
                state.approved_by = []
        self._changes += 1
        self._show()
        await self._record(items)

    async def _publish(self) -> RunResult:
        inp = self._inp
        self._phase = "publishing" if inp.mode == "live" else "recording shadow writes"
        self._show()
        outcomes: list[ActionOutcome] = []
        reads = {(r.system, r.resource, r.record_id): r.values for r in self._reads}
        writes = [s for s in self._actions.values() if s.approved and s.action.operation != "read"]
        # When every action is written, the last write carries run_finished in its commit.
        last_closes_run = inp.mode == "live" and bool(writes) and len(writes) == len(self._actions)
        for state in self._actions.values():
            action = state.action
            if not state.approved and inp.mode == "live":
                expired = any(g.status == "expired" for g in state.gates)
                outcomes.append(
                    ActionOutcome(
                        action_id=action.action_id,
                        target=action.target,
                        decision=state.decision,
                        status="expired" if expired else "rejected",
                        reason="approval expired" if expired else "rejected by a reviewer",
                    )
                )
                continue
            if action.operation == "read":
                continue
            if inp.mode == "shadow":
                before = reads.get((action.system, action.resource, action.record_id or ""))
                after = None if action.operation == "delete" else {**(before or {}), **action.fields}
                await self._record(
                    [
                        EvidenceItem(
                            kind="touched_record",
                            payload={
                                "action_id": action.action_id,
                                "system": action.system,
                                "resource": action.resource,
                                "record_id": action.record_id or "",
                                "operation": action.operation,
                                "mode": "shadow",
                                "idempotency_key": f"{self._run_id}:{action.action_id}",
                                "before_image": before,
                                "after_image": after,
                            },
                        )
                    ]
                )
                outcomes.append(
                    ActionOutcome(
                        action_id=action.action_id,
                        target=action.target,
                        decision=state.decision,
                        status="would_write",
                        reason="" if state.approved else f"would need approval: {state.reason}",
                        before=before,
                        after=after,
                    )
                )
                continue
            then: list[EvidenceItem] = []
            if last_closes_run and state is writes[-1]:
                done = [*outcomes, ActionOutcome(action_id=action.action_id, target=action.target,
                                                 decision=state.decision, status="written")]  # fmt: skip
                then = [self._finish_item("published", done, "")]
            written = await self._write(action, then)
            if written is None:
                return await self._finish("refused", outcomes=outcomes, reason=self._refusal)
            self._finish_recorded = bool(then)
            outcomes.append(
                ActionOutcome(
                    action_id=action.action_id,
                    target=action.target,
                    decision=state.decision,
                    status="written",
                    before=written.before,
                    after=written.after,
                )
            )
        if inp.mode == "shadow":
            outcome: Outcome = "shadowed"
        elif all(o.status == "written" for o in outcomes):
            outcome = "published"
        elif any(o.status == "written" for o in outcomes):
            outcome = "partial"
        else:
            outcome = "rejected"
        return await self._finish(outcome, outcomes=outcomes)

    async def _write(self, action: Action, then: list[EvidenceItem]) -> PublishResult | None:
        inp = self._inp
        async with self._lock:
            before, self._pending = self._pending, []
            seq = self._seq
            try:
                result: PublishResult = await workflow.execute_activity(
                    "govflow.publish",
                    PublishInput(
                        run_id=self._run_id,
                        task=inp.task,
                        task_version=inp.task_version,
                        action=action,
                        seq=seq,
                        at=workflow.now(),
                        before=before,
                        start=self._start if seq == 1 else None,
                        rollout_id=inp.rollout_id if inp.mode == "live" else None,
                        stage=inp.stage,
                        then=then,
                    ),
                    result_type=PublishResult,
                    start_to_close_timeout=_PUBLISH,
                    retry_policy=_RETRY,
                )
            except ActivityError as err:
                cause = err.cause
                if not (isinstance(cause, ApplicationError) and cause.type in (SCOPE_VIOLATION, LEASE_REFUSED)):
                    raise
                self._refusal = cause.message
                self._seq = seq + len(before)  # committed before the write was refused
                if cause.type == LEASE_REFUSED:
                    item = EvidenceItem(
                        kind="lease_refused",
                        payload={"rollout_id": inp.rollout_id, "action_id": action.action_id, "reason": cause.message},
                    )
                else:
                    refusal = cause.details[0] if cause.details else {"reason": cause.message}
                    item = EvidenceItem(kind="scope_refusal", payload=dict(refusal))
                await self._record_locked([item])
                return None
            if result.next_seq is not None:
                self._seq, self._head = result.next_seq, result.head
            else:  # a publish activity from before it said where the chain stands
                self._seq = seq + len(before) + 1 + len(then)
        return result

    async def _finish(
        self, outcome: Outcome, *, outcomes: list[ActionOutcome] | None = None, reason: str | None = None
    ) -> RunResult:
        self._outcome = outcome
        # Votes still being recorded finish first, so their rows precede run_finished.
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._phase = "finished"
        reason = reason if reason is not None else self._refusal
        if not self._finish_recorded:
            await self._record([self._finish_item(outcome, outcomes or [], reason)])
        self._set_awaiting(False)
        self._show()
        if self._inp.rollout_id:
            # Only a nudge: the rollout reads the outcome from this run's evidence (v2).
            await workflow.get_external_workflow_handle(self._inp.rollout_id).signal(
                "report", self._report(outcome, outcomes or [])
            )
        if self._v2:
            # A vote that raced the close is recorded (after run_finished, refused as closed) before
            # the run completes; evidence appended by activities is identical if this task is retried.
            await workflow.wait_condition(workflow.all_handlers_finished)
        elif self._settle_before_closing:
            await settle(lambda: self._seq)
        return RunResult(
            run_id=self._run_id,
            outcome=outcome,
            mode=self._inp.mode,
            actions=outcomes or [],
            reason=reason,
            evidence_rows=self._seq - 1,
            chain_head=self._head,
        )

    def _report(self, outcome: Outcome, outcomes: list[ActionOutcome]) -> RunReport:
        return RunReport(
            run_id=self._run_id,
            stage=self._inp.stage,
            mode=self._inp.mode,
            checks_passed=self._checks_passed,
            scores=self._scores,
            overridden=any(o.status == "rejected" for o in outcomes),
            error=outcome == "exception",
        )

    # --- evidence ---------------------------------------------------------------------------------

    def _finish_item(self, outcome: Outcome, outcomes: list[ActionOutcome], reason: str) -> EvidenceItem:
        payload: dict[str, Any] = {
            "outcome": outcome,
            "reason": reason,
            "actions": [o.model_dump(mode="json", include={"action_id", "status"}) for o in outcomes],
        }
        if self._v2 and self._inp.rollout_id:
            # What the rollout counts: read from here, never from a signal.
            payload["report"] = self._report(outcome, outcomes).model_dump(mode="json")
        return EvidenceItem(kind="run_finished", payload=payload)

    async def _record(self, items: list[EvidenceItem]) -> None:
        async with self._lock:
            await self._record_locked(items)

    async def _record_locked(self, items: list[EvidenceItem]) -> None:
        """Append ``items`` (after any deferred ones) at the next sequence numbers, in one commit."""
        items, self._pending = [*self._pending, *items], []
        if not items:
            return
        inp = self._inp
        rec = RecordEvidence(
            run_id=self._run_id,
            task=inp.task,
            task_version=inp.task_version,
            seq=self._seq,
            at=workflow.now(),
            items=items,
            start=self._start if self._seq == 1 else None,
        )
        if self._v2:
            # An activity, not a local one: its input is fixed in history when the task completes, so a
            # crash or a refused close never re-runs it with a new time (which the store would refuse).
            appended: Appended = await workflow.execute_activity(
                "govflow.append_run_evidence",
                rec,
                result_type=Appended,
                start_to_close_timeout=_LOCAL,
                retry_policy=_EVIDENCE_RETRY,
            )
            self._seq, self._head = appended.next_seq, appended.head
            return
        self._seq = await workflow.execute_local_activity(
            "govflow.record_evidence",
            rec,
            result_type=int,
            start_to_close_timeout=_LOCAL,
            retry_policy=_RETRY,
        )

    # --- reviewers ------------------------------------------------------------------------------------

    def _find(self, review: Review) -> _ActionState | None:
        if review.action_id is not None:
            return self._actions.get(review.action_id)
        return next((s for s in self._actions.values() if s.digest == review.action_digest), None)

    async def _review(self, review: Review, verdict: Literal["approve", "reject"], via: str) -> AttemptOutcome:
        assert self._policy is not None
        now = workflow.now()
        state = self._find(review)
        live = self._inp.mode == "live"  # shadow runs write nothing, so nothing in them is approved
        gate_state = next((g for g in state.gates if g.status == "open"), None) if state and live else None
        if state is None or gate_state is None:
            what = review.action_id or review.action_digest or "(no action named)"
            if state is None:
                outcome = AttemptOutcome(
                    accepted=False, code="stale_digest", reason=f"no action of this run matches {what}"
                )
            elif not live:
                outcome = AttemptOutcome(
                    accepted=False, code="closed", reason="a shadow run writes nothing: there is nothing to approve"
                )
            elif any(g.status == "expired" for g in state.gates):
                closed_at = max(g.gate.expires_at for g in state.gates)
                outcome = AttemptOutcome(
                    accepted=False,
                    code="expired",
                    reason=f"the approval window for {state.action.action_id} closed at {closed_at.isoformat()}",
                )
            else:
                outcome = AttemptOutcome(
                    accepted=False,
                    code="closed",
                    reason=f"{state.action.action_id} is already decided ({state.decision}, "
                    f"{', '.join(g.status for g in state.gates) or 'no gate'})"
                    + (f"; arrived after the run's decision, while {self._phase}" if self._v2 and self._phase in (
                        "publishing", "finished") else ""),
                )  # fmt: skip
            action_id = state.action.action_id if state else review.action_id or ""
            digest = state.digest if state else review.action_digest or ""
        else:
            attempt = ApprovalAttempt(
                reviewer=review.reviewer,
                verdict=verdict,
                action_digest=review.action_digest or "(no digest given)",
                at=now,
                signature=review.signature,
                reason=review.reason,
            )
            # A gate open on several rules: the vote goes to the first open gate that accepts it.
            outcome = check_attempt(
                self._policy, gate_state.gate, attempt, run_id=self._run_id, approved_by=gate_state.approved_by
            )
            if outcome.accepted and verdict == "reject":
                for g in state.gates:
                    g.status = "rejected"
            elif outcome.accepted:
                for g in state.gates:
                    if g.status != "open" or review.reviewer in g.approved_by:
                        continue
                    if check_attempt(
                        self._policy, g.gate, attempt, run_id=self._run_id, approved_by=g.approved_by
                    ).accepted:
                        g.approved_by.append(review.reviewer)
                        if quorum_met(g.gate, g.approved_by):
                            g.status = "approved"
            action_id, digest = state.action.action_id, state.digest
            self._changes += 1
        self._show()
        await self._record(
            [
                EvidenceItem(
                    kind="approval_attempt",
                    payload={
                        "action_id": action_id,
                        "action_digest": review.action_digest or digest,
                        "reviewer": review.reviewer,
                        "verdict": verdict,
                        "accepted": outcome.accepted,
                        "reason": outcome.reason if outcome.accepted else f"{outcome.code}: {outcome.reason}",
                        "signed": review.signature is not None,
                        "via": via,
                        **({"note": review.reason, "signature": review.signature} if self._v2 else {}),
                    },
                )
            ]
        )
        return outcome

    # Handlers take ``*args``: anyone can send anything (see workflows/inputs.py). None of them raises.

    @workflow.signal(description='Approve an action: {"reviewer": "alice", "action_digest": "<digest>"}')
    async def approve(self, *args: Any) -> None:
        await self._vote(args, "approve", "signal")

    @workflow.signal(
        description='Reject an action: {"reviewer": "alice", "action_digest": "<digest>", "reason": "..."}'
    )
    async def reject(self, *args: Any) -> None:
        await self._vote(args, "reject", "signal")

    @workflow.update(description="Approve or reject an action and get the verdict back (used by the CLI)")
    async def review(self, *args: Any) -> AttemptOutcome:
        await self._ready()
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

    async def _ready(self) -> None:
        """Input that arrives before the run is set up (policy loaded, admitted) waits for it; it is never dropped."""
        await workflow.wait_condition(lambda: self._patches_read)
        if self._v2:
            await workflow.wait_condition(lambda: self._started)

    async def _vote(
        self, args: Any, verdict: Literal["approve", "reject"], via: Literal["signal", "update"]
    ) -> AttemptOutcome:
        await self._ready()
        got = read(Review, args, _REVIEW_EXAMPLE)
        if got.value is not None:
            return await self._review(got.value, verdict, via)
        outcome = AttemptOutcome(accepted=False, code="closed", reason=f"unreadable vote: {got.problem}")
        if not self._v2:
            return outcome  # before v2 the SDK dropped such a signal unseen
        await self._record(
            [
                EvidenceItem(
                    kind="approval_attempt",
                    payload={
                        "action_id": field_text(args, "action_id") or "",
                        "action_digest": field_text(args, "action_digest", 64) or "",
                        "reviewer": field_text(args, "reviewer") or "(unreadable)",
                        "verdict": verdict,
                        "accepted": False,
                        "reason": f"unreadable: {got.problem}; payload: {got.raw}",
                        "signed": False,
                        "via": via,
                    },
                )
            ]
        )
        return outcome

    @workflow.signal(
        description='Decide on input the run could not: {"reviewer": "alice", "decision": "retry" or "discard"}'
    )
    async def resolve_exception(self, *args: Any) -> None:
        await self._resolve(args)

    @workflow.update(name="resolve_exception_update", description="Decide on an exception and get the verdict back")
    async def resolve_exception_update(self, *args: Any) -> AttemptOutcome:
        return await self._resolve(args)

    async def _resolve(self, args: Any) -> AttemptOutcome:
        await self._ready()
        got = read(ExceptionDecision, args, _DECISION_EXAMPLE)
        if got.value is None:
            outcome = AttemptOutcome(accepted=False, code="closed", reason=f"unreadable decision: {got.problem}")
            if self._v2:
                await self._record(
                    [
                        EvidenceItem(
                            kind="exception_decision",
                            payload={
                                "reviewer": field_text(args, "reviewer") or "(unreadable)",
                                "decision": None,
                                "reason": "",
                                "accepted": False,
                                "why": f"{outcome.reason}; payload: {got.raw}",
                            },
                        )
                    ]
                )
            return outcome
        return await self._decide_exception(got.value)

    async def _decide_exception(self, decision: ExceptionDecision) -> AttemptOutcome:
        assert self._policy is not None
        route = self._policy.exceptions
        allowed = self._policy.eligible(route.reviewers, route.roles) if route else set()
        if self._exception is None or self._exception_decision is not None:
            outcome = AttemptOutcome(accepted=False, code="expired", reason="no exception is waiting for a decision")
        elif decision.reviewer not in allowed:
            outcome = AttemptOutcome(
                accepted=False,
                code="no_authority",
                reason=f"{decision.reviewer} may not decide exceptions (may: {', '.join(sorted(allowed))})",
            )
        elif decision.decision == "retry" and (
            problem := signed_act_problem(
                self._policy,
                "exception",
                decision.reviewer,
                decision.signature,
                exception_message(self._run_id, decision.decision, self._exception_expires),
            )
        ):
            # Only "retry" moves the run on; "discard" ends it, so it is never refused for its signature.
            code = "signature_invalid" if decision.signature else "signature_missing"
            outcome = AttemptOutcome(accepted=False, code=code, reason=problem)
        else:
            outcome = AttemptOutcome(accepted=True, code="accepted", reason=f"{decision.reviewer}: {decision.decision}")
        await self._record(
            [
                EvidenceItem(
                    kind="exception_decision",
                    payload={**decision.model_dump(), "accepted": outcome.accepted, "why": outcome.reason},
                )
            ]
        )
        if outcome.accepted:
            self._exception_decision = decision
        return outcome

    @workflow.query(description="Phase, pending actions with their digests and gates, exception")
    def status(self) -> RunStatus:
        return RunStatus(
            run_id=self._run_id,
            task=self._inp.task,
            item_key=self._inp.item_key,
            requester=self._inp.requester,
            mode=self._inp.mode,
            stage=self._inp.stage,
            phase=self._phase,
            pending=[
                PendingAction(
                    action_id=s.action.action_id,
                    target=s.action.target,
                    record_id=s.action.record_id,
                    fields=s.action.fields,
                    digest=s.digest,
                    gates=[
                        GateView(
                            rule=g.gate.rule,
                            quorum=g.gate.quorum,
                            eligible=list(g.gate.eligible),
                            approved_by=list(g.approved_by),
                            expires_at=g.gate.expires_at,
                            signature_required=g.gate.signature_required,
                            status=g.status,
                        )
                        for g in s.gates
                    ],
                )
                for s in self._actions.values()
                if s.open and self._inp.mode == "live"
            ],
            exception=self._exception,
            exception_expires_at=self._exception_expires if self._exception else None,
            outcome=self._outcome,
        )

    # --- what operators see ------------------------------------------------------------------------------

    def _set_awaiting(self, value: bool) -> None:
        if value != self._awaiting:
            self._awaiting = value
            workflow.upsert_search_attributes([sa.AWAITING_APPROVAL.value_set(value)])
        self._show()

    def _show(self) -> None:
        inp = self._inp
        lines = [
            f"**{inp.task} v{inp.task_version}** · item `{inp.item_key}` · mode **{inp.mode}** · "
            f"stage {inp.stage} · requested by {inp.requester}",
            "",
            f"Phase: **{self._phase}**" + (f" · outcome **{self._outcome}**" if self._outcome else ""),
        ]
        if self._exception:
            lines += ["", f"Exception: {self._exception}", "Signal `resolve_exception` to retry or discard."]
        if self._actions:
            lines += ["", "| action | target | decision | approvals | expires | digest |", "|---|---|---|---|---|---|"]
            for s in self._actions.values():
                approvals = "; ".join(
                    f"{g.gate.rule}: {len(g.approved_by)}/{g.gate.quorum} {g.status}" for g in s.gates
                )
                expires = ", ".join(
                    g.gate.expires_at.strftime("%Y-%m-%d %H:%M UTC") for g in s.gates if g.status == "open"
                )
                lines.append(
                    f"| {s.action.action_id} | {s.action.target} {s.action.record_id or ''} | {s.decision} | "
                    f"{approvals or '-'} | {expires or '-'} | `{s.digest}` |"
                )
            if any(s.open for s in self._actions.values()):
                lines += ["", 'Approve with Signal `approve`: `{"reviewer": "<you>", "action_digest": "<digest>"}`']
        workflow.set_current_details("\n".join(lines))
