"""The activities of a governed run: all of its I/O, each idempotent."""

from __future__ import annotations

from typing import Any

import asyncpg
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.common import GovflowActivities, evidence_failure, fail
from activities.connectors.base import ConnectorError, WriteRequest
from activities.connectors.guard import ScopedConnectors, ScopeViolation
from activities.models.base import InvalidModelOutput, ModelError, ModelRequest, ModelResponse
from activities.names import ADMIT_RUN, LEASE, ErrorType
from activities.run_models import (
    AdmitInput,
    AdmitRequest,
    Appended,
    ControlAnswer,
    EvidenceItem,
    GatherInput,
    GatherResult,
    GrantClaim,
    LeaseRequest,
    ProposeInput,
    ProposeResult,
    PublishInput,
    PublishResult,
    RecordEvidence,
    RunAdmission,
    RunSetup,
    StartRun,
    rollout_id_for,
)
from activities.tasks.contract import TaskInputError


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
    @activity.defn(name="govflow.start_run")
    async def start_run(self, start: StartRun) -> RunSetup:
        """Hand the workflow its task's policy. The run is registered with its first evidence rows.

        Kept under its own name (recorded histories schedule it); the work is ``load_policy``'s.
        """
        return self._setup(start.task, start.task_version)

    @activity.defn(name="govflow.append_run_evidence")
    async def append_run_evidence(self, rec: RecordEvidence) -> Appended:
        """Append items at ``seq``...; the same input always stores the same rows (safe to retry)."""
        reg = self._registration(rec.task, rec.task_version)
        run = self._run_record(rec.start, rec.start.policy_digest or reg.digest) if rec.start else None
        head = await self._append(
            rec.task, rec.run_id, rec.seq, rec.at, rec.items, frozenset(reg.policy.evidence.redact_fields), run
        )
        return Appended(next_seq=rec.seq + len(rec.items), head=head)

    @activity.defn(name="govflow.record_evidence")
    async def record_evidence(self, rec: RecordEvidence) -> int:
        """Append items at ``seq``, ``seq + 1``, ...; returns the next free seq. Safe to retry.

        The local activity of runs from before evidence-v2; the work is ``append_run_evidence``'s.
        """
        return (await self.append_run_evidence(rec)).next_seq

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
        return ProposeResult(
            actions=proposal.actions,
            scores=proposal.scores,
            proposal=proposal.model_dump(mode="json"),
            calls=model.calls,
        )

    @activity.defn(name="govflow.publish")
    async def publish(self, inp: PublishInput) -> PublishResult:
        """Write one approved action through the scope guard, then record the touched record.

        Idempotency key = run id + action id: a retry after a crash between the
        write and its evidence gets the stored before/after images back and
        records them; the record is written once.
        """
        reg = self._registration(inp.task, inp.task_version)
        io = ScopedConnectors(reg.policy, reg.connectors)
        action = inp.action
        redact_fields = frozenset(reg.policy.evidence.redact_fields)
        if inp.before:
            run = self._run_record(inp.start, inp.start.policy_digest or reg.digest) if inp.start else None
            await self._append(inp.task, inp.run_id, inp.seq, inp.at, inp.before, redact_fields, run)
        seq = inp.seq + len(inp.before)
        key = f"{inp.run_id}:{action.action_id}"
        if action.operation not in ("create", "update", "delete", "reply", "pay") or action.record_id is None:
            raise ApplicationError(
                f"action {action.action_id} ({action.target}) is not a write with a record id",
                type=ErrorType.INVALID_ACTION,
                non_retryable=True,
            )
        request = WriteRequest(
            resource=action.resource,
            record_id=action.record_id,
            operation=action.operation,
            fields=action.fields,
            idempotency_key=key,
        )
        try:
            # A retried publish whose write already committed records it as written, whatever the
            # rollout says now; only a write that has not happened needs authority.
            result = await io.written(action.system, request)
            if result is None:
                # The lease first, then the fence, held to the end of the write: a pause waits for this
                # write before it is recorded, no write starts once it is, and a lease granted before a
                # pause or rollback is refused by the fence's epoch (migrations 0004 and 0007). So a stop
                # waits only for writes in progress, not for leases being asked.
                rollouts = self._rollouts(inp)
                epochs = await self._lease(inp, rollouts)
                async with self._store.fence(rollouts, inp.grants, epochs) as paused:
                    ended = [p.removeprefix("grant:") for p in paused if p.startswith("grant:")]
                    if ended:  # revoked (or expired) before this write started: its approval is gone
                        raise ApplicationError(
                            f"standing approval {', '.join(ended)} is no longer active", type=ErrorType.LEASE_REFUSED,
                            non_retryable=True,
                        )  # fmt: skip
                    if paused:  # paused, or stopped since the lease: its workflow may not know yet, its fence does
                        raise ApplicationError(
                            f"rollout is paused (fence of {', '.join(paused)})", type=ErrorType.LEASE_REFUSED,
                            non_retryable=True,
                        )  # fmt: skip
                    result = await io.write(action.system, request)
        except ScopeViolation as exc:
            raise fail(exc, ErrorType.SCOPE_VIOLATION, details=exc.refusal.model_dump()) from exc
        except ConnectorError as exc:
            raise fail(exc, ErrorType.CONNECTOR, retryable=exc.retryable) from exc
        except (OSError, asyncpg.PostgresError) as exc:  # the fence's own database (the evidence one)
            raise evidence_failure(exc) from exc
        touched = EvidenceItem(
            kind="touched_record",
            payload={
                "action_id": action.action_id,
                "system": action.system,
                "resource": action.resource,
                "record_id": action.record_id,
                "operation": action.operation,
                "mode": "live",
                "idempotency_key": key,
                "before_image": result.before,
                "after_image": result.after,
            },
        )
        rows = [touched, *inp.then]
        head = await self._append(inp.task, inp.run_id, seq, inp.at, rows, redact_fields)
        return PublishResult(
            before=result.before, after=result.after, replayed=result.replayed, next_seq=seq + len(rows), head=head
        )

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

    @staticmethod
    def _rollouts(inp: PublishInput) -> list[str]:
        """The rollouts a live write answers to: the one that admitted it, and the version's own."""
        canonical = rollout_id_for(inp.task, inp.task_version)
        return [r for r in dict.fromkeys([inp.rollout_id, canonical]) if r is not None]

    async def _lease(self, inp: PublishInput, rollouts: list[str]) -> dict[str, int]:
        """Publish authority, right before the write, from each of ``rollouts`` (``_rollouts``): the one
        that admitted the run, and the task version's own whenever it runs. A refusal is final. Returns
        the stop epoch of each lease granted, for the fence to check."""
        epochs: dict[str, int] = {}
        for rollout_id in rollouts:
            answer = await self._ask_lease(rollout_id, inp, required=rollout_id == inp.rollout_id)
            if answer is not None and not answer.accepted:
                raise ApplicationError(answer.reason, type=ErrorType.LEASE_REFUSED, non_retryable=True)
            if answer is not None:
                epochs[rollout_id] = answer.epoch
        return epochs

    async def _ask_lease(self, rollout_id: str, inp: PublishInput, *, required: bool) -> ControlAnswer | None:
        """The rollout's answer; None when no such rollout runs and none was required."""
        if self._client is None:
            if not required:
                return None  # a worker without Temporal (an activity test) cannot ask
            raise ApplicationError("this worker has no Temporal client to lease with", type=ErrorType.LEASE_REFUSED,
                                   non_retryable=True)  # fmt: skip
        handle = self._client.get_workflow_handle(rollout_id)
        try:
            answer: ControlAnswer = await handle.execute_update(
                LEASE, LeaseRequest(run_id=inp.run_id, stage=inp.stage), result_type=ControlAnswer
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

    @activity.defn(name="govflow.admit")
    async def admit(self, inp: AdmitInput) -> RunAdmission:
        """Ask the run's rollout (the version's own unless the input names one) how the run may run.

        No rollout running: the run keeps what it asked for, and the workflow applies the policy's
        ``rollout.required``.
        """
        rollout_id = inp.rollout_id or rollout_id_for(inp.task, inp.task_version)
        if self._client is None:
            return RunAdmission(rollout_id=None, stage=inp.stage, mode="shadow", reason="no Temporal client")
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
            return RunAdmission(rollout_id=None, stage=inp.stage, mode=inp.requested,
                                reason=f"no rollout {rollout_id} runs")  # fmt: skip
        except WorkflowUpdateFailedError as exc:
            # A rollout that cannot admit (an older rollout without admissions): nothing is published.
            return RunAdmission(rollout_id=rollout_id, stage=inp.stage, mode="shadow",
                                reason=f"{rollout_id} did not admit the run: {exc.cause}")  # fmt: skip
        return answer

    def all(self) -> list[Any]:
        return [
            self.start_run, self.append_run_evidence, self.record_evidence, self.gather, self.propose,
            self.publish, self.admit, self.claim_grant,
        ]  # fmt: skip
