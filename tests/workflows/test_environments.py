"""A small workflow with one real activity runs on both Temporal environments."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment

with workflow.unsafe.imports_passed_through():
    from govflow.activities.evidence import EvidenceStore
    from govflow.activities.rollout_activities import RolloutActivities
    from govflow.activities.rollout_messages import RecordRolloutBatch, RolloutRow
    from govflow.workers.worker import build_worker


class NoteInput(BaseModel):
    stream_id: str
    text: str


@workflow.defn
class NoteWorkflow:
    """Appends one evidence event through the real activity, called by method reference."""

    @workflow.run
    async def run(self, data: NoteInput) -> int:
        row = RolloutRow(kind="note", payload={"text": data.text}, at=workflow.now())
        return await workflow.execute_activity_method(
            RolloutActivities.append_rollout_evidence,
            RecordRolloutBatch(rollout_id=data.stream_id, task="notes", task_version="1", seq=1, rows=[row]),
            start_to_close_timeout=timedelta(seconds=30),
        )


@pytest.fixture(params=["time-skipping", "dev-server"])
def either_env(
    request: pytest.FixtureRequest,
    time_skipping_env: WorkflowEnvironment,
    dev_server_env: WorkflowEnvironment,
) -> WorkflowEnvironment:
    return time_skipping_env if request.param == "time-skipping" else dev_server_env


async def test_a_workflow_with_one_activity_runs(
    either_env: WorkflowEnvironment, store: EvidenceStore, task_queue: str
) -> None:
    env = either_env
    stream_id = f"notes-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue, store, workflows=[NoteWorkflow]):
        next_seq = await env.client.execute_workflow(
            NoteWorkflow.run,
            NoteInput(stream_id=stream_id, text="hello"),
            id=f"wf-{uuid.uuid4()}",
            task_queue=task_queue,
        )
    (event,) = await store.events("rollout", stream_id)
    assert event["payload"] == {"text": "hello"}
    assert next_seq == 2
