"""From a reviewer's approval to the governed write: one vote at a time, and a burst.

    python -m bench.approval_latency [--single 30] [--burst 200] [--at-once 50]

Runs of the support-triage task (live, no rollout, the example policy: each reply waits for one
support lead) are started and left waiting at approval on the dev server. Then:

- one at a time: each run is approved with the `approve` signal, and the next only after the previous
  run's write is recorded;
- a burst: ``--burst`` waiting runs are approved, ``--at-once`` signals in flight at a time.

Runs are started with ``govflow.client.submit``, until ``--burst`` (and ``--single``) runs wait for one
vote on their one action (runs that also flag churn wait for two leads, and are set aside).

Measured per run: from just before the signal is sent (client clock) to the publish starting: the
``recorded_at`` of the run's ``touched_record`` row, which is the start of the publish's transaction
(``now()``): it holds the fence, the write commits inside it, and the row commits with it (Postgres
clock, same machine). Printed: min / median / p95 / max in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from bench.harness import bench_databases
from govflow.activities.evidence import EvidenceStore
from govflow.client import submit
from govflow.examples.support_triage import example_registry
from govflow.workers.worker import build_worker
from govflow.workflows import search_attributes
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.payloads import data_converter
from govflow.workflows.run_api import Review, RunInput, RunResult

BIN = Path(sys.executable).parent


async def park(env: WorkflowEnvironment, task_queue: str, tickets: list[str], want: int) -> list[tuple[str, str]]:
    """Start live runs (govflow.client.submit), taking tickets from the front of ``tickets``, until ``want``
    of them wait for one vote on their one action; (run id, digest) of each."""
    parked: list[tuple[str, str]] = []
    while len(parked) < want and tickets:
        batch = [tickets.pop(0) for _ in range(min(len(tickets), want - len(parked)))]
        parked += await _park(env, task_queue, batch)
    if len(parked) < want:
        raise SystemExit(f"only {len(parked)} one-vote runs parked of the {want} asked for: seed more tickets")
    return parked


async def _park(env: WorkflowEnvironment, task_queue: str, tickets: list[str]) -> list[tuple[str, str]]:
    handles = []
    for ticket in tickets:
        inp = RunInput(task="support-triage", item_key=ticket, item={"ticket_id": ticket}, requester="priya",
                       mode="live")  # fmt: skip
        run_id = await submit(env.client, task_queue, inp, run_id=f"bench-{uuid.uuid4().hex[:12]}")
        handles.append(env.client.get_workflow_handle(run_id))
    parked = []
    for handle in handles:
        while True:
            status = await handle.query(GovernedRunWorkflow.status)
            if status.pending:
                if len(status.pending) == 1 and status.pending[0].gates[0].quorum == 1:
                    parked.append((handle.id, status.pending[0].digest))
                else:  # a churn flag too (two leads): not the one-vote path this measures
                    await handle.terminate("bench: not a one-vote run")
                break
            if status.outcome is not None:
                break
            await asyncio.sleep(0.05)
    return parked


async def approve_and_time(env: WorkflowEnvironment, store: EvidenceStore, run_id: str, digest: str) -> float:
    sent = datetime.now(UTC)
    handle = env.client.get_workflow_handle(run_id, result_type=RunResult)
    await handle.signal(GovernedRunWorkflow.approve, Review(reviewer="bob", action_digest=digest))
    result = await handle.result()
    assert result.outcome == "published", result
    recorded = await store.pool.fetchval(
        "SELECT recorded_at FROM evidence_events WHERE stream = 'run' AND stream_id = $1 AND kind = 'touched_record'",
        run_id,
    )
    return (recorded - sent).total_seconds() * 1000


def spread(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"{ordered[0]:.0f} / {statistics.median(ordered):.0f} / {p95:.0f} / {ordered[-1]:.0f}"


async def main_async(args: argparse.Namespace) -> None:
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    dbs = await bench_databases(2 * (args.single + args.burst) + 20)  # about half wait for one vote only
    registry = example_registry(dbs.sor_url)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"), data_converter=data_converter,
        search_attributes=search_attributes.ALL, dev_server_log_level="error",
    )  # fmt: skip
    task_queue = f"bench-{uuid.uuid4()}"
    try:
        async with EvidenceStore.open(dbs.evidence_url) as store, build_worker(env.client, task_queue, store, registry):
            tickets = list(dbs.tickets)
            warm = await park(env, task_queue, tickets, 5)
            for run_id, digest in warm:
                await approve_and_time(env, store, run_id, digest)
            single = await park(env, task_queue, tickets, args.single)
            one_at_a_time = [await approve_and_time(env, store, r, d) for r, d in single]
            burst = await park(env, task_queue, tickets, args.burst)
            gate = asyncio.Semaphore(args.at_once)

            async def one(run_id: str, digest: str) -> float:
                async with gate:
                    return await approve_and_time(env, store, run_id, digest)

            started = time.perf_counter()
            in_burst = await asyncio.gather(*(one(r, d) for r, d in burst))
            burst_s = time.perf_counter() - started
        await registry.aclose()
    finally:
        await env.shutdown()
        dbs.server.cleanup()
    print("approval signal -> write recorded, ms: min / median / p95 / max (targets: p95 < 200 one at a time,")
    print("< 500 in the burst)")
    print(f"  {f'one at a time ({len(one_at_a_time)} runs)':<40} {spread(one_at_a_time)}")
    print(
        f"  burst of {len(in_burst)}, {args.at_once} signals at once      {spread(in_burst)}  ({burst_s:.1f} s in all)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.approval_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--single", type=int, default=30)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--at-once", type=int, default=50)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
