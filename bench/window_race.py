"""Limits counted over a window, raced: do two payments to one vendor ever both publish above the window?

    python -m bench.window_race [--races 50] [--amount 30000]

The invoice example under its policy, with the large-payment limits counted per vendor per day
(``limits.window: {by: vendor_id, over: 1d}``; finance approvers up to 50,000). Each race is a vendor of
its own and two invoices of ``--amount`` each (together above 50,000, each under it): both runs start,
both wait for approval (decided under an empty window), erik approves both, then dana approves both at
once, so the two publishes race for the vendor's window. The loser's write is refused under the lock and
its gate asks again, for the total: two controllers (farah, hana). Every race runs at the same time as
the others (open loop, 2 x ``--races`` runs in flight) against the dev server, one worker in this process.

Printed: races; how many had one payment written and the other asked again of the controllers; breaches
(a vendor whose written total is above 50,000 before the controllers approved: must be 0); then, the
controllers approving every waiting one, how many were written (60,000 each, within their limit); and
min / median / p95 / max of the time from the last finance approval to one run's result and the other's
gate asked again, in ms. Exit 1 on any breach or any race that did not end so.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import yaml
from temporalio.testing import WorkflowEnvironment

from bench.approval_latency import spread
from bench.harness import bench_databases
from govflow import Registry, parse_policy
from govflow.activities.connectors import with_database
from govflow.activities.evidence import EvidenceStore
from govflow.examples import invoice_matching as im
from govflow.workers.worker import build_worker
from govflow.workflows import search_attributes
from govflow.workflows.payloads import data_converter
from govflow.workflows.run_api import RunResult, RunStatus
from tests.helpers import wait_for
from tests.integration.test_finance_e2e import payment_pending, start, vote

BIN = Path(sys.executable).parent
CAP = 50_000


def policy(vendors: list[str]) -> object:
    doc = yaml.safe_load(im.POLICY.read_text())
    doc["rollout"] = {"required": False, "stages": doc["rollout"]["stages"]}
    doc["actions"][2]["approval"]["limits"]["window"] = {"by": "vendor_id", "over": "1d"}
    for grant in doc["grants"]:
        if grant.get("records", {}).get("field") == "vendor_id":
            grant["records"]["in"] = [*grant["records"]["in"], *vendors]
    return parse_policy(yaml.safe_dump(doc, sort_keys=False), source="invoice-matching.yaml (windowed, bench)")


async def ledger(admin: str, races: int, amount: int) -> tuple[str, list[tuple[str, str, str]]]:
    """A finance ledger with a vendor and two invoices of ``amount`` per race."""
    conn = await asyncpg.connect(admin)
    await conn.execute('CREATE DATABASE "bench_finance"')
    await conn.close()
    url = with_database(admin, "bench_finance")
    conn = await asyncpg.connect(url)
    try:
        await im.seed(conn, 2 * races)
        out = []
        for k in range(races):
            vendor, invoices = f"V{100 + k}", (f"INV-{2 * k + 1:04d}", f"INV-{2 * k + 2:04d}")
            await conn.execute("INSERT INTO vendor (id, name, country) VALUES ($1, $1, 'DE')", vendor)
            for invoice in invoices:
                await im.reprice(conn, invoice, amount, vendor)
            out.append((vendor, *invoices))
        return url, out
    finally:
        await conn.close()


async def main_async(args: argparse.Namespace) -> int:
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    dbs = await bench_databases(1)  # the evidence database (and a support one this bench leaves alone)
    admin, evidence_url, server = str(dbs.server.get_uri()), dbs.evidence_url, dbs.server
    finance_url, races = await ledger(admin, args.races, args.amount)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"), data_converter=data_converter,
        search_attributes=search_attributes.ALL, dev_server_log_level="error",
    )  # fmt: skip
    task_queue = f"bench-{uuid.uuid4()}"
    registry = Registry()
    im.register(registry, finance_url, policy=policy([v for v, _, _ in races]))
    client = env.client
    took: list[float] = []
    one_each = 0
    try:
        async with EvidenceStore.open(evidence_url) as store, build_worker(client, task_queue, store, registry):

            async def race(vendor: str, first: str, second: str) -> tuple[str, str] | None:
                runs = [await start(client, task_queue, invoice) for invoice in (first, second)]
                handles = [client.get_workflow_handle(r) for r in runs]
                digests = []
                for handle in handles:
                    status = await wait_for(handle, lambda s: bool(s.pending), tries=1200)
                    digests.append(payment_pending(status).digest)
                for run_id, digest in zip(runs, digests, strict=True):
                    assert (await vote(client, run_id, "erik", digest)).accepted
                started = time.perf_counter()
                await asyncio.gather(*(vote(client, r, "dana", d) for r, d in zip(runs, digests, strict=True)))
                ends = [await wait_for(h, settled, tries=1200) for h in handles]
                took.append((time.perf_counter() - started) * 1000)
                asked = [e for e in ends if e.outcome is None]
                if sorted(str(e.outcome) for e in ends) != ["None", "published"]:
                    return None
                return asked[0].run_id, payment_pending(asked[0]).digest

            outcomes = await asyncio.gather(*(race(*r) for r in races))
            one_each = sum(1 for o in outcomes if o is not None)
            totals = await store.pool.fetch(_TOTALS)
            breaches = [(r["vendor"], r["total"]) for r in totals if r["total"] > CAP]

            async def controllers(run_id: str, digest: str) -> str:
                for person in ("farah", "hana"):
                    await vote(client, run_id, person, digest)
                result = await client.get_workflow_handle(run_id, result_type=RunResult).result()
                return result.outcome

            finals = await asyncio.gather(*(controllers(*o) for o in outcomes if o is not None))
            after = await store.pool.fetch(_TOTALS)
    finally:
        await registry.aclose()
        await env.shutdown()
        server.cleanup()
    print(f"window race: {args.races} races of two {args.amount:,} payments to one vendor (cap {CAP:,} per day), "
          "all at once (open loop)")  # fmt: skip
    print(f"  one written, the other asked again of the controllers: {one_each} of {args.races}")
    print(f"  breaches (a vendor's written total above the cap before the controllers approved): {len(breaches)} "
          f"{breaches[:5]}")  # fmt: skip
    print(f"  then approved by farah and hana: {finals.count('published')} of {len(finals)} written; "
          f"vendors at {2 * args.amount:,}: {sum(1 for r in after if r['total'] == 2 * args.amount)}")  # fmt: skip
    print(f"  last finance approval -> one written and one asked again, ms (min / median / p95 / max): {spread(took)}")
    return 1 if breaches or one_each != args.races else 0


def settled(status: RunStatus) -> bool:
    """Published (or ended otherwise), or waiting on a gate asked again of whoever may approve the total."""
    return status.outcome is not None or (
        bool(status.pending) and status.phase == "awaiting approval" and payment_pending(status).gates[0].escalated
    )


_TOTALS = """
SELECT after_image->>'vendor_id' AS vendor, sum((after_image->>'amount')::numeric) AS total
FROM touched_records WHERE resource = 'payment' AND mode = 'live' GROUP BY 1
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--races", type=int, default=50)
    parser.add_argument("--amount", type=int, default=30_000)
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
