"""Limits counted over a window (approval.limits.window): two payments to one vendor in a day, each under
the approvers' 50,000 limit, together above it. Decided one after the other, the second asks for the
authority its total needs; approved at once and racing to publish, only one is written (the other is
refused at the write, counted under a lock). On the time-skipping server, with the invoice example."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import asyncpg
import yaml
from temporalio.testing import WorkflowEnvironment

from govflow import Registry, parse_policy
from govflow.activities.evidence import EvidenceStore
from govflow.examples import invoice_matching as im
from govflow.workflows.run_api import RunResult
from tests.helpers import ending, event_kinds, wait_for, worker
from tests.integration.test_finance_e2e import payment_pending, start, vote

CAP = Decimal(50_000)


def windowed() -> Any:
    doc = yaml.safe_load(im.POLICY.read_text())
    doc["rollout"] = {"required": False, "stages": doc["rollout"]["stages"]}
    doc["actions"][2]["approval"]["limits"]["window"] = {"by": "vendor_id", "over": "1d"}
    return parse_policy(yaml.safe_dump(doc, sort_keys=False))


async def payable(ledger: str, invoice: str, vendor: str, amount: int) -> None:
    """``invoice`` (a routine one) billed by ``vendor`` for ``amount``, ordered and received in full."""
    conn = await asyncpg.connect(ledger)
    try:
        await im.reprice(conn, invoice, amount, vendor)
    finally:
        await conn.close()


async def written_to(store: EvidenceStore, vendor: str) -> Decimal:
    total = await store.pool.fetchval(
        "SELECT coalesce(sum((after_image->>'amount')::numeric), 0) FROM touched_records "
        "WHERE resource = 'payment' AND mode = 'live' AND after_image->>'vendor_id' = $1", vendor,
    )  # fmt: skip
    return Decimal(total)


async def test_two_payments_to_one_vendor_never_both_stay_under_a_windowed_limit(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, finance_url: str, task_queue: str
) -> None:
    client = time_skipping_env.client
    registry = Registry()
    im.register(registry, finance_url, policy=windowed())
    races = [("V001", "INV-0001", "INV-0002"), ("V002", "INV-0003", "INV-0004"), ("V003", "INV-0006", "INV-0007")]
    for vendor, first, second in races:
        await payable(finance_url, first, vendor, 30_000)
        await payable(finance_url, second, vendor, 30_000)
    await payable(finance_url, "INV-0008", "V001", 30_000)
    try:
        async with worker(client, task_queue, store, registry), ending() as started:
            # Racing: both decided under an empty window, both approved at once by two finance approvers
            # (50,000 each): one is written; the other's write is refused under the lock and its gate asks
            # again, for the 60,000 the vendor's day would hold: two controllers.
            waiting: dict[str, tuple[str, str]] = {}
            for vendor, first, second in races:
                runs = [await start(client, task_queue, invoice) for invoice in (first, second)]
                handles = [client.get_workflow_handle(r) for r in runs]
                started += handles
                digests = [payment_pending(await wait_for(h, lambda s: bool(s.pending))).digest for h in handles]
                for run_id, digest in zip(runs, digests, strict=True):
                    assert (await vote(client, run_id, "erik", digest)).accepted
                await asyncio.gather(*(vote(client, r, "dana", d) for r, d in zip(runs, digests, strict=True)))
                ends = [await wait_for(h, lambda s: s.outcome is not None or (s.phase == "awaiting approval"
                                       and payment_pending(s).gates[0].escalated)) for h in handles]  # fmt: skip
                assert sorted(str(e.outcome) for e in ends) == ["None", "published"], ends
                (asked,) = [e for e in ends if e.outcome is None]
                gate = payment_pending(asked).gates[0]
                assert (gate.eligible, gate.quorum, gate.approved_by) == (["farah", "hana"], 2, [])
                assert await written_to(store, vendor) == 30_000  # no breach: the second waits
                kinds = await event_kinds(store, "run", asked.run_id)
                assert kinds[-2:] == ["window_limit_refused", "gate_escalated"], kinds
                (regated,) = [e["payload"] for e in await store.events("run", asked.run_id)
                              if e["kind"] == "gate_escalated"]  # fmt: skip
                assert f"vendor_id {vendor} would hold 60,000.00 EUR in the window" in regated["reason"]
                assert (
                    "60,000.00 EUR with 30,000.00 EUR already written in the window goes to controller"
                    in (regated["reason"])
                )
                waiting[vendor] = (asked.run_id, payment_pending(asked).digest)

            # The finance approvers may no longer approve it; the controllers may, and then it is written.
            run_id, digest = waiting["V001"]
            refused = await vote(client, run_id, "erik", digest)
            assert (refused.accepted, refused.code) == (False, "no_authority"), refused
            assert "may approve up to 50,000.00 EUR" in refused.reason
            for controller in ("farah", "hana"):
                assert (await vote(client, run_id, controller, digest)).accepted
            result = await client.get_workflow_handle(run_id, result_type=RunResult).result()
            assert result.outcome == "published", result
            assert await written_to(store, "V001") == 60_000

            # One after the other: the third V001 payment is decided with the window's 60,000 counted, so
            # only people whose limit covers 90,000 may approve it.
            run_id = await start(client, task_queue, "INV-0008")
            started.append(client.get_workflow_handle(run_id))
            pending = payment_pending(await wait_for(client.get_workflow_handle(run_id), lambda s: bool(s.pending)))
            assert pending.gates[0].eligible == ["farah", "hana"]
            refused_vote = await vote(client, run_id, "erik", pending.digest)
            assert not refused_vote.accepted
            assert "this is 90,000.00 EUR with 60,000.00 EUR already written in the window" in refused_vote.reason
    finally:
        await registry.aclose()
    kinds = await store.pool.fetchval("SELECT count(*) FROM evidence_events WHERE kind = 'window_limit_refused'")
    assert kinds == len(races)
