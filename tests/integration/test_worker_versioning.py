"""Worker Versioning on the dev server: build A and build B side by side. A governed run started on A and
approved after B became current finishes on A (PINNED: it needs no patch); new runs go to B; a rollout
survives the switch and moves to B (AUTO_UPGRADE)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.common import WorkerDeploymentVersion
from temporalio.testing import WorkflowEnvironment

from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry
from govflow.workers.deployments import set_current, versions
from govflow.workers.worker import build_worker
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.rollout import RolloutWorkflow
from govflow.workflows.rollout_api import RolloutInput
from govflow.workflows.run_api import Review, RunResult
from tests.helpers import eventually, start_run, wait_for
from tests.integration.test_governed_run_e2e import cli_env, govflow

pytestmark = pytest.mark.devserver


async def _builds(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The build that completed each of the execution's workflow tasks, in order."""
    history = await handle.fetch_history()
    return [
        e.workflow_task_completed_event_attributes.deployment_version.build_id
        for e in history.events
        if e.HasField("workflow_task_completed_event_attributes")
    ]


async def _build_now(handle: WorkflowHandle[Any, Any]) -> str:
    info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
    return info.deployment_version.build_id


async def test_a_pinned_run_finishes_on_its_build_while_new_runs_and_the_rollout_move_to_the_next(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, database_url: str
) -> None:
    client = dev_server_env.client
    task_queue, name = f"tq-{uuid.uuid4()}", f"govflow-{uuid.uuid4().hex[:8]}"
    a, b = (WorkerDeploymentVersion(deployment_name=name, build_id=f"build-{x}") for x in "ab")

    def versioned(version: WorkerDeploymentVersion) -> Any:
        return build_worker(client, task_queue, store, registry, deployment=version,
                            workflow_failure_exception_types=[Exception])  # fmt: skip

    async with versioned(a):
        await set_current(client, name, "build-a")
        rollout = await client.start_workflow(
            RolloutWorkflow.run, RolloutInput(task="support-triage"), id=f"rollout-{uuid.uuid4()}",
            task_queue=task_queue,
        )  # fmt: skip
        waiting = await start_run(client, task_queue, "T0001")
        status = await wait_for(waiting, lambda s: bool(s.pending))
        assert await _build_now(waiting) == "build-a"
        async with versioned(b):
            await set_current(client, name, "build-b")
            # A new run starts on B (once the switch has reached the task queue).
            fresh = await start_run(client, task_queue, "T0002", mode="shadow")
            result: RunResult = await fresh.result()
            assert result.outcome == "shadowed"
            assert set(await _builds(fresh)) == {"build-b"}
            # The rollout survives the switch: its next task runs on B, and it still answers.
            await rollout.signal(RolloutWorkflow.pause, {"operator": "omar", "reason": "after the switch"})
            await eventually(lambda: _build_now(rollout), lambda build: build == "build-b", tries=100)
            assert (await rollout.query(RolloutWorkflow.status)).paused
            # Approved after B became current: the run finishes on A, the build it started on.
            vote = Review(reviewer="bob", action_digest=status.pending[0].digest)
            await waiting.signal(GovernedRunWorkflow.approve, vote)
            assert (await waiting.result()).outcome == "published"
            assert set(await _builds(waiting)) == {"build-a"}
            lines = {line.build_id: line for line in await versions(client, name)}
            assert (lines["build-a"].status, lines["build-b"].status) == ("draining", "current")
            environ = cli_env(dev_server_env, database_url, task_queue)
            code, out, err = await govflow(environ, "deployments", "--deployment", name)
            assert code == 0, out + err
            assert "build build-b" in out
            await rollout.terminate("test over")
