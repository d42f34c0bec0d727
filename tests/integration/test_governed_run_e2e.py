"""End to end on the Temporal dev server: the CLI as users run it, and a worker killed mid-publish."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.run_api import Review, RunResult, RunStatus
from tests.helpers import event_kinds, result_on_a_new_worker, sor_fetch, start_run, wait_for, worker, worker_process

pytestmark = pytest.mark.devserver


def cli_env(env: WorkflowEnvironment, database_url: str, task_queue: str, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GOVFLOW_")}
    base.update(
        GOVFLOW_TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
        GOVFLOW_DATABASE_URL=database_url,
        GOVFLOW_TASK_QUEUE=task_queue,
        # A worker the test starts serves no metrics unless asked: the local stack's own worker (`make
        # demo`) may hold the default ports, and a second one would refuse to start.
        GOVFLOW_METRICS_PORT="0",
        GOVFLOW_SDK_METRICS_PORT="0",
    )
    base.update(extra)
    return base


async def govflow(environ: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run the CLI without blocking the event loop (the worker under test shares it)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "govflow", *args,
        env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_happy_path_through_the_cli(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, sor_url: str, database_url: str
) -> None:
    env = dev_server_env
    task_queue = f"tq-{uuid.uuid4()}"
    environ = cli_env(env, database_url, task_queue)

    async def submit(ticket: str, mode: str) -> str:
        code, out, err = await govflow(
            environ, "run", "submit", "--task", "support-triage", "--item", json.dumps({"ticket_id": ticket}),
            "--as", "priya", "--mode", mode, "--json",
        )  # fmt: skip
        assert code == 0, err
        return str(json.loads(out)["run_id"])

    async with worker(env.client, task_queue, store, registry):
        run_id = await submit("T0003", "live")
        handle = env.client.get_workflow_handle(run_id)
        await wait_for(handle, lambda s: len(s.pending) == 2)  # type: ignore[arg-type]
        shadow_id = await submit("T0001", "shadow")
        await env.client.get_workflow_handle(shadow_id).result()
        code, out, err = await govflow(environ, "runs", "list", "--task", "support-triage", "--json")
        listed = {r["run_id"]: r["awaiting_approval"] for r in json.loads(out)}
        # The waiting run says so; one that never waited says it is not (it never set the attribute).
        assert (listed[run_id], listed[shadow_id]) == (True, False)

        code, out, err = await govflow(environ, "approvals", "list", "--as", "bob", "--json")
        assert code == 0, err
        waiting = [r for r in json.loads(out) if r["run_id"] == run_id]
        assert {r["action_id"] for r in waiting} == {"reply", "flag-churn"}
        churn = next(r for r in waiting if r["action_id"] == "flag-churn")
        assert (churn["quorum"], churn["approved_by"], churn["requester"]) == (2, [], "priya")

        code, out, err = await govflow(environ, "approve", run_id, "--as", "omar", "--action", "flag-churn")
        assert code == 3
        assert "refused (no_authority): omar may not approve" in err
        for reviewer in ("bob", "chen"):
            code, out, err = await govflow(environ, "approve", run_id, "--as", reviewer, "--action", "flag-churn")
            assert code == 0, err
            assert f"accepted: {reviewer} approved under rule flag-churn-risk" in out
        code, out, err = await govflow(environ, "approvals", "list", "--as", "bob")
        assert "flag-churn" not in out
        code, out, err = await govflow(environ, "approve", run_id, "--as", "alice", "--reason", "reads well")
        assert code == 0, err
        result = await env.client.get_workflow_handle(run_id, result_type=RunResult).result()

        code, out, err = await govflow(environ, "runs", "show", run_id)
        assert code == 0, err
        assert "outcome published" in out
        code, out, _ = await govflow(environ, "runs", "list", "--task", "support-triage", "--json")
        assert {r["run_id"]: r["awaiting_approval"] for r in json.loads(out)}[run_id] is False

    assert result.outcome == "published"
    assert [a.status for a in result.actions] == ["written", "written"]
    code, out, _ = await govflow(environ, "evidence", "verify", run_id)
    assert code == 0
    assert f"run {run_id}: chain verifies" in out
    contact = await sor_fetch(sor_url, "SELECT status FROM contact WHERE id = 'C0003'")
    assert contact[0]["status"] == "churn-risk"


async def test_a_worker_killed_after_the_write_and_before_its_evidence(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, database_url: str, tmp_path: Path
) -> None:
    env = dev_server_env
    task_queue = f"tq-{uuid.uuid4()}"
    marker = tmp_path / "crashed"
    environ = cli_env(
        env, database_url, task_queue, CRASH_MARKER=str(marker), SOR_URL=sor_url,
        GOVFLOW_APP="tests.integration.crash_app:build",
    )  # fmt: skip

    first = await worker_process(environ)
    try:
        handle = await start_run(env.client, task_queue, "T0001")
        status = await wait_for(handle, lambda s: bool(s.pending))
        await handle.signal(
            GovernedRunWorkflow.approve, Review(reviewer="alice", action_digest=status.pending[0].digest)
        )
        await asyncio.wait_for(first.wait(), timeout=60)
        assert first.returncode == -9, "the worker should have killed itself after the write"
    finally:
        if first.returncode is None:
            first.kill()
    # The write committed; its evidence row did not.
    assert [r["key"] for r in await sor_fetch(sor_url, "SELECT key FROM govflow_idempotency")] == [f"{handle.id}:reply"]
    assert "touched_record" not in await event_kinds(store, "run", handle.id)

    result = await result_on_a_new_worker(env.client, environ, handle.id)
    assert result.outcome == "published"
    assert len(await sor_fetch(sor_url, "SELECT key FROM govflow_idempotency")) == 1
    events = await store.events("run", handle.id)
    touched = [e for e in events if e["kind"] == "touched_record"]
    assert len(touched) == 1
    assert touched[0]["payload"]["before_image"]["reply_body"] is None
    assert touched[0]["payload"]["after_image"]["reply_body"].startswith("Thanks for writing")
    assert (await store.verify("run", handle.id)).ok


def _pem_keys_dir(folder: Path, people: dict[str, str]) -> Path:
    """A GOVFLOW_KEYS_DIR: <person>.pem for each person, from the fixture keys."""
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from tests.helpers import fixture_key

    folder.mkdir()
    for person, fixture in people.items():
        pem = fixture_key(fixture).private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        (folder / f"{person}.pem").write_bytes(pem)
    return folder


async def test_the_cli_signs_each_persons_acts_and_refuses_what_no_worker_serves(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, database_url: str, tmp_path: Path
) -> None:
    from govflow.examples.support_triage import example_registry
    from tests.workflows.test_signed_acts import PRIVATE, signed_policy

    env = dev_server_env
    task_queue = f"tq-{uuid.uuid4()}"
    unsigned_env = cli_env(env, database_url, task_queue)
    signed_env = cli_env(env, database_url, task_queue, GOVFLOW_KEYS_DIR=str(_pem_keys_dir(tmp_path / "keys", PRIVATE)))
    submit = ("run", "submit", "--task", "support-triage", "--item", '{"ticket_id": "T0001"}', "--as", "priya",
              "--mode", "live")  # fmt: skip
    async with worker(env.client, task_queue, store, example_registry(sor_url, policy=signed_policy())):
        code, out, err = await govflow(unsigned_env, *submit, "--wait")
        assert code == 3, err  # refused
        assert "refused submit refused: the policy requires a signed submit" in out

        code, out, err = await govflow(signed_env, *submit, "--json")
        assert code == 0, err
        run_id = json.loads(out)["run_id"]
        await wait_for(env.client.get_workflow_handle(run_id), lambda s: bool(s.pending))  # type: ignore[arg-type]
        code, _, err = await govflow(signed_env, "approve", run_id, "--as", "alice")  # alice has no key
        assert code == 3
        assert "refused (signature_missing)" in err
        code, out, err = await govflow(signed_env, "approve", run_id, "--as", "bob")  # signed from the keys dir
        assert code == 0, err
        result = await env.client.get_workflow_handle(run_id, result_type=RunResult).result()
        assert result.outcome == "published"

        code, out, err = await govflow(
            signed_env, "run", "submit", "--task", "no-such-task", "--item", '{"x": "1"}', "--as", "priya"
        )
        assert code == 1
        assert "no worker task 'no-such-task'" in err
        assert "no worker of this task queue that took it does; it waits for one" in err
        assert "Traceback" not in err


async def test_what_waits_is_listed_where_people_look_and_submit_wait_exits_by_outcome(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, database_url: str
) -> None:
    env = dev_server_env
    task_queue = f"tq-{uuid.uuid4()}"
    environ = cli_env(env, database_url, task_queue)

    async def waiting(ticket: str, mode: str = "live") -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "govflow", "run", "submit", "--task", "support-triage", "--item",
            json.dumps({"ticket_id": ticket}), "--as", "priya", "--mode", mode, "--wait",
            env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip

    async def run_of(ticket: str, waits: Callable[[RunStatus], bool]) -> WorkflowHandle[Any, Any]:
        for _ in range(200):
            query = "WorkflowType = 'GovernedRun' AND ExecutionStatus = 'Running' AND GovflowTask = 'support-triage'"
            found = [wf.id async for wf in env.client.list_workflows(query) if f"-{ticket}-" in wf.id]
            if found:
                handle = env.client.get_workflow_handle(found[0])
                await wait_for(handle, waits)
                return handle
            await asyncio.sleep(0.1)
        raise AssertionError(f"no run of {ticket}")

    async def ended(proc: asyncio.subprocess.Process) -> tuple[int, str]:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode is not None
        return proc.returncode, out.decode() + err.decode()

    async with worker(env.client, task_queue, store, registry):
        code, said = await ended(await waiting("T0004"))  # its contact is outside the grants
        assert (code, " refused " in said) == (3, True), said
        code, said = await ended(await waiting("T0001", "shadow"))
        assert (code, " shadowed" in said) == (0, True), said

        # An exception waits: approvals list shows it, marked, to whoever may decide; runs list says so.
        missing = await waiting("T9999")
        run_id = (await run_of("T9999", lambda s: s.exception is not None)).id
        code, out, _ = await govflow(environ, "approvals", "list", "--as", "alice")
        assert f"{run_id}  EXCEPTION incomplete_input: ticket T9999 does not exist" in out
        assert f"govflow resolve {run_id} --decision retry|discard --as YOU`; may decide: alice, bob, chen" in out
        code, out, _ = await govflow(environ, "approvals", "list", "--as", "omar")
        assert run_id not in out  # not his to decide
        code, out, _ = await govflow(environ, "runs", "list", "--task", "support-triage")
        assert "awaiting exception decision" in out.split(run_id)[1].splitlines()[0]
        code, out, err = await govflow(environ, "resolve", run_id, "--decision", "discard", "--as", "alice")
        assert code == 0, err
        code, said = await ended(missing)
        assert (code, " exception " in said) == (6, True), said

        # Published after its approvals: 0. A run that fails (here: terminated while it waits): 1.
        published = await waiting("T0003")
        handle = await run_of("T0003", lambda s: len(s.pending) == 2)
        for reviewer, action in (("bob", "flag-churn"), ("chen", "flag-churn"), ("alice", "reply")):
            status = await handle.query(GovernedRunWorkflow.status)
            digest = next(p.digest for p in status.pending if p.action_id == action)
            await handle.signal(GovernedRunWorkflow.approve, Review(reviewer=reviewer, action_digest=digest))
        code, said = await ended(published)
        assert (code, " published" in said) == (0, True), said
        failing = await waiting("T0003")
        doomed = await run_of("T0003", lambda s: bool(s.pending))
        await doomed.terminate("the test ends it")
        code, said = await ended(failing)
        assert code == 1, said
        assert f"govflow: error: {doomed.id} failed" in said
