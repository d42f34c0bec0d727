"""Rollout operator controls through the CLI, on the Temporal dev server."""

from __future__ import annotations

import json
import uuid

import pytest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry
from govflow.client import control, rollout_status, start_rollout
from govflow.workflows.rollout_api import Control
from govflow.workflows.run_api import RunResult
from tests.helpers import eventually, sor_fetch, worker
from tests.integration.test_governed_run_e2e import cli_env, govflow

pytestmark = pytest.mark.devserver


async def test_operators_drive_the_rollout_and_runs_go_through_it(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, database_url: str
) -> None:
    env = dev_server_env
    task_queue = f"tq-{uuid.uuid4()}"
    environ = cli_env(env, database_url, task_queue)
    task = ["--task", "support-triage"]
    async with worker(env.client, task_queue, store, registry):
        code, out, err = await govflow(environ, "rollout", "start", *task)
        assert code == 0, err
        assert "started rollout rollout-support-triage-v1" in out
        code, out, _ = await govflow(environ, "rollout", "start", *task)
        assert "already running" in out

        code, out, err = await govflow(environ, "rollout", "promote", *task, "--as", "priya")
        assert code == 3
        assert "refused: priya may not promote shadow (may: chen, omar)" in err
        code, out, err = await govflow(environ, "rollout", "promote", *task, "--as", "omar", "--reason", "ok")
        assert code == 0, err
        assert "accepted: promoted to canary by omar" in out

        # Runs go through the rollout: it picks the stage, and live or shadow by the item key.
        code, out, err = await govflow(
            environ, "run", "submit", *task, "--item", '{"ticket_id": "T0002"}', "--as", "priya", "--wait", "--json"
        )
        assert code == 0, err
        result = RunResult.model_validate(json.loads(out))
        assert result.outcome == "shadowed"  # T0002 falls outside canary's 10% live share
        started = await store.events("run", result.run_id)
        assert started[0]["payload"]["stage"] == "canary"

        code, out, err = await govflow(environ, "rollout", "pause", *task, "--as", "priya", "--reason", "odd replies")
        assert code == 0, err
        code, out, _ = await govflow(environ, "rollout", "status", *task)
        assert "stage canary (10% live), PAUSED (paused by priya: odd replies)" in out
        paused = [wf.id async for wf in env.client.list_workflows("GovflowPaused = true")]
        assert "rollout-support-triage-v1" in paused
        code, out, err = await govflow(environ, "rollout", "resume", *task, "--as", "priya")
        assert code == 3
        code, out, err = await govflow(environ, "rollout", "rollback", *task, "--as", "priya", "--to", "shadow")
        assert code == 0, err
        assert "rolled back to shadow" in out
        await env.client.get_workflow_handle("rollout-support-triage-v1").terminate("test over")
    report = await store.verify("rollout", "rollout-support-triage-v1")
    assert report.ok, report.problems


async def test_a_rollout_started_again_after_a_pause_does_not_inherit_its_fence(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, database_url: str
) -> None:
    # Found by running `make demo-finance` twice: the second rollout's live writes were all refused,
    # "rollout is paused", by the fence the first one (paused, then terminated) left behind.
    client = dev_server_env.client
    task_queue = f"tq-{uuid.uuid4()}"

    async def fence(rollout: str) -> list[bool]:
        return [r["paused"] for r in await sor_fetch(database_url, FENCE, rollout)]

    async with worker(client, task_queue, store, registry):
        rollout = await start_rollout(client, task_queue, "support-triage", "1")
        await eventually(lambda: rollout_status(client, rollout), lambda s: bool(s.stage), tolerate=(RPCError,))
        answer = await control(client, rollout, "pause", Control(operator="priya", reason="odd replies"))
        assert answer.accepted, answer
        assert await fence(rollout) == [True]
        await client.get_workflow_handle(rollout).terminate("started again below")
        await start_rollout(client, task_queue, "support-triage", "1")
        assert await eventually(lambda: fence(rollout), lambda f: f == [False]) == [False]
        status = await rollout_status(client, rollout)
        assert (status.stage, status.paused) == ("shadow", False)
        await client.get_workflow_handle(rollout).terminate("test over")
    assert (await store.verify("rollout", rollout)).ok


FENCE = "SELECT paused FROM rollout_fences WHERE rollout_id = $1"
