"""What the search attributes a run starts with cost: bare runs started with some of govflow's run
attributes against the same runs started with others (default: task, stage and mode against none).

Both kinds run on one worker against one dev server and Postgres, in counterbalanced rounds (A B B A,
then B A A B) after a warm-up of each, so the dev server's drift as runs pile up charges both alike. Each
batch's CPU is read from /proc for three sides: this process (worker and client), the Temporal dev server,
Postgres. Prints, per side and for the rate, the mean of the paired differences (A - B) and its standard
error. The attributes are the ones ``govflow.client.submit`` sets: t(ask), s(tage), m(ode),
a(waiting approval, false).

    .venv/bin/python -m bench.attribute_cost [--items 150] [--rounds 6] [--with tsm] [--against ""]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment

from bench.bare import BareActivities, BareRunWorkflow
from bench.governed_vs_bare import no_approval_policy
from bench.harness import bench_databases
from govflow.activities.evidence import EvidenceStore
from govflow.examples.support_triage import example_registry
from govflow.workers.worker import build_worker
from govflow.workflows import search_attributes as sa
from govflow.workflows.payloads import data_converter

BIN = Path(sys.executable).parent
PAIRS: dict[str, SearchAttributePair[Any]] = {
    "t": SearchAttributePair(sa.TASK, "support-triage"),
    "s": SearchAttributePair(sa.STAGE, "manual"),
    "m": SearchAttributePair(sa.MODE, "live"),
    "a": SearchAttributePair(sa.AWAITING_APPROVAL, False),
}
SIDES = ("worker", "server", "postgres")


def _cpu(pid: int) -> float:
    """Seconds of CPU a process has used (user + system), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _side(pid: int) -> str | None:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
    if pid == os.getpid():
        return "worker"
    if "temporal" in name and "start-dev" in cmdline:
        return "server"
    return "postgres" if name.startswith("postgres") else None


def cpu_by_side() -> dict[str, float]:
    out = dict.fromkeys(SIDES, 0.0)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (side := _side(int(entry.name))) is not None:
            out[side] += _cpu(int(entry.name))
    return out


async def run_batch(env: WorkflowEnvironment, task_queue: str, tickets: list[str], attributes: str) -> float:
    started = time.perf_counter()
    options: dict[str, Any] = {}
    if attributes:
        options["search_attributes"] = TypedSearchAttributes([PAIRS[c] for c in attributes])
    handles = []
    for ticket in tickets:
        run_id = f"bench-{uuid.uuid4().hex[:12]}"
        handles.append(
            await env.client.start_workflow(
                BareRunWorkflow.run, {"ticket_id": ticket}, id=run_id, task_queue=task_queue, **options
            )
        )
    await asyncio.gather(*(h.result() for h in handles))
    return len(tickets) / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=150, help="runs per batch (default 150)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of four batches (default 6)")
    parser.add_argument("--with", dest="a", default="tsm", help="attributes of kind A (default tsm)")
    parser.add_argument("--against", dest="b", default="", help="attributes of kind B (default none)")
    args = parser.parse_args()
    for spec in (args.a, args.b):
        if set(spec) - set(PAIRS):
            parser.error(f"attributes are letters of {''.join(PAIRS)}, not {spec!r}")
    a, b = args.a or "none", args.b or "none"
    if a == b:
        parser.error("the two kinds must differ")
    kinds = {a: args.a, b: args.b}

    dbs = await bench_databases(args.items * args.rounds * 4 + 100)
    registry = example_registry(dbs.sor_url, policy=no_approval_policy())
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"), data_converter=data_converter,
        search_attributes=sa.ALL, dev_server_log_level="error",
    )  # fmt: skip
    task_queue = f"bench-{uuid.uuid4()}"
    bare = BareActivities(registry)
    got: dict[str, list[dict[str, float]]] = {a: [], b: []}
    try:
        async with EvidenceStore.open(dbs.evidence_url) as store, build_worker(
            env.client, task_queue, store, registry,
            workflows=[BareRunWorkflow], extra_activities=bare.all(),
            passthrough=["bench"],
        ):  # fmt: skip
            tickets = iter(dbs.tickets)
            for kind in (a, b):  # warm-up
                await run_batch(env, task_queue, [next(tickets) for _ in range(50)], kinds[kind])
            for round_ in range(args.rounds):
                order = (a, b) if round_ % 2 == 0 else (b, a)
                for kind in (*order, *reversed(order)):
                    before = cpu_by_side()
                    rate = await run_batch(env, task_queue, [next(tickets) for _ in range(args.items)], kinds[kind])
                    after = cpu_by_side()
                    row = {s: (after[s] - before[s]) / args.items * 1000 for s in SIDES} | {"rate": rate}
                    got[kind].append(row)
                    print(f"  {kind:>6}: {rate:5.1f} runs/s, CPU ms per run: "
                          + ", ".join(f"{s} {row[s]:.1f}" for s in SIDES), flush=True)  # fmt: skip
        await registry.aclose()
    finally:
        await env.shutdown()
        dbs.server.cleanup()
    print(
        f"bare runs started with search attributes {a} (A) against {b} (B); {args.rounds} rounds of "
        f"{args.items}-run batches, A B B A / B A A B; mean of paired differences A - B, +- standard error"
    )
    for key, unit in (("rate", "runs/s"), *((s, f"ms CPU per run ({s})") for s in SIDES)):
        diffs = [x[key] - y[key] for x, y in zip(got[a], got[b], strict=True)]
        error = statistics.stdev(diffs) / len(diffs) ** 0.5
        mean_a = statistics.mean(x[key] for x in got[a])
        print(f"  {unit:>32}: A {mean_a:6.2f}, A - B {statistics.mean(diffs):+6.2f} +- {error:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
