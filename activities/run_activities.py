"""The activities of a governed run: all of its I/O, each idempotent."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from govflow.activities.common import GovflowActivities, evidence_failure, fail
from govflow.activities.connectors.connector import ConnectorError, WriteRequest, WriteResult
from govflow.activities.connectors.guard import ScopedConnectors, ScopeViolation
from govflow.activities.evidence.events import (
    Event,
    LeaseRefused,
    RunStarted,
    RunStartRefused,
    ScopeRefused,
    TouchedRecord,
)
from govflow.activities.evidence.store import FenceHold
from govflow.activities.models.chat import InvalidModelOutput, ModelError, ModelRequest, ModelResponse
from govflow.activities.names import ADMIT_RUN, LEASE, REPORT, ErrorType
from govflow.activities.rollout_messages import AdmitRequest, ControlAnswer, LeaseRequest, RunAdmission, rollout_id_for
from govflow.activities.run_messages import (
    GATHER_FAILURES,
    AdmitInput,
    Appended,
    EvidenceItem,
    GatherFailure,
    GatherInput,
    GatherResult,
    GrantClaim,
    OpenRun,
    ProposeInput,
    ProposeResult,
    PublishAll,
    PublishedAll,
    PublishRefusal,
    RecordEvidence,
    RunOpened,
    StartRun,
    Written,
)
from govflow.activities.tasks.contract import Proposal, TaskInputError, TaskMistake, task_mistake, wrong_type
from govflow.policies import Action, signed_act_problem
from govflow.policies.model import WRITE_OPERATIONS


class _RecordingModel:
    """Keeps every response, so the evidence names the model, latency and tokens."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: list[ModelResponse] = []

    async def complete(self, request: ModelRequest) -> ModelResponse:
        response: ModelResponse = await self._inner.complete(request)
        self.calls.append(response)
        return response


