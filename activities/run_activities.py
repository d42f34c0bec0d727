"""The activities of a governed run: all of its I/O, each idempotent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.connectors.base import ConnectorError, WriteRequest
from activities.connectors.guard import ScopedConnectors, ScopeViolation
from activities.evidence import EvidenceConflictError, EvidenceEvent, EvidenceGapError, EvidenceStore, RunRecord
from activities.evidence.chain import Stream
from activities.evidence.records import PROJECTED, ProjectedRecord
from activities.evidence.store import AppendResult
from activities.models.base import InvalidModelOutput, ModelError, ModelRequest, ModelResponse
from activities.pgerrors import is_transient
from activities.registry import Registration, Registry, UnknownTask
from activities.run_models import (
    LEASE_REFUSED,
    SCOPE_VIOLATION,
    AdmitInput,
    AdmitRequest,
    Appended,
    ControlAnswer,
    DataRollback,
    EvidenceItem,
    FenceRequest,
    GatherInput,
    GatherResult,
    LeaseRequest,
    OutcomeAnswer,
    OutcomeRequest,
    PolicyRequest,
    ProposeInput,
    ProposeResult,
    PublishInput,
    PublishResult,
    RecordEvidence,
    RecordRolloutBatch,
    RecordRolloutEvidence,
    RestoredRecord,
    RolloutRow,
    RunAdmission,
    RunReport,
    RunSetup,
    StartRun,
    rollout_id_for,
)
from activities.tasks.contract import TaskInputError
from activities.telemetry import Telemetry

REDACTED = "[redacted]"


def redact(value: Any, fields: frozenset[str]) -> Any:
    """Replace the values of keys named in ``fields``, at any depth."""
    if not fields:
        return value
    if isinstance(value, dict):
        return {k: (REDACTED if k in fields else redact(v, fields)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, fields) for v in value]
    return value


class _RecordingModel:
    """Keeps every response, so the evidence names the model, latency and tokens."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: list[ModelResponse] = []

    async def complete(self, request: ModelRequest) -> ModelResponse:
        response: ModelResponse = await self._inner.complete(request)
        self.calls.append(response)
        return response


def _fail(exc: Exception, kind: str, *, retryable: bool = False, details: Any = None) -> ApplicationError:
    args = (details,) if details is not None else ()
    return ApplicationError(str(exc), *args, type=kind, non_retryable=not retryable)


def _evidence_failure(exc: Exception) -> ApplicationError:
    """A database error while appending evidence: retried while Postgres is away (it comes back and the
    run resumes); refused at once when the database rejects the row itself (a bug, or a tampered chain
    whose guard trigger refuses), so the run surfaces instead of retrying forever."""
    if is_transient(exc):
        return _fail(exc, "EvidenceUnavailable", retryable=True)
    return _fail(exc, "EvidenceRejected")


