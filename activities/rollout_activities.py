"""The activities of a rollout: its evidence, the outcomes it counts, its fence, data rollback."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from govflow.activities.common import GovflowActivities, evidence_failure
from govflow.activities.connectors.connector import ConnectorError, WriteRequest
from govflow.activities.connectors.guard import ScopedConnectors, ScopeViolation
from govflow.activities.evidence.backtests import backtest_on_record
from govflow.activities.evidence.events import RunFinished, UnreadableEvent
from govflow.activities.rollout_messages import (
    BacktestFound,
    DataRollback,
    FenceRequest,
    OutcomeAnswer,
    OutcomeRequest,
    PolicyRequest,
    RecordRolloutBatch,
    RecordRolloutEvidence,
    RolloutRow,
)
from govflow.activities.run_messages import RestoredRecord, RunSetup
from govflow.policies import Policy

_CLOSING_POLLS, _CLOSING_POLL_S = 25, 0.2


class RolloutActivities(GovflowActivities):
    @activity.defn(name="govflow.load_policy")
    async def load_policy(self, request: PolicyRequest) -> RunSetup:
        return self._setup(request.task, request.task_version)

    @activity.defn(name="govflow.find_backtest")
    async def find_backtest(self, request: PolicyRequest) -> BacktestFound:
        """The newest backtest on record of exactly this task version under its policy that meets the
        policy's bars (rollout.backtest), or why none does."""
        reg = self._registration(request.task, request.task_version)
        bar = reg.policy.rollout.backtest
        if bar is None:
            return BacktestFound()
        try:
            found, why = await backtest_on_record(self._store, request.task, request.task_version, reg.digest, bar)
        except (OSError, asyncpg.PostgresError) as exc:
            raise evidence_failure(exc) from exc
        return BacktestFound(stream_id=found, refusal=why)

    @activity.defn(name="govflow.record_rollout_evidence")
    async def record_rollout_evidence(self, rec: RecordRolloutEvidence) -> int:
        """Append one rollout event at ``seq``; returns the next free seq. Safe to retry (before evidence-v2)."""
        row = RolloutRow(kind=rec.kind, payload=rec.payload, at=rec.at)
        return await self.append_rollout_evidence(
            RecordRolloutBatch(rollout_id=rec.rollout_id, task=rec.task, task_version=rec.task_version, seq=rec.seq,
                               rows=[row])
        )  # fmt: skip

    @activity.defn(name="govflow.append_rollout_evidence")
    async def append_rollout_evidence(self, rec: RecordRolloutBatch) -> int:
        """Append rollout events at ``seq``... in one commit; returns the next free seq. Safe to retry."""
        rows = [(row.kind, row.payload, row.at) for row in rec.rows]
        return await self._append_chain("rollout", rec.rollout_id, rec.task, rec.seq, rows)

    @activity.defn(name="govflow.rollout_next_seq")
    async def rollout_next_seq(self, rollout_id: str) -> int:
        """Where a (re)started rollout continues its chain: one chain per rollout id, across restarts."""
        return await self._store.next_seq("rollout", rollout_id)

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
            return await self._unfinished(run_id, f"no evidence of a run {run_id}")
        if run.rollout_id != rollout_id:
            return OutcomeAnswer(run_id=run_id, refused=f"run {run_id} was not admitted by {rollout_id}")
        finished = await self._store.last_event(run_id, RunFinished)
        if finished is None:
            return await self._unfinished(run_id, f"run {run_id} has not finished")
        problem = (await self._store.verify("run", run_id)).problem
        if problem is not None:
            return OutcomeAnswer(run_id=run_id, refused=f"run {run_id}'s evidence does not verify: {problem}")
        if isinstance(finished, UnreadableEvent):
            why = f"run {run_id}'s run_finished is unreadable: {finished.problem}"
            return OutcomeAnswer(run_id=run_id, refused=why)
        if finished.report is None:
            return OutcomeAnswer(run_id=run_id, refused=f"run {run_id}'s run_finished carries no report")
        return OutcomeAnswer(run_id=run_id, report=finished.report)

    async def _unfinished(self, run_id: str, refused: str) -> OutcomeAnswer:
        """A run whose evidence holds no ``run_finished``: released if it has ended, else refused (not yet)."""
        ended = await self._ended_without_report(run_id)
        return OutcomeAnswer(run_id=run_id, released=ended) if ended else OutcomeAnswer(run_id=run_id, refused=refused)

    async def _ended_without_report(self, run_id: str) -> str:
        """Why an admitted run whose evidence holds no ``run_finished`` will never report (Temporal says its
        execution is closed: it failed, timed out or was terminated), or empty while it may still. The
        rollout's word for this is Temporal's, never the signal that asked.

        A failing run nudges its rollout just before it closes (its failure is the next workflow task), so
        a run still running is asked again for a few seconds before the answer is "not yet"."""
        if self._client is None:
            return ""
        handle = self._client.get_workflow_handle(run_id)
        for _ in range(_CLOSING_POLLS):
            try:
                described = await handle.describe(rpc_timeout=timedelta(seconds=10))
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return ""
                raise
            status = described.status
            if status not in (None, WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW):
                return f"run {run_id} ended {status.name.lower()} without finishing: its slot is released, uncounted"
            await asyncio.sleep(_CLOSING_POLL_S)
        return ""

    @activity.defn(name="govflow.set_fence")
    async def set_fence(self, request: FenceRequest) -> None:
        """Pause (or unpause) a rollout's fence; pausing returns once every write holding it is done."""
        await self._store.set_fence(request.rollout_id, request.paused, request.epoch)

    @activity.defn(name="govflow.rollback_data")
    async def rollback_data(self, request: DataRollback) -> list[RestoredRecord]:
        """Undo a rollout's live writes, newest first: restore the before image of the written fields (void
        a created record, as its grant says) only where the record still holds the after image; otherwise
        flag a conflict for review."""
        reg = self._registration(request.task, request.task_version)
        io = ScopedConnectors(reg.policy, reg.connectors)
        out: list[RestoredRecord] = []
        for w in await self._store.rollout_live_writes(request.rollout_id, request.since):
            after = w["after_image"] or {}
            base = {k: w[k] for k in ("run_id", "action_id", "system", "resource", "record_id")}
            plan = undo_plan(reg.policy, w)
            if isinstance(plan, str):
                out.append(RestoredRecord(**base, outcome="conflict", detail=plan))
                continue
            operation, watched, restore = plan
            current = await io.read(w["system"], w["resource"], w["record_id"])
            if current is None:
                out.append(RestoredRecord(**base, outcome="conflict", detail="the record no longer exists"))
                continue
            if all(current.get(k) == v for k, v in restore.items()):
                out.append(RestoredRecord(**base, outcome="already_restored", detail="holds the before image"))
                continue
            changed = [k for k in watched if current.get(k) != after.get(k)]
            if changed:
                detail = f"changed since the write: {', '.join(changed)}; left for review"
                out.append(RestoredRecord(**base, outcome="conflict", detail=detail))
                continue
            request_ = WriteRequest(
                # An update of fields the write's own grant covers: a restore needs no grant the write did not have.
                resource=w["resource"], record_id=w["record_id"], operation=operation, fields=restore,
                idempotency_key=f"rollback:{w['run_id']}:{w['action_id']}",
            )  # fmt: skip
            try:
                await io.write(w["system"], request_)
            except (ScopeViolation, ConnectorError) as exc:
                out.append(RestoredRecord(**base, outcome="conflict", detail=f"restore refused: {exc}"))
                continue
            done = "voided as its grant says" if w["operation"] == "create" else "before image restored"
            out.append(RestoredRecord(**base, outcome="restored", detail=done, fields=restore))
        return out

    def all(self) -> list[Any]:
        return [
            self.load_policy, self.record_rollout_evidence, self.append_rollout_evidence, self.rollout_next_seq,
            self.read_run_outcomes, self.set_fence, self.rollback_data, self.find_backtest,
        ]  # fmt: skip


def undo_plan(policy: Policy, write: Mapping[str, Any]) -> tuple[str, list[str], dict[str, Any]] | str:
    """How to undo one live write: the operation, the fields that must still hold the after image, and
    the fields to set; or why it cannot be undone.

    An update (reply, pay) is undone by writing back the before image of the fields it changed. A record
    the run created is voided with its grant's ``void`` (a ledger cancels, never deletes), and only while
    the whole record is as the run left it.
    """
    before, after = write["before_image"] or {}, write["after_image"] or {}
    operation = write["operation"]
    if operation == "create":
        void = next(
            (g.void for g in policy.grants
             if (g.system, g.resource) == (write["system"], write["resource"]) and g.void and "create" in g.operations),
            None,
        )  # fmt: skip
        if void is None or not after:
            return f"a create cannot be undone: no grant for {write['system']}.{write['resource']} says how to void it"
        return "update", sorted(after), dict(void)
    if operation not in ("update", "reply", "pay") or not before:
        return f"a {operation} cannot be undone"
    written = sorted(k for k in after if before.get(k) != after.get(k))
    return operation, written, {k: before.get(k) for k in written}