class RunActivities(GovflowActivities):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Rollout id -> the fence generation at which asking it answered NOT_FOUND (see ``admit``).
        self._absent: dict[str, int] = {}

    @activity.defn(name="govflow.open_run")
    async def open_run(self, req: OpenRun) -> RunOpened:
        """A new run's first activity: its policy, its admission, a gather, and a proposal from what it
        gathered. A model that fails here leaves the proposal to the run's propose activity.
        A submit whose signature the policy refuses is not admitted: it takes no slot (the run refuses it).
        A run refused (that, or no rollout where the policy requires one) reads nothing: the workflow
        decides the same from the same policy and admission. A gather's scope refusal or input problem comes
        back as data (``gather_failure``), with the setup the workflow needs to handle it."""
        setup = self._setup(req.start.task, req.start.task_version)
        policy = self._registration(req.start.task, req.start.task_version).policy
        refused = await self._refuse_a_second_start(req.start)
        if refused:
            return RunOpened(setup=setup, refused_start=refused)
        message = req.submit_message.encode()
        if signed_act_problem(policy, "submit", req.start.requester, req.submit_signature, message):
            return RunOpened(setup=setup)
        admission = await self.admit(req.admit)
        if admission.lacks_rollout(req.admit.requested, policy.rollout.required):
            return RunOpened(setup=setup, admission=admission)
        try:
            gathered = await self.gather(req.gather)
        except ApplicationError as exc:
            if exc.non_retryable and exc.type in GATHER_FAILURES:
                failure = GatherFailure(type=exc.type, message=exc.message, details=list(exc.details))
                return RunOpened(setup=setup, admission=admission, gather_failure=failure)
            raise
        proposed: ProposeResult | None = None
        proposing = ProposeInput(run_id=req.gather.run_id, task=req.gather.task,
                                 task_version=req.gather.task_version, context=gathered.context)  # fmt: skip
        try:
            proposed = await self.propose(proposing)
        except ApplicationError as exc:
            if exc.type != ErrorType.MODEL:
                raise
            # The run's propose activity asks again, with its own retries (not this admission's and reads').
            activity.logger.warning("run %s: the model failed while opening (%s)", req.gather.run_id, exc)
        return RunOpened(setup=setup, admission=admission, gathered=gathered, proposed=proposed)

    async def _refuse_a_second_start(self, start: StartRun) -> str:
        """One run id, one run: a start under an id whose chain exists (a finished run's input replayed
        under its id) is refused before it is admitted or reads anything, and recorded in a chain of its
        own, so the first run's chain and its anchor stay as they were. Empty when the id is new."""
        try:
            if await self._store.run(start.run_id) is None:
                return ""
            first = await self._store.last_event(start.run_id, RunStarted)
        except (OSError, asyncpg.PostgresError) as exc:
            raise evidence_failure(exc) from exc
        first_execution = first.temporal_run_id if isinstance(first, RunStarted) else ""
        execution = activity.info().workflow_run_id or ""
        if first_execution and first_execution == execution:  # this execution's own chain: not a second start
            return ""
        reason = (
            f"run id {start.run_id} already has evidence (its first execution {first_execution or 'unrecorded'}): "
            "a run id is used once; submit the item again under a new run id"
        )
        refusal = RunStartRefused(
            run_id=start.run_id, temporal_run_id=execution, first_temporal_run_id=first_execution, task=start.task,
            task_version=start.task_version, item_key=start.item_key, requester=start.requester, reason=reason,
        )  # fmt: skip
        stream_id = f"{start.run_id}@{execution}"
        await self._append_chain(
            "refused_start", stream_id, start.task, 1, [(refusal.kind, refusal.payload(), start.at)]
        )
        activity.logger.warning("refused a second start of run %s: %s", start.run_id, reason)
        return reason

    @activity.defn(name="govflow.append_run_evidence")
    async def append_run_evidence(self, rec: RecordEvidence) -> Appended:
        """Append items at ``seq``...; the same input always stores the same rows (safe to retry)."""
        reg = self._registration(rec.task, rec.task_version)
        run = self._run_record(rec.start, rec.start.policy_digest or reg.digest) if rec.start else None
        head = await self._append(
            rec.task, rec.run_id, rec.seq, rec.at, rec.items, frozenset(reg.policy.evidence.redact_fields), run
        )
        return Appended(next_seq=rec.seq + len(rec.items), head=head)

    @activity.defn(name="govflow.gather")
    async def gather(self, inp: GatherInput) -> GatherResult:
        reg = self._registration(inp.task, inp.task_version)
        io = ScopedConnectors(reg.policy, reg.connectors)
        try:
            item = reg.task.item_model.model_validate(inp.item)
        except ValueError as exc:
            raise fail(exc, ErrorType.INCOMPLETE_INPUT) from exc
        try:
            context = await reg.task.gather(item, io)
        except ScopeViolation as exc:
            raise fail(exc, ErrorType.SCOPE_VIOLATION, details=exc.refusal.model_dump()) from exc
        except TaskInputError as exc:
            raise fail(exc, ErrorType(exc.kind)) from exc
        except ConnectorError as exc:
            raise fail(exc, ErrorType.CONNECTOR, retryable=exc.retryable) from exc
        except Exception as exc:  # the task's own bug: a person decides, no retry loop
            raise fail(TaskMistake(task_mistake(reg.task, "gather", exc)), ErrorType.TASK_ERROR) from exc
        if not isinstance(context, reg.task.context_model):
            raise fail(
                TaskMistake(wrong_type(reg.task, "gather", context, reg.task.context_model)), ErrorType.TASK_ERROR
            )
        return GatherResult(context=context.model_dump(mode="json"), reads=io.reads)

    @activity.defn(name="govflow.propose")
    async def propose(self, inp: ProposeInput) -> ProposeResult:
        reg = self._registration(inp.task, inp.task_version)
        model = _RecordingModel(reg.model)
        context = reg.task.context_model.model_validate(inp.context)
        try:
            proposal = await reg.task.propose(context, model)
        except InvalidModelOutput as exc:
            return ProposeResult(invalid=str(exc), calls=model.calls)
        except ModelError as exc:
            raise fail(exc, ErrorType.MODEL, retryable=exc.retryable) from exc
        except Exception as exc:  # the task's own bug: a person decides, no retry loop
            return ProposeResult(task_error=task_mistake(reg.task, "propose", exc), calls=model.calls)
        if not isinstance(proposal, Proposal):
            return ProposeResult(task_error=wrong_type(reg.task, "propose", proposal, Proposal), calls=model.calls)
        return ProposeResult(
            actions=proposal.actions,
            scores=proposal.scores,
            proposal=proposal.model_dump(mode="json"),
            calls=model.calls,
        )

    @activity.defn(name="govflow.publish_all")
    async def publish_all(self, inp: PublishAll) -> PublishedAll:
        """Write a live run's approved actions in order, each through the scope guard, and record them.

        Idempotency key per write = run id + action id: a retry after a crash between a write and its
        evidence finds the write committed and records it; a record is written once. The first write
        that has not happened asks for the lease, then holds the fence until the last write returns: a
        pause waits for these writes and no write starts after it. The run's pending rows, the touched
        records and ``then`` commit in the fence's own transaction (one commit per run). A write refused
        by the scope guard or its rollout is recorded in that commit (writes after it are not attempted)
        and named in the result; ``then`` is left out.
        """
        done = await self._publish_writes(inp)
        # The run is finished once ``then`` commits: its rollout hears so now, not a workflow task later.
        reported = False
        if done.refused is None and inp.then and inp.report is not None and inp.rollout_id and self._client:
            try:
                await self._client.get_workflow_handle(inp.rollout_id).signal(REPORT, inp.report)
                reported = True
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise  # retried: the writes are found written, the rows stored, and the nudge sent again
        return PublishedAll(
            written=[Written(action_id=a, **r.model_dump()) for a, r in done.results.items()],
            refused=done.refused, reported=reported, next_seq=done.next_seq, head=done.head,
        )  # fmt: skip

    async def _publish_writes(self, inp: PublishAll) -> _Published:
        reg = self._registration(inp.task, inp.task_version)
        io = ScopedConnectors(reg.policy, reg.connectors)
        redact_fields = frozenset(reg.policy.evidence.redact_fields)
        run = self._run_record(inp.start, inp.start.policy_digest or reg.digest) if inp.start else None
        requests = [_write_request(inp.run_id, w.action) for w in inp.writes]
        results: dict[str, WriteResult] = {}
        refused: tuple[PublishRefusal, Event] | None = None
        current = ""  # the action being written
        retried = activity.info().attempt > 1
        async with AsyncExitStack() as stack:
            hold: FenceHold | None = None
            try:
                for w, request in zip(inp.writes, requests, strict=True):
                    action, current = w.action, w.action.action_id
                    # A retried publish whose write already committed records it as written, whatever the
                    # rollout says now; only a write that has not happened needs authority. A first attempt
                    # has written nothing (a key met anyway is answered by the system's own idempotency).
                    result = await io.written(action.system, request) if retried else None
                    if result is None:
                        if hold is None:
                            hold = await self._hold_fence(inp, stack)
                        _refuse_if_stopped(hold.stopped, w.grant)
                        result = await io.write(action.system, request)
                    results[action.action_id] = result
            except ScopeViolation as exc:
                error = fail(exc, ErrorType.SCOPE_VIOLATION, details=exc.refusal.model_dump())
                event: Event = ScopeRefused.model_validate(exc.refusal.model_dump())
                refused = (PublishRefusal(action_id=current, reason=error.message), event)
            except ApplicationError as exc:
                if exc.type != ErrorType.LEASE_REFUSED:
                    raise
                event = LeaseRefused(rollout_id=inp.rollout_id, action_id=current, reason=exc.message)
                refused = (PublishRefusal(action_id=current, reason=exc.message), event)
            except ConnectorError as exc:
                raise fail(exc, ErrorType.CONNECTOR, retryable=exc.retryable) from exc
            except (OSError, asyncpg.PostgresError) as exc:  # the fence's own database (the evidence one)
                raise evidence_failure(exc) from exc
            items = list(inp.before)
            items += [
                EvidenceItem.of(_touched(w.action, r.idempotency_key, results[w.action.action_id]))
                for w, r in zip(inp.writes, requests, strict=True) if w.action.action_id in results
            ]  # fmt: skip
            if refused is None:
                items += inp.then
            else:
                items.append(EvidenceItem.of(refused[1]))
            batch = self._run_batch(inp.run_id, inp.seq, inp.at, items, redact_fields)
            appended = await self._append_batch("run", batch, run, within=hold) if batch else []
        await self._count(inp.task, batch, appended)
        head = appended[-1].hash if appended else ""
        return _Published(
            results=results, refused=refused[0] if refused else None,
            next_seq=inp.seq + len(items), head=head,
        )  # fmt: skip

    @activity.defn(name="govflow.claim_grant")
    async def claim_grant(self, claim: GrantClaim) -> str | None:
        """A use of a live standing approval covering the action, or None (people decide). Retried, the same
        action gets the same use back: a use is never spent twice."""
        try:
            return await self._store.claim_grant(
                claim.task, claim.task_version, claim.rule, claim.fields, claim.requester, claim.run_id,
                claim.action_id, claim.at,
            )  # fmt: skip
        except (OSError, asyncpg.PostgresError) as exc:
            raise evidence_failure(exc) from exc

    async def _hold_fence(self, inp: PublishAll, stack: AsyncExitStack) -> FenceHold:
        """The lease first, then the fence, held (on ``stack``) to the end of the last write: a lease granted
        before a pause or rollback is refused by the fence's epoch (migrations 0004 and 0007), so a stop waits
        only for writes in progress, not for leases being asked.

        A run admitted while no rollout ran skips asking the version's rollout when the fence's generation
        has not moved since (migration 0008): no rollout has started. If it has moved, the hold is let go
        (nothing is written yet) and the rollout is asked, as for any run."""
        canonical = rollout_id_for(inp.task, inp.task_version)
        rollouts = self._rollouts(inp.rollout_id, inp.task, inp.task_version)
        unasked = canonical if inp.rollout_id is None and inp.fence_generation is not None else None
        grants = [w.grant for w in inp.writes if w.grant]
        epochs = await self._lease(inp.run_id, inp.stage, inp.rollout_id, [r for r in rollouts if r != unasked])
        attempt = AsyncExitStack()
        hold = await attempt.enter_async_context(self._store.fence(rollouts, grants, epochs))
        if unasked is not None and hold.generations.get(unasked) != inp.fence_generation:
            await attempt.aclose()
            epochs |= await self._lease(inp.run_id, inp.stage, inp.rollout_id, [unasked])
            attempt = AsyncExitStack()
            hold = await attempt.enter_async_context(self._store.fence(rollouts, grants, epochs))
        stack.push_async_exit(attempt)
        return hold

    @staticmethod
    def _rollouts(rollout_id: str | None, task: str, task_version: str) -> list[str]:
        """The rollouts a live write answers to: the one that admitted it, and the version's own."""
        canonical = rollout_id_for(task, task_version)
        return [r for r in dict.fromkeys([rollout_id, canonical]) if r is not None]

    async def _lease(self, run_id: str, stage: str, admitted_by: str | None, rollouts: list[str]) -> dict[str, int]:
        """Publish authority, right before the write, from each of ``rollouts`` (``_rollouts``): the one
        that admitted the run, and the task version's own whenever it runs. A refusal is final. Returns
        the stop epoch of each lease granted, for the fence to check."""
        epochs: dict[str, int] = {}
        for rollout_id in rollouts:
            answer = await self._ask_lease(rollout_id, run_id, stage, required=rollout_id == admitted_by)
            if answer is not None and not answer.accepted:
                raise ApplicationError(answer.reason, type=ErrorType.LEASE_REFUSED, non_retryable=True)
            if answer is not None:
                epochs[rollout_id] = answer.epoch
        return epochs

    async def _ask_lease(self, rollout_id: str, run_id: str, stage: str, *, required: bool) -> ControlAnswer | None:
        """The rollout's answer; None when no such rollout runs and none was required."""
        if self._client is None:
            if not required:
                return None  # a worker without Temporal (an activity test) cannot ask
            raise ApplicationError("this worker has no Temporal client to lease with", type=ErrorType.LEASE_REFUSED,
                                   non_retryable=True)  # fmt: skip
        handle = self._client.get_workflow_handle(rollout_id)
        try:
            answer: ControlAnswer = await handle.execute_update(
                LEASE, LeaseRequest(run_id=run_id, stage=stage), result_type=ControlAnswer
            )
            return answer
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        except WorkflowUpdateFailedError as exc:
            return ControlAnswer(accepted=False, reason=f"{rollout_id} refused the lease: {exc.cause}", stage="",
                                 paused=False)  # fmt: skip
        if required:
            gone = f"the rollout {rollout_id} that admitted the run no longer runs"
            return ControlAnswer(accepted=False, reason=gone, stage="", paused=False)
        return None

    async def admit(self, inp: AdmitInput) -> RunAdmission:
        """Ask the run's rollout (the version's own unless the input names one) how the run may run.

        No rollout running: the run keeps what it asked for, and the workflow applies the policy's
        ``rollout.required``. A worker that was answered NOT_FOUND for the version's rollout at a fence
        generation does not ask again while the generation is the same: no rollout has started since (a
        rollout sets its fence, moving the generation, before it admits anything), so the answer would be
        the same; this is the reasoning the write already relies on (``_hold_fence``). One Update fewer
        per run where no rollout runs.
        """
        rollout_id = inp.rollout_id or rollout_id_for(inp.task, inp.task_version)
        if self._client is None:
            return RunAdmission(rollout_id=None, stage=inp.stage, mode="shadow", reason="no Temporal client")
        generation: int | None = None
        if rollout_id == rollout_id_for(inp.task, inp.task_version):
            try:  # read before asking: a rollout that starts after this moves it (it sets its fence first)
                generation = await self._store.fence_generation(rollout_id)
            except (OSError, asyncpg.PostgresError) as exc:
                raise evidence_failure(exc) from exc
            if self._absent.get(rollout_id) == generation:
                return _no_rollout(inp, rollout_id, generation)
        handle = self._client.get_workflow_handle(rollout_id)
        try:
            answer: RunAdmission = await handle.execute_update(
                ADMIT_RUN,
                AdmitRequest(run_id=inp.run_id, item_key=inp.item_key, requested=inp.requested),
                result_type=RunAdmission,
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            if generation is not None:
                self._absent[rollout_id] = generation
            return _no_rollout(inp, rollout_id, generation)
        except WorkflowUpdateFailedError as exc:
            # A rollout that cannot admit (an older rollout without admissions): nothing is published.
            return RunAdmission(rollout_id=rollout_id, stage=inp.stage, mode="shadow",
                                reason=f"{rollout_id} did not admit the run: {exc.cause}")  # fmt: skip
        return answer

    def all(self) -> list[Any]:
        return [
            self.open_run, self.append_run_evidence, self.gather, self.propose, self.publish_all, self.claim_grant,
        ]  # fmt: skip


@dataclass(frozen=True)
class _Published:
    results: dict[str, WriteResult]
    refused: PublishRefusal | None
    next_seq: int
    head: str


def _no_rollout(inp: AdmitInput, rollout_id: str, generation: int | None) -> RunAdmission:
    return RunAdmission(rollout_id=None, stage=inp.stage, mode=inp.requested,
                        reason=f"no rollout {rollout_id} runs", fence_generation=generation)  # fmt: skip


def _write_request(run_id: str, action: Action) -> WriteRequest:
    if action.operation not in WRITE_OPERATIONS or action.record_id is None:
        raise ApplicationError(
            f"action {action.action_id} ({action.target}) is not a write with a record id",
            type=ErrorType.INVALID_ACTION,
            non_retryable=True,
        )
    return WriteRequest(
        resource=action.resource, record_id=action.record_id, operation=action.operation, fields=action.fields,
        idempotency_key=f"{run_id}:{action.action_id}",
    )  # fmt: skip


def _touched(action: Action, key: str, result: WriteResult) -> TouchedRecord:
    return TouchedRecord(
        action_id=action.action_id, system=action.system, resource=action.resource, record_id=str(action.record_id),
        operation=action.operation, mode="live", idempotency_key=key, before_image=result.before,
        after_image=result.after,
    )  # fmt: skip


def _refuse_if_stopped(stopped: list[str], grant: str | None) -> None:
    """Refuse a write whose fence says stop: its standing approval ended, or a rollout paused or stopped since
    its lease (its workflow may not know yet; its fence does)."""
    if grant is not None and f"grant:{grant}" in stopped:  # revoked (or expired) before this write started
        raise ApplicationError(
            f"standing approval {grant} is no longer active", type=ErrorType.LEASE_REFUSED, non_retryable=True
        )
    rollouts = [s for s in stopped if not s.startswith("grant:")]
    if rollouts:
        raise ApplicationError(
            f"rollout is paused (fence of {', '.join(rollouts)})", type=ErrorType.LEASE_REFUSED, non_retryable=True
        )
