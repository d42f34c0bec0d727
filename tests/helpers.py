"""Helpers for governed-run tests: start a run, wait on its status, a fail-fast worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence.chain import Stream
from govflow.activities.registry import Registry
from govflow.signing import load_signing_key, sign
from govflow.workers.worker import build_worker
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.run_api import RunInput, RunResult, RunStatus

T = TypeVar("T")


async def sor_fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def start_run(
    client: Client, task_queue: str, ticket: str, *, mode: str = "live", requester: str = "priya"
) -> WorkflowHandle[GovernedRunWorkflow, Any]:
    return await client.start_workflow(
        GovernedRunWorkflow.run,
        RunInput(
            task="support-triage",
            item_key=ticket,
            item={"ticket_id": ticket},
            requester=requester,
            mode=mode,  # type: ignore[arg-type]
        ),
        id=f"run-{uuid.uuid4()}",
        task_queue=task_queue,
    )


async def eventually(
    probe: Callable[[], Awaitable[T]],
    predicate: Callable[[T], bool],
    *,
    tries: int = 200,
    every: float = 0.05,
    tolerate: tuple[type[BaseException], ...] = (),
) -> T:
    """Ask ``probe`` until ``predicate`` holds of its answer, at most ``tries`` times ``every`` seconds
    apart; errors in ``tolerate`` (a query racing a continue-as-new, a rollout still starting) count
    as a miss. The one polling loop of the tests: it fails with the last answer, never hangs."""
    last: Any = "(no answer)"
    for _ in range(tries):
        try:
            answer = await probe()
        except tolerate as exc:
            last = exc
        else:
            if predicate(answer):
                return answer
            last = answer
        await asyncio.sleep(every)
    raise AssertionError(f"not reached after {tries} tries; last answer: {last}")


async def wait_for(
    handle: WorkflowHandle[GovernedRunWorkflow, Any],
    predicate: Callable[[RunStatus], bool],
    env: WorkflowEnvironment | None = None,
    tries: int = 200,
) -> RunStatus:
    """Query the run until ``predicate`` holds (bounded)."""
    return await eventually(lambda: handle.query(GovernedRunWorkflow.status), predicate, tries=tries)


async def event_kinds(store: EvidenceStore, stream: Stream, stream_id: str) -> list[str]:
    return [e["kind"] for e in await store.events(stream, stream_id)]


def worker(client: Client, task_queue: str, store: EvidenceStore, registry: Registry) -> Worker:
    """A govflow worker whose workflow bugs fail the run at once instead of retrying forever."""
    return build_worker(client, task_queue, store, registry, workflow_failure_exception_types=[Exception])


HISTORIES = Path(__file__).parent / "replay" / "histories"


async def keep_history(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """With RECORD_HISTORIES=1, save the run's history for the replay tests."""
    if not os.environ.get("RECORD_HISTORIES"):
        return
    history = await handle.fetch_history()
    HISTORIES.mkdir(parents=True, exist_ok=True)
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    # Workflow ids are not in the history itself, and replay needs them (signatures bind to the run id).
    index = HISTORIES / "workflow-ids.json"
    ids = json.loads(index.read_text()) if index.exists() else {}
    ids[name] = history.workflow_id
    index.write_text(json.dumps(ids, indent=2, sort_keys=True) + "\n")


FIXTURE_KEYS = Path(__file__).parent / "fixtures" / "keys"


def fixture_key(name: str) -> Any:
    """One of the test Ed25519 keys in tests/fixtures/keys (dana, erik, farah, hana, gus), as the CLI loads it."""
    return load_signing_key(str(FIXTURE_KEYS / f"{name}.key"))


def fixture_signature(name: str, message: bytes) -> str:
    """``message`` signed with a fixture key: base64, as a vote or a control carries it."""
    signature = sign(fixture_key(name), message)
    assert signature is not None
    return signature


async def worker_process(environ: dict[str, str]) -> asyncio.subprocess.Process:
    """`govflow worker` as a process of its own, with ``environ`` (the crash tests kill it)."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "govflow", "worker", env=environ,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def result_on_a_new_worker(client: Client, environ: dict[str, str], run_id: str) -> RunResult:
    """Start a fresh `govflow worker` process (the one before it was killed) and wait for the run's result."""
    worker = await worker_process(environ)
    try:
        return await asyncio.wait_for(client.get_workflow_handle(run_id, result_type=RunResult).result(), timeout=90)
    finally:
        worker.terminate()
        await worker.wait()


@contextlib.asynccontextmanager
async def ending() -> AsyncIterator[list[WorkflowHandle[Any, Any]]]:
    """Runs appended to the yielded list are terminated when the block ends, if still running: a test that
    fails midway leaves nothing waiting on the shared dev server (where `approvals list` would meet it)."""
    handles: list[WorkflowHandle[Any, Any]] = []
    try:
        yield handles
    finally:
        for handle in handles:
            with contextlib.suppress(Exception):
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate("test ended")
