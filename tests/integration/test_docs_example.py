"""The worked example in docs/writing-a-task.md, run exactly as written."""

from __future__ import annotations

import asyncio
import importlib
import re
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from govflow.activities.evidence import EvidenceStore
from govflow.client import submit
from govflow.examples import support_triage
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.run_api import Review, RunInput
from tests.helpers import sor_fetch, wait_for, worker
from tests.integration.test_governed_run_e2e import cli_env

DOC = Path(__file__).parents[2] / "docs" / "writing-a-task.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


async def test_the_worked_example_runs_as_written(
    time_skipping_env: WorkflowEnvironment,
    store: EvidenceStore,
    empty_database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    task_queue: str,
) -> None:
    (policy_text,) = blocks("yaml")
    (module_text,) = blocks("python")
    (tmp_path / "ticket-categorizer.yaml").write_text(policy_text)
    module_name = f"ticket_categorizer_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module_name}.py").write_text(module_text)

    for command in ("check", "audit"):
        done = subprocess.run(
            [sys.executable, "-m", "govflow", "policy", command, str(tmp_path / "ticket-categorizer.yaml")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr

    conn = await asyncpg.connect(empty_database_url)
    await support_triage.seed(conn, 3)  # a ticket table (and the idempotency table) to work on
    await conn.close()
    monkeypatch.setenv("TICKETS_DATABASE_URL", empty_database_url)
    monkeypatch.setenv("POLICY_DIR", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = importlib.import_module(module_name).build()

    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        handle = await env.client.start_workflow(
            GovernedRunWorkflow.run,
            RunInput(task="ticket-categorizer", item_key="T0001", item={"ticket_id": "T0001"}, requester="priya",
                     mode="live"),
            id=f"run-{uuid.uuid4()}",
            task_queue=task_queue,
        )  # fmt: skip
        status = await wait_for(handle, lambda s: bool(s.pending))
        await handle.signal(
            GovernedRunWorkflow.approve, Review(reviewer="alice", action_digest=status.pending[0].digest)
        )
        result = await handle.result()
    await registry.aclose()
    assert result.outcome == "published"
    rows = await sor_fetch(empty_database_url, "SELECT category FROM ticket WHERE id = 'T0001'")
    assert rows[0]["category"] == "question"
    assert (await store.verify("run", result.run_id)).ok


@pytest.mark.devserver
async def test_a_worker_among_the_users_own_policies_and_activities_folders_serves_runs(
    dev_server_env: WorkflowEnvironment, empty_database_url: str, database_url: str, tmp_path: Path, task_queue: str
) -> None:
    # The README's layout for a team's own project: a policies/ folder of YAML and an activities/ package of
    # its own, the worker started from there (`python -m` puts that folder first on the path). govflow's
    # packages install under govflow., so neither folder hides them.
    (policy_text,) = blocks("yaml")
    (module_text,) = blocks("python")
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "ticket-categorizer.yaml").write_text(policy_text)
    (tmp_path / "activities").mkdir()
    (tmp_path / "activities" / "__init__.py").write_text("")
    (tmp_path / "activities" / "ticket_categorizer.py").write_text(module_text)
    conn = await asyncpg.connect(empty_database_url)
    await support_triage.seed(conn, 3)
    await conn.close()
    environ = cli_env(
        dev_server_env, database_url, task_queue, POLICY_DIR=str(tmp_path / "policies"),
        TICKETS_DATABASE_URL=empty_database_url, GOVFLOW_METRICS_PORT="0", GOVFLOW_SDK_METRICS_PORT="0",
    )  # fmt: skip
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "govflow", "worker", "--app", "activities.ticket_categorizer:build",
            cwd=tmp_path, env=environ, stdout=out, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    try:
        client = dev_server_env.client
        run_id = await submit(client, task_queue, RunInput(task="ticket-categorizer", item_key="T0002",
                              item={"ticket_id": "T0002"}, requester="priya", mode="live"))  # fmt: skip
        handle = client.get_workflow_handle_for(GovernedRunWorkflow.run, run_id)
        status = await wait_for(handle, lambda s: bool(s.pending))
        await handle.signal(
            GovernedRunWorkflow.approve, Review(reviewer="alice", action_digest=status.pending[0].digest)
        )
        result = await asyncio.wait_for(handle.result(), timeout=60)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()
    assert result.outcome == "published"
    rows = await sor_fetch(empty_database_url, "SELECT category FROM ticket WHERE id = 'T0002'")
    assert rows[0]["category"] == "question"


def test_the_offline_test_kit_example_runs_as_written(tmp_path: Path) -> None:
    """docs/writing-a-task.md's pytest file, beside the policy and the task module, in its own folder."""
    (policy_text,) = blocks("yaml")
    (module_text,) = blocks("python")
    (kit_test,) = blocks("py")
    (tmp_path / "ticket-categorizer.yaml").write_text(policy_text)
    (tmp_path / "ticket_categorizer.py").write_text(module_text)
    (tmp_path / "test_ticket_categorizer.py").write_text(kit_test)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_ticket_categorizer.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
