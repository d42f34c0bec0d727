"""The evidence ledgers of the two workflows: where their next row goes, in order, exactly once.

A ledger owns its chain's next sequence number and the lock that orders appends. Rows are appended
by activities: an activity's input is fixed in history when the workflow task completes, so a
retried task or a crashed worker never writes a row differently. (A rollout's histories from before
evidence-v2 append through a local activity, kept for replay: the rollout is AUTO_UPGRADE.)
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from govflow.activities.evidence.events import DataConflict, DataRestored, Event, RunReport, ScopeRefused
    from govflow.activities.rollout_activities import RolloutActivities
    from govflow.activities.rollout_messages import (
        DataRollback,
        FenceRequest,
        RecordRolloutBatch,
        RecordRolloutEvidence,
        RolloutRow,
    )
    from govflow.activities.run_activities import RunActivities
    from govflow.activities.run_messages import (
        EvidenceItem,
        PlannedWrite,
        PublishAll,
        PublishedAll,
        RecordEvidence,
        StartRun,
    )
    from govflow.workflows.rollout_api import RolloutState

LOCAL = timedelta(seconds=30)
# A write is one short transaction; a worker that dies mid-write is retried after this.
PUBLISH = timedelta(seconds=10)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
# Setting the fence waits for the writes holding it (each bounded by PUBLISH).
FENCE = timedelta(seconds=60)
# Evidence appends retry quickly at first: a short outage should cost a run little.
EVIDENCE_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))


class RunLedger:
    """A run's chain. Rows may be deferred (``defer``) to ride with the next append or the next write."""

    def __init__(self, run_id: str, task: str, task_version: str) -> None:
        self.run_id = run_id
        self.seq = 1
        self.head: str | None = None
        self.lock = asyncio.Lock()
        self.task = task
        self.task_version = task_version
        self.start: StartRun | None = None
        self._pending: list[EvidenceItem] = []
        self._recording = 0

    def defer(self, *rows: Event | EvidenceItem) -> None:
        """Append these with the next rows, in the same commit."""
        self._pending += [r if isinstance(r, EvidenceItem) else EvidenceItem.of(r) for r in rows]

    def take_pending(self) -> list[EvidenceItem]:
        """The deferred rows, handed to an activity that appends them (the caller holds ``lock``)."""
        rows, self._pending = self._pending, []
        return rows

    @property
    def opening(self) -> StartRun | None:
        """The run's registration, sent with its first rows."""
        return self.start if self.seq == 1 else None

    @property
    def idle(self) -> bool:
        """No append is under way or waiting: a row deferred now cannot overtake one recorded earlier."""
        return self._recording == 0

    async def record(self, *rows: Event | EvidenceItem) -> None:
        self._recording += 1
        try:
            async with self.lock:
                await self.record_locked(*rows)
        finally:
            self._recording -= 1

    async def record_locked(self, *rows: Event | EvidenceItem) -> None:
        """Append the deferred rows and ``rows`` at the next sequence numbers, in one commit."""
        self.defer(*rows)
        items = self.take_pending()
        if not items:
            return
        rec = RecordEvidence(
            run_id=self.run_id, task=self.task, task_version=self.task_version, seq=self.seq, at=workflow.now(),
            items=items, start=self.opening,
        )  # fmt: skip
        appended = await workflow.execute_activity_method(
            RunActivities.append_run_evidence, rec, start_to_close_timeout=LOCAL, retry_policy=EVIDENCE_RETRY
        )
        self.seq, self.head = appended.next_seq, appended.head

    async def publish_all(
        self, writes: list[PlannedWrite], *, rollout_id: str | None, stage: str, then: list[EvidenceItem],
        report: RunReport | None = None, fence_generation: int | None = None,
    ) -> PublishedAll:  # fmt: skip
        """Write a run's approved actions in one activity: the deferred rows, the touched
        records and ``then`` in one commit; a refused write is recorded there too, and named in the result."""
        async with self.lock:
            batch = PublishAll(
                run_id=self.run_id, task=self.task, task_version=self.task_version, writes=writes, seq=self.seq,
                at=workflow.now(), before=self.take_pending(), start=self.opening, rollout_id=rollout_id, stage=stage,
                then=then, report=report, fence_generation=fence_generation,
            )  # fmt: skip
            result = await workflow.execute_activity_method(
                RunActivities.publish_all, batch, start_to_close_timeout=PUBLISH, retry_policy=RETRY
            )
            self.seq, self.head = result.next_seq, result.head
        return result


