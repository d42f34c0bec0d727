"""How a governed run's activities answer to its rollout: admission (how the run may run), publish
authority (a lease, right before the write), and the fence in Postgres that a pause or rollback sets
(migrations 0004, 0007, 0008). The base of RunActivities."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import asyncpg
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from govflow.activities.common import GovflowActivities, evidence_failure
from govflow.activities.evidence.store import FenceHold
from govflow.activities.names import ADMIT_RUN, LEASE, ErrorType
from govflow.activities.rollout_messages import AdmitRequest, ControlAnswer, LeaseRequest, RunAdmission, rollout_id_for
from govflow.activities.run_messages import (
    AdmitInput,
    PublishAll,
)


class RolloutAuthority(GovflowActivities):
    """Admission, leases and the fence, for RunActivities."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Rollout id -> the fence generation at which asking it answered NOT_FOUND (see ``admit``).
        self._absent: dict[str, int] = {}

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


def _no_rollout(inp: AdmitInput, rollout_id: str, generation: int | None) -> RunAdmission:
    return RunAdmission(rollout_id=None, stage=inp.stage, mode=inp.requested,
                        reason=f"no rollout {rollout_id} runs", fence_generation=generation)  # fmt: skip


def refuse_if_stopped(stopped: list[str], grant: str | None) -> None:
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
