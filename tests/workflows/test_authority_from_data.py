"""Authority read from the data, on the time-skipping server: the purchase order's requester may not approve
its payment (approval.not_by), and an approver above their limit is refused while the gate goes to the role
whose limit covers the amount (approval.limits). The invoice-matching example, its shipped policy."""

from __future__ import annotations

import asyncpg
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from govflow import Registry, parse_policy
from govflow.activities.evidence import EvidenceStore
from govflow.examples import invoice_matching as im
from govflow.workflows.run_api import RunResult
from tests.helpers import wait_for, worker
from tests.integration.test_finance_e2e import payment_pending, shipped, start, vote


@pytest.fixture
async def ledger(empty_database_url: str) -> str:
    conn = await asyncpg.connect(empty_database_url)
    try:
        await im.seed(conn, 10)
    finally:
        await conn.close()
    return empty_database_url


async def _set(ledger: str, sql: str, *args: object) -> None:
    conn = await asyncpg.connect(ledger)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def test_the_order_s_requester_is_refused_naming_the_field(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, ledger: str, task_queue: str
) -> None:
    await _set(ledger, "UPDATE purchase_order SET requested_by = 'erik' "
               "WHERE id = (SELECT po_id FROM invoice WHERE id = $1)", im.LARGE)  # fmt: skip
    registry = Registry()
    im.register(registry, ledger, policy=shipped())
    client = time_skipping_env.client
    async with worker(client, task_queue, store, registry):
        run_id = await start(client, task_queue, im.LARGE)
        handle = client.get_workflow_handle(run_id, result_type=RunResult)
        pending = payment_pending(await wait_for(handle, lambda s: bool(s.pending)))
        refused = await vote(client, run_id, "erik", pending.digest)
        assert (refused.accepted, refused.code) == (False, "separation_of_duties")
        assert "purchase_order.requested_by is erik" in refused.reason
        for reviewer in ("dana", "farah"):
            assert (await vote(client, run_id, reviewer, pending.digest)).accepted
        assert (await handle.result()).outcome == "published"
    await registry.aclose()
    (row,) = await store.pool.fetch("SELECT reason FROM approval_attempts WHERE run_id = $1 AND NOT accepted", run_id)
    assert "purchase_order.requested_by is erik" in row["reason"]


async def test_above_the_limit_the_gate_goes_to_the_role_that_can(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, ledger: str, task_queue: str
) -> None:
    doc = yaml.safe_load(im.POLICY.read_text())
    doc["rollout"] = {"required": False, "stages": doc["rollout"]["stages"]}
    next(p for p in doc["reviewers"]["people"] if p["id"] == "farah")["roles"] = ["controller"]
    doc["actions"][2]["approval"]["quorum"] = 1
    registry = Registry()
    im.register(registry, ledger, policy=parse_policy(yaml.safe_dump(doc, sort_keys=False)))
    po = f"PO-{im.LARGE[4:]}"
    for table, key in (("invoice", "id"), ("purchase_order", "id"), ("goods_receipt", "po_id")):
        await _set(
            ledger, f"UPDATE {table} SET amount = 120000 WHERE {key} = $1", im.LARGE if table == "invoice" else po
        )
    client = time_skipping_env.client
    async with worker(client, task_queue, store, registry):
        run_id = await start(client, task_queue, im.LARGE)
        handle = client.get_workflow_handle(run_id, result_type=RunResult)
        pending = payment_pending(await wait_for(handle, lambda s: bool(s.pending)))
        assert pending.gates[0].eligible == ["farah"]
        for reviewer in ("dana", "erik"):
            refused = await vote(client, run_id, reviewer, pending.digest)
            assert (refused.accepted, refused.code) == (False, "no_authority")
            assert "may approve up to 50,000.00 EUR; this is 120,000.00 EUR" in refused.reason
        assert (await vote(client, run_id, "farah", pending.digest)).accepted
        assert (await handle.result()).outcome == "published"
    await registry.aclose()
    reason = await store.pool.fetchval(
        "SELECT reason FROM policy_decisions WHERE run_id = $1 AND action_id = 'schedule-payment'", run_id
    )
    assert "120,000.00 EUR is above the limit of everyone rule large-payment names: it goes to controller" in reason
