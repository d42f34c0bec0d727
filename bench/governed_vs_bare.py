"""Throughput of GovernedRunWorkflow against a bare workflow doing the same work.

Both run the support-triage task (local baseline model, Postgres connectors) on
the same worker, against the same Temporal dev server and Postgres. The bare
workflow calls the same gather, propose and write directly: no scope guard, no
policy, no evidence. The policy here needs no approvals, so nothing waits for a
human. Target: governed >= 0.7x bare.

    .venv/bin/python -m bench.governed_vs_bare --items 200 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.evidence import EvidenceStore
from bench.bare import BareActivities, BareRunWorkflow
from bench.common import bench_databases
from policies import Policy, parse_policy
from workers.app import EXAMPLES, example_registry
from workers.worker import build_worker
from workflows import search_attributes
from workflows.governed_run import GovernedRunWorkflow
from workflows.run_models import RunInput

BIN = Path(sys.executable).parent


def no_approval_policy() -> Policy:
    return parse_policy(no_approval_text(), source="bench")


def no_approval_text() -> str:
    text = (EXAMPLES / "support-triage.yaml").read_text()
    # Drop the approval blocks: every action is allowed by its rule, nothing waits for a human.
    lines, out, skipping = text.splitlines(), [], False
    for line in lines:
        if line.strip() == "approval:":
            skipping = True
            continue
        if skipping and line.startswith("      "):
            continue
        skipping = False
        out.append(line)
    return "\n".join(out) + "\n"


async def run_batch(env: WorkflowEnvironment, task_queue: str, tickets: list[str], governed: bool) -> float:
    started = time.perf_counter()
    handles = []
    for ticket in tickets:
        run_id = f"bench-{uuid.uuid4().hex[:12]}"
        if governed:
            inp = RunInput(task="support-triage", item_key=ticket, item={"ticket_id": ticket}, requester="bench",
                           mode="live")  # fmt: skip
            handles.append(
                await env.client.start_workflow(GovernedRunWorkflow.run, inp, id=run_id, task_queue=task_queue)
            )
        else:
            handles.append(
                await env.client.start_workflow(
                    BareRunWorkflow.run, {"ticket_id": ticket}, id=run_id, task_queue=task_queue
                )
            )
    results = await asyncio.gather(*(h.result() for h in handles))
    elapsed = time.perf_counter() - started
    if governed:
        outcomes = {r.outcome for r in results}
        assert outcomes == {"published"}, outcomes
    return len(tickets) / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200, help="items per batch")
    parser.add_argument("--rounds", type=int, default=2, help="batches of each kind, alternating")
    args = parser.parse_args()

    total = args.items * args.rounds * 2
    dbs = await bench_databases(total + 20)
    server, evidence_url, sor_url, tickets = dbs.server, dbs.evidence_url, dbs.sor_url, dbs.tickets

    registry = example_registry(sor_url, policy=no_approval_policy())
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
    )
    task_queue = f"bench-{uuid.uuid4()}"
    bare = BareActivities(registry)
    try:
        async with EvidenceStore.open(evidence_url) as store, build_worker(
            env.client, task_queue, store, registry,
            workflows=[BareRunWorkflow], extra_activities=[bare.gather, bare.propose, bare.write],
            passthrough=["bench"],
        ):  # fmt: skip
            await run_batch(env, task_queue, tickets[:20], governed=True)  # warm up
            rates: dict[str, list[float]] = {"governed": [], "bare": []}
            offset = 20
            for _ in range(args.rounds):
                for kind in ("bare", "governed"):
                    batch = tickets[offset : offset + args.items]
                    offset += args.items
                    rates[kind].append(await run_batch(env, task_queue, batch, governed=kind == "governed"))
        await registry.aclose()
    finally:
        await env.shutdown()
        server.cleanup()
    governed, bare_rate = statistics.mean(rates["governed"]), statistics.mean(rates["bare"])
    print(f"items per batch: {args.items}, rounds: {args.rounds}, one worker, dev server, 2 cores")
    print(f"bare:     {bare_rate:7.1f} runs/s  (batches: {', '.join(f'{r:.1f}' for r in rates['bare'])})")
    print(f"governed: {governed:7.1f} runs/s  (batches: {', '.join(f'{r:.1f}' for r in rates['governed'])})")
    print(f"ratio governed/bare: {governed / bare_rate:.2f} (target >= 0.70)")


if __name__ == "__main__":
    asyncio.run(main())
