"""A rollout under a steady stream of outcome reports: does continue-as-new keep up, and lose nothing?

Senders signal ``report`` to one rollout as fast as the server takes them, for a
fixed time, while the rollout continues-as-new every ``--history-limit`` events.
Each close that a new signal races is refused by the server ("UnhandledCommand"),
and the workflow task runs again (govflow's ``settle`` keeps evidence writes out
of that task). Printed: reports sent and counted (lost must be 0), the runs the
rollout went through, the refused closes, and the signal round-trip times.

    .venv/bin/python -m bench.rollout_handover --senders 8 --seconds 20 --history-limit 400
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from bench.harness import bench_databases
from govflow.activities.evidence import EvidenceStore
from govflow.examples.support_triage import example_registry
from govflow.workers.temporal import query_current
from govflow.workers.worker import build_worker
from govflow.workflows import search_attributes
from govflow.workflows.payloads import data_converter
from govflow.workflows.rollout import RolloutWorkflow
from govflow.workflows.rollout_api import RolloutInput, RolloutStatus, RunReport

BIN = Path(sys.executable).parent


async def runs_of(client: Client, workflow_id: str) -> list[tuple[str, int]]:
    """(run id, refused closes) for every run of ``workflow_id``, oldest first."""
    out = []
    async for wf in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        history = await client.get_workflow_handle(workflow_id, run_id=wf.run_id).fetch_history()
        refused = sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
        out.append((wf.run_id, refused))
    return list(reversed(out))


async def main(senders: int, seconds: float, history_limit: int) -> None:
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    dbs = await bench_databases(10)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        data_converter=data_converter,
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
    )
    registry = example_registry(dbs.sor_url)  # its shadow stage needs 10 minutes: no promotion during the bench
    task_queue = f"bench-{uuid.uuid4()}"
    try:
        async with EvidenceStore.open(dbs.evidence_url) as store:
            async with build_worker(env.client, task_queue, store, registry):
                wid = f"rollout-{uuid.uuid4()}"
                handle = await env.client.start_workflow(
                    RolloutWorkflow.run,
                    RolloutInput(task="support-triage", history_limit=history_limit),
                    id=wid,
                    task_queue=task_queue,
                )
                latencies: list[float] = []
                deadline = time.monotonic() + seconds

                async def sender(n: int) -> int:
                    sent = 0
                    while time.monotonic() < deadline:
                        report = RunReport(run_id=f"s{n}-{sent}", stage="shadow", mode="shadow", checks_passed=True)
                        started = time.perf_counter()
                        await handle.signal(RolloutWorkflow.report, report)
                        latencies.append(time.perf_counter() - started)
                        sent += 1
                    return sent

                sent = sum(await asyncio.gather(*(sender(n) for n in range(senders))))
                waited = time.monotonic()
                status: RolloutStatus | None = None
                while time.monotonic() - waited < 60:
                    status = await query_current(handle, RolloutWorkflow.status, result_type=RolloutStatus)
                    if status.runs_in_stage >= sent:
                        break
                    await asyncio.sleep(0.2)
                caught_up = time.monotonic() - waited
                runs = await runs_of(env.client, wid)
                await handle.terminate("bench over")
            await registry.aclose()
    finally:
        await env.shutdown()
        dbs.server.cleanup()
    counted = status.runs_in_stage if status else 0
    lat = sorted(latencies)
    print(
        f"{senders} senders for {seconds:.0f} s, history limit {history_limit} events, one worker, dev server, 2 cores"
    )
    print(f"reports sent {sent} ({sent / seconds:.0f}/s), counted by the rollout {counted}, lost {sent - counted}")
    print(f"rollout runs (continue-as-new hand-overs + 1): {len(runs)}; refused closes (task failures): "
          f"{sum(r for _, r in runs)}; most in one run: {max((r for _, r in runs), default=0)}")  # fmt: skip
    print(
        f"signal round trip: p50 {statistics.median(lat) * 1000:.1f} ms, p95 {lat[int(len(lat) * 0.95)] * 1000:.1f} ms"
    )
    print(f"after the last report, the rollout had counted everything within {caught_up:.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--history-limit", type=int, default=400)
    a = parser.parse_args()
    asyncio.run(main(a.senders, a.seconds, a.history_limit))
