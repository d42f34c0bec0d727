"""GovernedRunWorkflow on the time-skipping server, real Postgres for evidence and the SoR."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from activities.evidence import EvidenceStore
from activities.registry import Registry
from tests.workflows.conftest import sor_fetch, start_run, wait_for
from workers.worker import build_worker
from workflows.governed_run import GovernedRunWorkflow
from workflows.run_models import Review


async def test_an_action_waits_for_approval_and_is_written_once(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    async with build_worker(env.client, task_queue, store, registry):
        handle = await start_run(env.client, task_queue, "T0001")
        status = await wait_for(handle, lambda s: bool(s.pending))
        (pending,) = status.pending
        assert pending.target == "ticketing.ticket.reply"
        assert pending.gates[0].eligible == ["alice", "bob", "chen"]
        await handle.signal(GovernedRunWorkflow.approve, Review(reviewer="alice", action_digest=pending.digest))
        result = await handle.result()
    assert result.outcome == "published"
    rows = await sor_fetch(sor_url, "SELECT reply_body, category FROM ticket WHERE id = 'T0001'")
    assert rows[0]["category"] == "bug"
    assert rows[0]["reply_body"].startswith("Thanks for writing")
    keys = await sor_fetch(sor_url, "SELECT key FROM govflow_idempotency")
    assert [k["key"] for k in keys] == [f"{result.run_id}:reply"]
    report = await store.verify("run", result.run_id)
    assert report.ok, report.problems
    kinds = [e["kind"] for e in await store.events("run", result.run_id)]
    assert kinds == [
        "run_started",
        "context_read",
        "model_call",
        "proposal",
        "quality_score",
        "quality_score",
        "policy_decision",
        "approval_attempt",
        "touched_record",
        "run_finished",
    ]
