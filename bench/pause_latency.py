"""How fast a breach pauses a rollout with runs in flight, and whether any write slips through.

Each trial: a rollout at a 100%-live stage, 50 governed runs in flight (no approvals
needed), then failing outcome reports until the pass-rate rule breaches. Measured:
the time from sending the breach-causing report to the breach row being committed
(Postgres clock; same machine), and the leases granted after the pause (every live
write needs one, so this counts live writes started after the pause; must be 0).

    .venv/bin/python -m bench.pause_latency --trials 5 --in-flight 50
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

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.evidence import EvidenceStore
from bench.common import bench_databases
from bench.governed_vs_bare import no_approval_text
from policies import Policy, parse_policy
from workers.app import example_registry
from workers.worker import build_worker
from workflows import search_attributes
from workflows.governed_run import GovernedRunWorkflow
from workflows.rollout import RolloutWorkflow
from workflows.rollout_models import Control, RolloutInput, RunReport
from workflows.run_models import RunInput

BIN = Path(sys.executable).parent


def live_policy() -> Policy:
    """support-triage without approvals, with a shadow stage and a 100%-live stage."""
    text = no_approval_text()
    text = text[: text.index("rollout:")] + (
        "rollout:\n  stages:\n    - {name: shadow, live_fraction: 0.0}\n"
        "    - {name: full, live_fraction: 1.0, gate: approval, promoters: [omar]}\n"
        + text[text.index("stop_rules:") :]
    )
    return parse_policy(text, source="bench")


async def trial(
    env: WorkflowEnvironment, store: EvidenceStore, task_queue: str, tickets: list[str]
) -> tuple[float, int, int]:
    rollout = await env.client.start_workflow(
        RolloutWorkflow.run, RolloutInput(task="support-triage"), id=f"rollout-{uuid.uuid4()}", task_queue=task_queue
    )
    await rollout.execute_update(RolloutWorkflow.promote_update, Control(operator="omar"))
    for i in range(19):  # one short of the rule's minimum sample: the next report decides
        await rollout.signal(
            RolloutWorkflow.report, RunReport(run_id=f"x{i}", stage="full", mode="live", checks_passed=False)
        )
    runs = await asyncio.gather(
        *(
            env.client.start_workflow(
                GovernedRunWorkflow.run,
                RunInput(task="support-triage", item_key=t, item={"ticket_id": t}, requester="bench", mode="live",
                         stage="full", rollout_id=rollout.id),
                id=f"run-{uuid.uuid4()}", task_queue=task_queue,
            )
            for t in tickets
        )
    )  # fmt: skip
    sent = datetime.now(UTC)
    await rollout.signal(
        RolloutWorkflow.report, RunReport(run_id="trigger", stage="full", mode="live", checks_passed=False)
    )
    deadline = time.monotonic() + 60
    breach = None
    while breach is None and time.monotonic() < deadline:
        rows = [e for e in await store.events("rollout", rollout.id) if e["kind"] == "breach"]
        breach = rows[0] if rows else None
        await asyncio.sleep(0.005)
    assert breach is not None, "no breach recorded within 60 s"
    latency_ms = (breach["recorded_at"] - sent).total_seconds() * 1000
    results = await asyncio.gather(*(r.result() for r in runs))
    status = await rollout.query(RolloutWorkflow.status)
    after_pause = status.leases_granted - int(breach["payload"]["leases_granted"])
    written = sum(1 for r in results if r.outcome == "published")
    await rollout.terminate("trial over")
    if breach["payload"]["trigger"] != "trigger":
        return None, after_pause, written  # a real run's report tripped it first: no send time to measure from
    return latency_ms, after_pause, written


async def main() -> None:
    # Refused leases are the point here; the worker's warning per refused activity is noise.
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--in-flight", type=int, default=50)
    args = parser.parse_args()
    dbs = await bench_databases(args.trials * args.in_flight)
    server, evidence_url, sor_url, tickets = dbs.server, dbs.evidence_url, dbs.sor_url, dbs.tickets
    registry = example_registry(sor_url, policy=live_policy())
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"), data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL, dev_server_log_level="error",
    )  # fmt: skip
    task_queue = f"bench-{uuid.uuid4()}"
    latencies, slipped, written = [], [], []
    try:
        async with EvidenceStore.open(evidence_url) as store, build_worker(env.client, task_queue, store, registry):
            for i in range(args.trials):
                batch = tickets[i * args.in_flight : (i + 1) * args.in_flight]
                ms, after, wrote = await trial(env, store, task_queue, batch)
                if ms is not None:
                    latencies.append(ms)
                slipped.append(after)
                written.append(wrote)
        await registry.aclose()
    finally:
        await env.shutdown()
        server.cleanup()
    latencies.sort()
    if not latencies:
        latencies = [float("nan")]
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    print(f"trials: {args.trials}, runs in flight per trial: {args.in_flight}, one worker, dev server, 2 cores")
    print(f"trials where our report tripped the breach (measurable): {len(latencies)}")
    print(f"breach-causing report -> breach row committed: p50 {statistics.median(latencies):.1f} ms, "
          f"p95 {p95:.1f} ms (all: {', '.join(f'{x:.1f}' for x in latencies)})")  # fmt: skip
    print(f"live writes started after the pause (leases granted after it): {slipped} (must be 0)")
    print(f"runs that wrote before the pause, per trial: {written}")


if __name__ == "__main__":
    asyncio.run(main())
