"""One run id, one run: a finished run's input started again under its id is refused before its rollout
admits it, and recorded apart; the first run's chain and its anchor in Temporal stay as they were. A run
that fails after admission gives its rollout slot back. Dev server, real Postgres, the CLI."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import RawValue
from temporalio.testing import WorkflowEnvironment

from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry
from govflow.client import submit
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.rollout import RolloutWorkflow
from govflow.workflows.rollout_api import RolloutInput
from govflow.workflows.run_api import RunInput, RunResult
from tests.conftest import free_port
from tests.helpers import start_run, wait_for, worker
from tests.integration.test_governed_run_e2e import cli_env, govflow
from tests.workflows.rollout_helpers import rollout_status, until

pytestmark = pytest.mark.devserver


@pytest.fixture
async def rollout(dev_server_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[WorkflowHandle[Any, Any]]:
    handle = await dev_server_env.client.start_workflow(
        RolloutWorkflow.run, RolloutInput(task="support-triage"), id=f"rollout-{uuid.uuid4()}", task_queue=task_queue
    )
    yield handle
    await handle.terminate("test over")


def _shadow(rollout_id: str, ticket: str = "T0001") -> RunInput:
    return RunInput(task="support-triage", item_key=ticket, item={"ticket_id": ticket}, requester="priya",
                    mode="shadow", rollout_id=rollout_id)  # fmt: skip


async def _first_input(client: Client, run_id: str) -> RawValue:
    """The run's input exactly as its first execution received it (what a replay would send)."""
    history = await client.get_workflow_handle(run_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    return RawValue(started.input.payloads[0])


async def test_a_finished_run_started_again_under_its_id_is_refused_before_admission(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, database_url: str,
    rollout: WorkflowHandle[Any, Any], task_queue: str,
) -> None:  # fmt: skip
    client = dev_server_env.client
    async with worker(client, task_queue, store, registry):
        run_id = await submit(client, task_queue, _shadow(rollout.id))
        first = client.get_workflow_handle(run_id, result_type=RunResult)
        assert (await first.result()).outcome == "shadowed"
        first_execution = (await first.describe()).run_id
        await until(rollout, lambda s: s.runs_in_stage == 1 and s.runs_in_flight == 0)
        rows = await store.events("run", run_id)

        replay = await client.start_workflow(
            GovernedRunWorkflow.run, await _first_input(client, run_id), id=run_id, task_queue=task_queue,
            result_type=RunResult,
        )  # fmt: skip
        again = await replay.result()
        status = await rollout_status(rollout)

    assert again.outcome == "refused"
    assert f"run id {run_id} already has evidence (its first execution {first_execution})" in again.reason
    assert (again.evidence_rows, again.chain_head) == (0, None)
    # Never admitted: the rollout counted one run and holds no slot.
    assert (status.runs_in_stage, status.runs_in_flight) == (1, 0)
    # The first run's chain is as it was; the refusal is a chain of its own.
    assert await store.events("run", run_id) == rows
    (refused,) = await store.refused_starts(run_id)
    assert refused == f"{run_id}@{replay.result_run_id}"
    (event,) = await store.events("refused_start", refused)
    assert event["kind"] == "run_start_refused"
    assert event["payload"]["first_temporal_run_id"] == first_execution
    assert (await store.verify("refused_start", refused)).ok
    # The anchor is read from the execution the evidence names, not the newest under the id.
    environ = cli_env(dev_server_env, database_url, task_queue)
    code, out, err = await govflow(environ, "evidence", "verify", run_id, "--anchor")
    assert code == 0, out + err
    assert f"run {run_id}: chain verifies ({len(rows)} rows); matches the chain head Temporal recorded" in out
    assert f"a second start under this run id was refused: `govflow evidence show {refused}`" in out
    code, out, _ = await govflow(environ, "evidence", "show", refused)
    assert code == 0
    assert "run start refused" in out


async def test_a_run_that_fails_after_admission_gives_its_slot_back(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry,
    rollout: WorkflowHandle[Any, Any], task_queue: str,
) -> None:  # fmt: skip
    client = dev_server_env.client
    run_id = f"run-{uuid.uuid4()}"
    # A chain the run cannot extend: its first evidence append conflicts, and the run fails for good.
    await store.append_event("run", run_id, 1, "note", datetime.now(UTC), {"planted": True})
    async with worker(client, task_queue, store, registry):
        await submit(client, task_queue, _shadow(rollout.id, "T0002"), run_id=run_id)
        with pytest.raises(WorkflowFailureError):
            await client.get_workflow_handle(run_id).result()
        status = await until(rollout, lambda s: s.runs_in_flight == 0)
    assert status.runs_in_stage == 0  # released, not counted
    released = [e["payload"] for e in await store.events("rollout", rollout.id) if e["kind"] == "run_released"]
    assert [r["run_id"] for r in released] == [run_id]
    assert "ended failed without finishing" in released[0]["reason"]
    assert (await store.verify("rollout", rollout.id)).ok


async def test_verify_checks_the_anchor_by_default_and_never_waits(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, database_url: str, task_queue: str
) -> None:
    client = dev_server_env.client
    environ = cli_env(dev_server_env, database_url, task_queue)
    async with worker(client, task_queue, store, registry):
        done = await start_run(client, task_queue, "T0003", mode="shadow")
        assert (await done.result()).outcome == "shadowed"
        waiting = await start_run(client, task_queue, "T0001")
        status = await wait_for(waiting, lambda s: bool(s.pending) or s.phase == "finished")
        assert status.pending, await waiting.result()
        # An unfinished run: its rows so far, at once (it used to wait for the run's result).
        code, out, err = await asyncio.wait_for(govflow(environ, "evidence", "verify", waiting.id), timeout=30)
        assert code == 0, out + err
        assert "has not finished" in out
        await waiting.terminate("test over")
    code, out, _ = await govflow(environ, "evidence", "verify", done.id)
    assert (code, "matches the chain head Temporal recorded" in out) == (0, True), out
    # A rewound tail (a superuser, triggers bypassed): the database alone still verifies it.
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        last = await conn.fetchval("SELECT max(seq) FROM evidence_events WHERE stream_id = $1", done.id)
        await conn.execute("DELETE FROM evidence_events WHERE stream_id = $1 AND seq = $2", done.id, last)
        prev = await conn.fetchval(
            "SELECT hash FROM evidence_events WHERE stream_id = $1 AND seq = $2", done.id, last - 1
        )
        await conn.execute("UPDATE chain_heads SET seq = $2, hash = $3 WHERE stream_id = $1", done.id, last - 1, prev)
    code, out, _ = await govflow(environ, "evidence", "verify", done.id)
    assert code == 1
    assert "chain verifies in the database but NOT against Temporal" in out
    code, out, _ = await govflow(environ, "evidence", "verify", done.id, "--offline")
    assert (code, f"run {done.id}: chain verifies ({last - 1} rows); database only (--offline)" in out) == (0, True)
    # Temporal away: database only, said so; --anchor then refuses.
    away = {**environ, "GOVFLOW_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    code, out, _ = await govflow(away, "evidence", "verify", done.id)
    assert (code, "database only: Temporal is not reachable" in out) == (0, True), out
    code, out, err = await govflow(away, "evidence", "verify", done.id, "--anchor")
    assert code == 1
    assert "--anchor: cannot reach Temporal" in out + err
