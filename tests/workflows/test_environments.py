"""A small workflow with one real activity runs on both Temporal environments."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment

with workflow.unsafe.imports_passed_through():
    from activities.evidence import EvidenceEvent, EvidenceStore
    from workers.worker import build_worker


class NoteInput(BaseModel):
    run_id: str
    text: str


@workflow.defn
class NoteWorkflow:
    """Appends one evidence event through the real activity."""

    @workflow.run
    async def run(self, data: NoteInput) -> str:
        event = EvidenceEvent(
            stream="run",
            stream_id=data.run_id,
            seq=1,
            kind="note",
            occurred_at=workflow.now(),
            payload={"text": data.text},
        )
        result: str = await workflow.execute_activity(
            "govflow.append_evidence",
            event,
            result_type=str,
            start_to_close_timeout=timedelta(seconds=30),
        )
        return result


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
    run_id = f"run-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue, store, workflows=[NoteWorkflow]):
        digest = await env.client.execute_workflow(
            NoteWorkflow.run,
            NoteInput(run_id=run_id, text="hello"),
            id=f"wf-{uuid.uuid4()}",
            task_queue=task_queue,
        )
    (event,) = await store.events("run", run_id)
    assert event["payload"] == {"text": "hello"}
    assert event["hash"] == digest