class RunActivities:
    def __init__(
        self,
        registry: Registry,
        store: EvidenceStore,
        client: Client | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._registry = registry
        self._store = store
        self._client = client
        self._telemetry = telemetry or Telemetry.default()

    def _registration(self, task: str, version: str) -> Registration:
        try:
            return self._registry.get(task, version)
        except UnknownTask as exc:
            raise _fail(exc, "UnknownTask") from exc

    async def _append(
        self,
        task: str,
        run_id: str,
        seq: int,
        at: Any,
        items: list[EvidenceItem],
        redact_fields: frozenset[str],
        run: RunRecord | None = None,
    ) -> str:
        """Append ``items`` at ``seq``...; returns the hash of the last one (stored now or before)."""
        batch = []
        for offset, item in enumerate(items):
            payload = redact(item.payload, redact_fields)
            event = EvidenceEvent(
                stream="run",
                stream_id=run_id,
                seq=seq + offset,
                kind=item.kind,
                occurred_at=item.at or at,
                payload=payload,
            )
            projection_type = PROJECTED.get(item.kind)
            batch.append((event, projection_type.model_validate(payload) if projection_type else None))
        return (await self._store_batch("run", task, batch, run))[-1].hash

    async def _note_divergence(
        self, batch: Sequence[tuple[EvidenceEvent, ProjectedRecord | None]], exc: EvidenceConflictError
    ) -> None:
        """A conflict means the run's history and its chain disagree: real divergence, never a retry.
        Before the run fails (visibly, in Temporal), the chain itself says so at its next free seq,
        with the rows that were refused, so an auditor reading the evidence sees it too."""
        first = batch[0][0]
        try:
            seq = await self._store.next_seq(first.stream, first.stream_id)
            note = EvidenceEvent(
                stream=first.stream, stream_id=first.stream_id, seq=seq, kind="evidence_diverged",
                occurred_at=first.occurred_at,
                payload={
                    "detail": str(exc),
                    "refused": [{"seq": e.seq, "kind": e.kind} for e, _ in batch],
                    "what_next": "the run stops here; compare its Temporal history with this chain",
                },
            )  # fmt: skip
            await self._store.append_many([(note, None)])
        except Exception:  # best effort: the refusal itself still fails the activity
            activity.logger.exception("could not record evidence_diverged for %s", first.stream_id)

    async def _store_batch(
        self,
        stream: Stream,
        task: str,
        batch: Sequence[tuple[EvidenceEvent, ProjectedRecord | None]],
        run: RunRecord | None = None,
    ) -> list[AppendResult]:
        """The one path by which activities append evidence: timed, errors typed for Temporal (a conflict
        or gap is final; a database error by its SQLSTATE), and each newly stored event counted once."""
        try:
            with self._telemetry.timing_write(stream):
                results = await self._store.append_many(batch, run=run)
        except EvidenceConflictError as exc:
            await self._note_divergence(batch, exc)
            raise _fail(exc, type(exc).__name__) from exc
        except EvidenceGapError as exc:
            raise _fail(exc, type(exc).__name__) from exc
        except (OSError, asyncpg.PostgresError) as exc:
            raise _evidence_failure(exc) from exc
        stored = [event for (event, _), result in zip(batch, results, strict=True) if result.stored]
        await self._telemetry.observe(self._store, task, stored)
        return results

    @staticmethod
    def _run_record(s: StartRun, policy_digest: str) -> RunRecord:
        return RunRecord(
            run_id=s.run_id, task=s.task, task_version=s.task_version, policy_digest=policy_digest,
            item_key=s.item_key, requester=s.requester, stage=s.stage, mode=s.mode, started_at=s.at,
            rollout_id=s.rollout_id,
        )  # fmt: skip

    @activity.defn(name="govflow.start_run")
    async def start_run(self, start: StartRun) -> RunSetup:
        """Hand the workflow its task's policy. The run is registered with its first evidence rows.

        Kept under its own name (recorded histories schedule it); the work is ``load_policy``'s.
        """
        return await self.load_policy(PolicyRequest(task=start.task, task_version=start.task_version))

    @activity.defn(name="govflow.load_policy")
    async def load_policy(self, request: PolicyRequest) -> RunSetup:
        reg = self._registration(request.task, request.task_version)
        return RunSetup(policy_json=reg.policy_json, policy_digest=reg.digest, next_seq=1)

    @activity.defn(name="govflow.record_rollout_evidence")
    async def record_rollout_evidence(self, rec: RecordRolloutEvidence) -> int:
        """Append one rollout event at ``seq``; returns the next free seq. Safe to retry (before evidence-v2)."""
        row = RolloutRow(kind=rec.kind, payload=rec.payload, at=rec.at)
        return await self.append_rollout_evidence(
            RecordRolloutBatch(rollout_id=rec.rollout_id, task=rec.task, task_version=rec.task_version, seq=rec.seq,
                               rows=[row])
        )  # fmt: skip

    @activity.defn(name="govflow.rollout_next_seq")
    async def rollout_next_seq(self, rollout_id: str) -> int:
        """Where a (re)started rollout continues its chain: one chain per rollout id, across restarts."""
        return await self._store.next_seq("rollout", rollout_id)

    @activity.defn(name="govflow.rollback_data")
    async def rollback_data(self, request: DataRollback) -> list[RestoredRecord]:
        """Undo a rollout's live writes, newest first: restore the before image of the written fields
        only where the record still holds the after image; otherwise flag a conflict for review."""
        reg = self._registration(request.task, request.task_version)
        io = ScopedConnectors(reg.policy, reg.connectors)
        out: list[RestoredRecord] = []
        for w in await self._store.rollout_live_writes(request.rollout_id, request.since):
            before, after = w["before_image"] or {}, w["after_image"] or {}
            written = sorted(k for k in after if before.get(k) != after.get(k))
            base = {k: w[k] for k in ("run_id", "action_id", "system", "resource", "record_id")}
            if w["operation"] not in ("update", "reply", "pay") or not before:
                out.append(RestoredRecord(**base, outcome="conflict", detail=f"a {w['operation']} cannot be undone"))
                continue
            current = await io.read(w["system"], w["resource"], w["record_id"]) or {}
            restore = {k: before.get(k) for k in written}
            if all(current.get(k) == restore[k] for k in written):
                out.append(RestoredRecord(**base, outcome="already_restored", detail="holds the before image"))
                continue
            changed = [k for k in written if current.get(k) != after.get(k)]
            if changed:
                detail = f"changed since the write: {', '.join(changed)}; left for review"
                out.append(RestoredRecord(**base, outcome="conflict", detail=detail))
                continue
            request_ = WriteRequest(
                # The same operation on the same fields: a restore needs no grant the write did not have.
                resource=w["resource"], record_id=w["record_id"], operation=w["operation"], fields=restore,
                idempotency_key=f"rollback:{w['run_id']}:{w['action_id']}",
            )  # fmt: skip
            try:
                await io.write(w["system"], request_)
            except (ScopeViolation, ConnectorError) as exc:
                out.append(RestoredRecord(**base, outcome="conflict", detail=f"restore refused: {exc}"))
                continue
            out.append(RestoredRecord(**base, outcome="restored", detail="before image restored", fields=restore))
        return out

    @staticmethod
    def _rollouts(inp: PublishInput) -> list[str]:
        """The rollouts a live write answers to: the one that admitted it, and the version's own."""
        canonical = rollout_id_for(inp.task, inp.task_version)
        return [r for r in dict.fromkeys([inp.rollout_id, canonical]) if r is not None]

    async def _lease(self, inp: PublishInput, rollouts: list[str]) -> None:
        """Publish authority, right before the write, from each of ``rollouts`` (``_rollouts``): the one
        that admitted the run, and the task version's own whenever it runs. A refusal is final."""
        for rollout_id in rollouts:
            answer = await self._ask_lease(rollout_id, inp, required=rollout_id == inp.rollout_id)
            if answer is not None and not answer.accepted:
                raise ApplicationError(answer.reason, type=LEASE_REFUSED, non_retryable=True)

    async def _ask_lease(self, rollout_id: str, inp: PublishInput, *, required: bool) -> ControlAnswer | None:
        """The rollout's answer; None when no such rollout runs and none was required."""
        if self._client is None:
            if not required:
                return None  # a worker without Temporal (an activity test) cannot ask
            raise ApplicationError("this worker has no Temporal client to lease with", type=LEASE_REFUSED,
                                   non_retryable=True)  # fmt: skip
        handle = self._client.get_workflow_handle(rollout_id)
        try:
            answer: ControlAnswer = await handle.execute_update(
                "lease", LeaseRequest(run_id=inp.run_id, stage=inp.stage), result_type=ControlAnswer
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
                "admit_run",
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

    @activity.defn(name="govflow.read_run_outcomes")
    async def read_run_outcomes(self, req: OutcomeRequest) -> list[OutcomeAnswer]:
        """Runs' outcomes as their own evidence records them, for their rollout to count.

        A run is refused unless its chain verifies, its run row names this rollout, and it ends with
        ``run_finished`` carrying the report: a signal's payload is never believed.
        """
        return [await self._outcome(req.rollout_id, run_id) for run_id in req.run_ids]

    async def _outcome(self, rollout_id: str, run_id: str) -> OutcomeAnswer:
        run = await self._store.run(run_id)
        if run is None:
            return OutcomeAnswer(run_id=run_id, refused=f"no evidence of a run {run_id}")
        if run.get("rollout_id") != rollout_id:
            return OutcomeAnswer(run_id=run_id, refused=f"run {run_id} was not admitted by {rollout_id}")
        finished = await self._store.last_event(run_id, "run_finished")
        if finished is None:
            return OutcomeAnswer(run_id=run_id, refused=f"run {run_id} has not finished")
        problem = (await self._store.verify("run", run_id)).problem
        if problem is not None:
            return OutcomeAnswer(run_id=run_id, refused=f"run {run_id}'s evidence does not verify: {problem}")
        raw = finished.get("report")
        if not isinstance(raw, dict):
            return OutcomeAnswer(run_id=run_id, refused=f"run {run_id}'s run_finished carries no report")
        return OutcomeAnswer(run_id=run_id, report=RunReport.model_validate(raw))

    @activity.defn(name="govflow.append_rollout_evidence")
    async def append_rollout_evidence(self, rec: RecordRolloutBatch) -> int:
        """Append rollout events at ``seq``... in one commit; returns the next free seq. Safe to retry."""
        batch = [
            (EvidenceEvent(stream="rollout", stream_id=rec.rollout_id, seq=rec.seq + i, kind=row.kind,
                           occurred_at=row.at, payload=row.payload), None)
            for i, row in enumerate(rec.rows)
        ]  # fmt: skip
        if batch:
            await self._store_batch("rollout", rec.task, batch)
        return rec.seq + len(batch)

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
            raise _fail(exc, "incomplete_input") from exc
        try:
            context = await reg.task.gather(item, io)
        except ScopeViolation as exc:
            raise _fail(exc, SCOPE_VIOLATION, details=exc.refusal.model_dump()) from exc
        except TaskInputError as exc:
            raise _fail(exc, exc.kind) from exc
        except ConnectorError as exc:
            raise _fail(exc, "ConnectorError", retryable=exc.retryable) from exc
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
            raise _fail(exc, "ModelError", retryable=exc.retryable) from exc
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
                type="InvalidAction",
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
                # The fence is held from the lease to the end of the write: a pause waits for this write
                # before it is recorded, and no write starts once it is (see migration 0004).
                rollouts = self._rollouts(inp)
                async with self._store.fence(rollouts) as paused:
                    await self._lease(inp, rollouts)  # right before the write: a paused rollout refuses
                    if paused:  # a pause under way: its workflow may not know yet, its fence does
                        raise ApplicationError(
                            f"rollout is paused (fence of {', '.join(paused)})", type=LEASE_REFUSED,
                            non_retryable=True,
                        )  # fmt: skip
                    result = await io.write(action.system, request)
        except ScopeViolation as exc:
            raise _fail(exc, SCOPE_VIOLATION, details=exc.refusal.model_dump()) from exc
        except ConnectorError as exc:
            raise _fail(exc, "ConnectorError", retryable=exc.retryable) from exc
        except (OSError, asyncpg.PostgresError) as exc:  # the fence's own database (the evidence one)
            raise _evidence_failure(exc) from exc
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

    @activity.defn(name="govflow.set_fence")
    async def set_fence(self, request: FenceRequest) -> None:
        """Pause (or unpause) a rollout's fence; pausing returns once every write holding it is done."""
        await self._store.set_fence(request.rollout_id, request.paused)

    def all(self) -> list[Any]:
        return [
            self.gather, self.propose, self.publish, self.start_run, self.record_evidence, self.load_policy,
            self.record_rollout_evidence, self.rollout_next_seq, self.rollback_data, self.admit,
            self.read_run_outcomes, self.append_run_evidence, self.append_rollout_evidence, self.set_fence,
        ]  # fmt: skip
