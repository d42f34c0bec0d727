"""Throughput of GovernedRunWorkflow against a bare workflow doing the same work.

Both run the support-triage task (local baseline model, Postgres connectors) on
the same worker, against the same Temporal dev server and Postgres. The bare
workflow calls the same gather, propose and write directly: no scope guard, no
policy, no evidence. The policy here needs no approvals, so nothing waits for a
human. Batches of 50, 200 and 800 items, each size run ``--rounds`` times; both kinds
warmed up first. A round runs four batches in counterbalanced order, bare governed
governed bare (the next round governed bare bare governed), and its ratio is the
governed batches' mean rate over the bare ones': the dev server slows as finished
runs pile up in it (bare's rate falls ~4 % every 300 runs here), and a round of two
batches, alternated only between rounds, charged that drift to whichever kind went
second, which an odd number of rounds does not cancel. Prints the ratio
governed/bare per size as min / median / max over the rounds, and what one run of
each kind is made of in Temporal (activities, workflow tasks, history events): a
governed run opens, gathers and proposes in one activity and publishes every write
in another, where the bare workflow, written as a plain workflow is, makes one activity per
step; the ratio is what a user's throughput becomes.
``--bare lean`` runs a bare workflow made of as many activities as a governed run
(gather and propose in one, every write in another), so that the ratio is what the
governance itself costs.

    .venv/bin/python -m bench.governed_vs_bare [--items 50,200,800] [--rounds 3] [--bare steps|lean]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from bench.bare import BareActivities, BareLeanRunWorkflow, BareRunWorkflow
from bench.harness import bench_databases
from govflow.activities.evidence import EvidenceStore
from govflow.client import submit
from govflow.examples.support_triage import EXAMPLES, example_registry
from govflow.policies import Policy, parse_policy
from govflow.workers.worker import build_worker
from govflow.workflows import search_attributes
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.payloads import data_converter
from govflow.workflows.run_api import RunInput

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


BARE = {"steps": BareRunWorkflow, "lean": BareLeanRunWorkflow}


async def run_batch(
    env: WorkflowEnvironment,
    task_queue: str,
    tickets: list[str],
    governed: bool,
    last: dict[str, list[WorkflowHandle[Any, Any]]] | None = None,
    bare: str = "steps",
) -> float:
    """Runs per second for ``tickets``, one run each; with ``last``, the kind's last 20 runs are kept there."""
    started = time.perf_counter()
    handles = []
    for ticket in tickets:
        run_id = f"bench-{uuid.uuid4().hex[:12]}"
        if governed:
            inp = RunInput(task="support-triage", item_key=ticket, item={"ticket_id": ticket}, requester="bench",
                           mode="live")  # fmt: skip
            # Started as users start runs (govflow.client.submit: search attributes and a summary at start).
            await submit(env.client, task_queue, inp, run_id=run_id)
            handles.append(env.client.get_workflow_handle_for(GovernedRunWorkflow.run, run_id))
        else:
            handles.append(
                await env.client.start_workflow(BARE[bare].run, {"ticket_id": ticket}, id=run_id, task_queue=task_queue)
            )
    results = await asyncio.gather(*(h.result() for h in handles))
    elapsed = time.perf_counter() - started
    if governed:
        outcomes = {r.outcome for r in results}
        assert outcomes == {"published"}, outcomes
    if last is not None:
        last["governed" if governed else "bare"] = handles[-20:]
    return len(tickets) / elapsed


