"""10,000 runs parked at approval on one worker: its memory, and the time to publish them all.

A Temporal dev server and an embedded Postgres; one `govflow worker` process (the real command)
serving support-triage. The bench starts ``--runs`` live runs; each proposes a reply that needs one
support lead's approval, so every run parks. Once all wait, it reads the worker's resident memory
(now, and its peak), then approves every run with the `approve` signal a reviewer sends (50 at a
time) and times until every run has published. Targets: the worker under 512 MiB, all published
within 10 minutes.

    .venv/bin/python -m bench.parked [--runs 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from bench.harness import bench_databases
from govflow.activities.evidence import EvidenceStore
from govflow.client import submit
from govflow.examples.support_triage import EXAMPLES, example_registry
from govflow.policies import Policy, parse_policy
from govflow.workflows import search_attributes
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.payloads import data_converter
from govflow.workflows.run_api import Review, RunInput

BIN = Path(sys.executable).parent
MIB = 1024 * 1024


def reply_only_policy() -> Policy:
    """support-triage whose proposals wait for exactly one approval: churn flags are left to the model's
    reply (the bench approves one gate per run)."""
    text = (EXAMPLES / "support-triage.yaml").read_text()
    return parse_policy(text.replace("when: {status: churn-risk}", "when: {status: never}"), source="parked")


def build(settings: object, database_url: str) -> object:
    """The worker's app (``--app bench.parked:build``): support-triage over the bench's SOR_URL."""
    return example_registry(os.environ["SOR_URL"], policy=reply_only_policy())


def rss(pid: int) -> tuple[float, float]:
    """(resident now, peak) of a process, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def count(store: EvidenceStore, sql: str) -> int:
    return int(await store.pool.fetchval(sql))


async def main_async(args: argparse.Namespace) -> int:
    dbs = await bench_databases(args.runs)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"), search_attributes=search_attributes.ALL,
        dev_server_log_level="error", data_converter=data_converter,
    )  # fmt: skip
    task_queue = f"parked-{uuid.uuid4().hex[:8]}"
    environ = {
        **os.environ, "SOR_URL": dbs.sor_url, "GOVFLOW_DATABASE_URL": dbs.evidence_url,
        "GOVFLOW_TEMPORAL_ADDRESS": env.client.service_client.config.target_host, "GOVFLOW_TASK_QUEUE": task_queue,
        "GOVFLOW_METRICS_PORT": "0", "GOVFLOW_SDK_METRICS_PORT": "0",
    }  # fmt: skip
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "govflow", "worker", "--app", "bench.parked:build", env=environ
    )
    try:
        async with EvidenceStore.open(dbs.evidence_url) as store:
            started = time.perf_counter()
            gate = asyncio.Semaphore(50)

            async def start(ticket: str) -> str:
                async with gate:
                    inp = RunInput(task="support-triage", item_key=ticket, item={"ticket_id": ticket},
                                   requester="priya", mode="live")  # fmt: skip
                    return await submit(env.client, task_queue, inp, run_id=f"parked-{ticket}")

            run_ids = await asyncio.gather(*(start(t) for t in dbs.tickets[: args.runs]))
            waiting_sql = "SELECT count(*) FROM policy_decisions WHERE decision = 'needs_approval'"
            while (waiting := await count(store, waiting_sql)) < len(run_ids):
                if worker.returncode is not None:
                    raise SystemExit(f"the worker exited ({worker.returncode})")
                await asyncio.sleep(2)
            parked_in = time.perf_counter() - started
            await asyncio.sleep(5)  # settled: every run is at its wait, nothing in flight
            now, peak = rss(worker.pid)
            print(f"{waiting:,} runs parked at approval in {parked_in:.0f} s; worker resident {now:.0f} MiB "
                  f"(peak {peak:.0f} MiB)")  # fmt: skip

            digests = {
                r["run_id"]: r["action_digest"]
                for r in await store.pool.fetch(
                    "SELECT run_id, action_digest FROM policy_decisions WHERE decision = 'needs_approval'"
                )
            }
            started = time.perf_counter()

            async def approve(run_id: str) -> None:
                async with gate:
                    await env.client.get_workflow_handle(run_id).signal(
                        GovernedRunWorkflow.approve, Review(reviewer="alice", action_digest=digests[run_id])
                    )

            await asyncio.gather(*(approve(r) for r in run_ids))
            signalled = time.perf_counter() - started
            finished_sql = "SELECT count(*) FROM run_events WHERE kind = 'run_finished'"
            while (done := await count(store, finished_sql)) < len(run_ids):
                if worker.returncode is not None:
                    raise SystemExit(f"the worker exited ({worker.returncode})")
                if time.perf_counter() - started > 2 * 600:
                    print(f"only {done:,} of {len(run_ids):,} runs finished in twice the target: NOT met")
                    return 1
                await asyncio.sleep(2)
            took = time.perf_counter() - started
            written = await count(store, "SELECT count(DISTINCT run_id) FROM touched_records WHERE mode = 'live'")
            now, peak = rss(worker.pid)
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), 30)
        await env.shutdown()
    ok_mem, ok_time = peak < 512, took < 600
    print(f"approved {len(run_ids):,} runs in {signalled:.0f} s; all {done:,} finished ({written:,} wrote live) "
          f"in {took:.0f} s (target < 600 s: {'met' if ok_time else 'NOT met'})")  # fmt: skip
    print(
        f"worker peak resident {peak:.0f} MiB (target < 512 MiB: {'met' if ok_mem else 'NOT met'}); now {now:.0f} MiB"
    )
    return 0 if ok_mem and ok_time and written == len(run_ids) else 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.parked", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    raise SystemExit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
