"""Driving a rollout in tests: start one, admit and finish runs as the worker would, wait on its status."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from govflow.activities.evidence import EvidenceStore, RunRecord
from govflow.activities.rollout_messages import AdmitRequest, RunAdmission
from govflow.examples.support_triage import EXAMPLES
from govflow.workflows.rollout import RolloutWorkflow, bucket
from govflow.workflows.rollout_api import (
    ReportPoke,
    RolloutInput,
    RolloutStatus,
    RunReport,
)
from tests.helpers import eventually

STARTED: list[WorkflowHandle[RolloutWorkflow, None]] = []


def window_policy_text() -> str:
    """The support-triage example with every quality rule on the earlier sliding window."""
    text = (EXAMPLES / "support-triage.yaml").read_text()
    return text.replace("      metric: ", "      method: window\n      metric: ")


async def start_rollout(env: WorkflowEnvironment, task_queue: str, **kw: Any) -> WorkflowHandle[RolloutWorkflow, None]:
    handle = await env.client.start_workflow(
        RolloutWorkflow.run,
        RolloutInput(task="support-triage", **kw),
        id=f"rollout-{uuid.uuid4()}",
        task_queue=task_queue,
    )
    STARTED.append(handle)
    return handle


async def admit_runs(
    handle: WorkflowHandle[RolloutWorkflow, None], n: int, *, live: bool = False
) -> list[RunAdmission]:
    """Admit ``n`` runs as the govflow worker does for each run it starts (the admit_run Update)."""
    out = []
    for _ in range(n):
        run_id = f"r-{uuid.uuid4().hex[:10]}"
        key = live_key() if live else run_id
        request = AdmitRequest(run_id=run_id, item_key=key, requested="live" if live else "shadow")
        for attempt in range(20):
            try:
                admission = await handle.execute_update(RolloutWorkflow.admit_run, request)
                break
            except RPCError:  # the time-skipping server can lose an Update that races a workflow task
                if attempt == 19:
                    raise
                await asyncio.sleep(0.05)
        out.append(admission.model_copy(update={"reason": run_id}))
    return out


def live_key() -> str:
    """An item key whose stable bucket is under 0.1: live in every stage with a live share."""
    while True:
        key = f"item-{uuid.uuid4().hex[:8]}"
        if bucket(key) < 0.1:
            return key


async def finish_runs(
    handle: WorkflowHandle[RolloutWorkflow, None], store: EvidenceStore, runs: list[RunAdmission], passed: int
) -> None:
    """Each admitted run finishes as a real one would: its evidence (run row, run_finished with the
    report) in the store, then the ``report`` nudge. The first ``passed`` pass their checks."""
    for i, admission in enumerate(runs):
        run_id = admission.reason
        record = RunRecord(
            run_id=run_id, task="support-triage", task_version="1", policy_digest="test", item_key=run_id,
            requester="priya", stage=admission.stage, mode=admission.mode, started_at=datetime.now(UTC),
            rollout_id=handle.id,
        )  # fmt: skip
        await store.start_run(record)
        report = RunReport(run_id=run_id, stage=admission.stage, mode=admission.mode, checks_passed=i < passed)
        finished = {"outcome": "shadowed", "reason": "", "actions": [], "report": report.model_dump(mode="json")}
        await store.append_event("run", run_id, 2, "run_finished", datetime.now(UTC), finished)
        await handle.signal(RolloutWorkflow.report, ReportPoke(run_id=run_id))


async def report_runs(
    handle: WorkflowHandle[RolloutWorkflow, None], store: EvidenceStore, passed: int, failed: int
) -> None:
    await finish_runs(handle, store, await admit_runs(handle, passed + failed), passed)


async def rollout_status(handle: WorkflowHandle[RolloutWorkflow, None]) -> RolloutStatus:
    # A query that reaches a run just as it continues-as-new waits out its whole RPC timeout.
    return await handle.query(RolloutWorkflow.status, rpc_timeout=timedelta(seconds=2))


async def until(handle: WorkflowHandle[RolloutWorkflow, None], predicate: Any) -> RolloutStatus:
    # A query can time out while a continue-as-new is retried.
    return await eventually(lambda: rollout_status(handle), predicate, tries=300, every=0.1, tolerate=(RPCError,))