async def runs_shape(handles: list[WorkflowHandle[Any, Any]]) -> str:
    """Activities, workflow tasks and history events per run, mean over ``handles`` (their histories)."""
    counts = []
    for handle in handles:
        events = [e.WhichOneof("attributes") for e in (await handle.fetch_history()).events]
        tasks = events.count("workflow_task_completed_event_attributes")
        counts.append((events.count("activity_task_scheduled_event_attributes"), tasks, len(events)))
    a, t, e = (statistics.mean(c[i] for c in counts) for i in range(3))
    return f"{a:.2f} activities, {t:.2f} workflow tasks, {e:.1f} history events (mean of {len(counts)} runs)"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", default="50,200,800", help="items per batch, comma separated (default 50,200,800)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size; each round runs both kinds")
    parser.add_argument(
        "--bare",
        choices=sorted(BARE),
        default="steps",
        help="steps: one activity per step (default); lean: as many activities as a governed run",
    )
    args = parser.parse_args()
    sizes = [int(x) for x in str(args.items).split(",")]

    total = sum(sizes) * args.rounds * 4
    dbs = await bench_databases(total + 40)
    server, evidence_url, sor_url, tickets = dbs.server, dbs.evidence_url, dbs.sor_url, dbs.tickets

    registry = example_registry(sor_url, policy=no_approval_policy())
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        data_converter=data_converter,
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
    )
    task_queue = f"bench-{uuid.uuid4()}"
    bare = BareActivities(registry)
    ratios: dict[int, list[float]] = {n: [] for n in sizes}
    rates: dict[tuple[int, str], list[float]] = {}
    last: dict[str, list[WorkflowHandle[Any, Any]]] = {}
    shapes: dict[str, str] = {}
    try:
        async with EvidenceStore.open(evidence_url) as store, build_worker(
            env.client, task_queue, store, registry,
            workflows=list(BARE.values()), extra_activities=bare.all(),
            passthrough=["bench"],
        ):  # fmt: skip
            # Warm up both kinds (imports, pools, the server's caches) before anything is timed.
            await run_batch(env, task_queue, tickets[:20], governed=False, bare=args.bare)
            await run_batch(env, task_queue, tickets[20:40], governed=True)
            offset = 40
            for n in sizes:
                for round_ in range(args.rounds):
                    # ABBA, and BAAB the next round: a drift linear in time charges both kinds alike.
                    order = ("bare", "governed") if round_ % 2 == 0 else ("governed", "bare")
                    got: dict[str, list[float]] = {"bare": [], "governed": []}
                    for kind in (*order, *reversed(order)):
                        batch = tickets[offset : offset + n]
                        offset += n
                        governed = kind == "governed"
                        rate = await run_batch(env, task_queue, batch, governed, last=last, bare=args.bare)
                        got[kind].append(rate)
                        rates.setdefault((n, kind), []).append(got[kind][-1])
                    ratios[n].append(statistics.mean(got["governed"]) / statistics.mean(got["bare"]))
                    print(f"  {n} items, round {round_ + 1}: bare {' '.join(f'{r:.1f}' for r in got['bare'])}, "
                          f"governed {' '.join(f'{r:.1f}' for r in got['governed'])} runs/s: "
                          f"ratio {ratios[n][-1]:.2f}", flush=True)  # fmt: skip
            shapes = {kind: await runs_shape(handles) for kind, handles in last.items()}
        await registry.aclose()
    finally:
        await env.shutdown()
        server.cleanup()
    for kind, shape in sorted(shapes.items()):
        print(f"  a {kind} run (the last batch's last runs): {shape}")
    print(f"one worker, dev server, 2 cores; bare: {args.bare}; {args.rounds} rounds per size, each "
          "bare-governed-governed-bare or governed-bare-bare-governed, both warmed up")  # fmt: skip
    print(f"{'items':>6}  {'bare runs/s (median)':>20}  {'governed runs/s (median)':>24}  ratio min / median / max")
    for n in sizes:
        r = ratios[n]
        bare_m = statistics.median(rates[(n, "bare")])
        gov_m = statistics.median(rates[(n, "governed")])
        print(f"{n:>6}  {bare_m:>20.1f}  {gov_m:>24.1f}  {min(r):.2f} / {statistics.median(r):.2f} / {max(r):.2f}")


if __name__ == "__main__":
    asyncio.run(main())