def scope_refusal(cause: ApplicationError) -> ScopeRefused:
    """The evidence of a read or write the scope guard refused (its details, else its message)."""
    refusal = cause.details[0] if cause.details else {"reason": cause.message}
    return ScopeRefused.model_validate(refusal)


class RolloutLedger:
    """A rollout's chain. Its next sequence number lives in the rollout's state (continue-as-new carries
    it over), so the ledger reads and writes it there."""

    def __init__(self, rollout_id: str, task: str, task_version: str, state: RolloutState) -> None:
        self.rollout_id = rollout_id
        self.task = task
        self.task_version = task_version
        self.state = state
        self.v2 = False
        self.fenced = False
        self.local = False  # local-fence: the fence set by a local activity
        self._lock = asyncio.Lock()
        self._outbox: list[RolloutRow] = []

    async def set_fence(self, paused: bool) -> None:
        """The rollout's fence in Postgres (pause-fence): pausing returns once every live write holding it
        has finished, and no write starts after; unpausing lets writes start again. Every stop moves the
        fence to a new epoch, so a lease granted before it (it carries its epoch) never writes after it."""
        if not self.fenced:
            return
        if paused:
            self.state.fence_epoch += 1
        request = FenceRequest(rollout_id=self.rollout_id, paused=paused, epoch=self.state.fence_epoch)
        if self.local:  # no queue to wait in behind the runs' activities; the same request if the task is retried
            await workflow.execute_local_activity_method(
                RolloutActivities.set_fence, request, start_to_close_timeout=FENCE, retry_policy=EVIDENCE_RETRY
            )
            return
        await workflow.execute_activity_method(
            RolloutActivities.set_fence, request, start_to_close_timeout=FENCE, retry_policy=EVIDENCE_RETRY
        )

    async def restore_data(self, since: datetime | None) -> tuple[int, int, int]:
        """Undo the rollout's live writes (newest first) and record each restore or conflict; returns the
        rows it recorded: records back as before, of those restored now (the rest already held their before
        image: a ``data_restored`` row with nothing written), and conflicts left for review."""
        results = await workflow.execute_activity_method(
            RolloutActivities.rollback_data,
            DataRollback(rollout_id=self.rollout_id, task=self.task, task_version=self.task_version, since=since),
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RETRY,
        )
        for r in results:
            restoration = DataConflict if r.outcome == "conflict" else DataRestored
            await self.record(restoration(**r.model_dump()))
        back, restored = sum(r.outcome != "conflict" for r in results), sum(r.outcome == "restored" for r in results)
        return back, restored, len(results) - back

    async def record(self, event: Event) -> None:
        if self.v2:
            await self._record_batched(event)
            return
        async with self._lock:
            self.state.evidence_seq = await workflow.execute_local_activity_method(
                RolloutActivities.record_rollout_evidence,
                RecordRolloutEvidence(
                    rollout_id=self.rollout_id, task=self.task, task_version=self.task_version,
                    seq=self.state.evidence_seq, at=workflow.now(), kind=event.kind, payload=event.payload(),
                ),
                start_to_close_timeout=LOCAL,
                retry_policy=RETRY,
            )  # fmt: skip

    async def _record_batched(self, event: Event) -> None:
        """Rows queue in order; whoever holds the lock appends everything queued in one activity
        (a burst of refused reports is one commit, not a thousand)."""
        self._outbox.append(RolloutRow.of(event, workflow.now()))
        async with self._lock:
            if not self._outbox:
                return  # appended by the batch of an earlier holder
            rows, self._outbox = self._outbox, []
            self.state.evidence_seq = await workflow.execute_activity_method(
                RolloutActivities.append_rollout_evidence,
                RecordRolloutBatch(
                    rollout_id=self.rollout_id, task=self.task, task_version=self.task_version,
                    seq=self.state.evidence_seq, rows=rows,
                ),
                start_to_close_timeout=LOCAL,
                retry_policy=EVIDENCE_RETRY,
            )  # fmt: skip
