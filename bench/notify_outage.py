"""A notification receiver down for a minute: does it delay approvals and writes? Is every message delivered?

    python -m bench.notify_outage [--runs 15] [--outage 60]

Support-triage runs (live, the example policy with a webhook target for the support leads) wait at
approval and are approved one at a time, in three phases: the receiver healthy, the receiver answering
500 for ``--outage`` seconds, healthy again. Measured per run: from just before the approval signal
(client clock) to the commit of the run's ``touched_record`` row (Postgres clock). Printed for each
phase: min / median / max in ms; then the delivery attempts that failed, and how long after the
receiver came back the last message was delivered. A failed delivery that delayed a write would show as
the outage phase's figures rising above the healthy ones.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import yaml
from temporalio.testing import WorkflowEnvironment

from bench.approval_latency import approve_and_time, park
from bench.harness import bench_databases
from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry
from govflow.examples.support_triage import EXAMPLES, example_registry
from govflow.policies import parse_policy
from govflow.workers.worker import build_worker
from govflow.workflows import search_attributes
from govflow.workflows.payloads import data_converter
from tests.local_servers import WebhookReceiver, serve

BIN = Path(sys.executable).parent
SECRET_ENV = "GOVFLOW_BENCH_HOOK_SECRET"
COUNT = "SELECT count(*) FROM evidence_events WHERE stream = 'notification' AND kind = $1"


def registry_for(sor_url: str, base: str) -> Registry:
    doc = yaml.safe_load((EXAMPLES / "support-triage.yaml").read_text())
    doc["notifications"] = [{"name": "leads", "url": f"{base}/leads", "secret": {"env": SECRET_ENV},
                             "roles": ["support-lead"]}]  # fmt: skip
    return example_registry(sor_url, policy=parse_policy(yaml.safe_dump(doc), source="bench"))


def spread(values: list[float]) -> str:
    return f"{min(values):.0f} / {statistics.median(values):.0f} / {max(values):.0f}"


async def main_async(args: argparse.Namespace) -> None:
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    os.environ[SECRET_ENV] = "bench-secret"
    dbs = await bench_databases(args.runs * 3 + 20)
    down_until = [0.0]
    hook = WebhookReceiver(b"bench-secret", lambda *_: True, failing=lambda: time.monotonic() < down_until[0])
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"), data_converter=data_converter,
        search_attributes=search_attributes.ALL, dev_server_log_level="error",
    )  # fmt: skip
    task_queue = f"bench-{uuid.uuid4()}"
    phases: dict[str, list[float]] = {}
    try:
        with serve(hook) as base:
            registry = registry_for(dbs.sor_url, base)
            async with EvidenceStore.open(dbs.evidence_url) as store, build_worker(env.client, task_queue, store,
                                                                                    registry):  # fmt: skip
                tickets = list(dbs.tickets)
                for run_id, digest in await park(env, task_queue, tickets[:5]):  # warm up
                    while not await store.run_notifications(run_id):  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                    await approve_and_time(env, store, run_id, digest)
                cursor = 5

                async def phase(name: str, spacing: float) -> None:
                    nonlocal cursor
                    times = []
                    for _ in range(args.runs):
                        parked = await park(env, task_queue, tickets[cursor : cursor + 1])
                        cursor += 1
                        for run_id, digest in parked:
                            # Approved only once its wait is announced: its message is in flight (or failing).
                            while not await store.run_notifications(run_id):  # noqa: ASYNC110
                                await asyncio.sleep(0.05)
                            times.append(await approve_and_time(env, store, run_id, digest))
                        await asyncio.sleep(spacing)
                    phases[name] = times

                await phase("receiver healthy", 0.0)
                down_until[0] = time.monotonic() + args.outage
                await phase(f"receiver down ({args.outage:.0f} s)", args.outage / args.runs)
                await asyncio.sleep(max(0.0, down_until[0] - time.monotonic()))
                back = time.monotonic()
                await phase("receiver healthy again", 0.0)
                await asyncio.sleep(2.0)  # the last runs' "decided" messages: their first attempts record them
                expected = await store.pool.fetchval(COUNT, "notification_requested")
                while len(hook.messages()) < expected:  # noqa: ASYNC110 - polling what a thread receives
                    await asyncio.sleep(0.2)
                caught_up = time.monotonic() - back
                failed = await store.pool.fetchval(COUNT, "notification_failed")
                abandoned = await store.pool.fetchval(COUNT, "notification_abandoned")
            await registry.aclose()
    finally:
        await env.shutdown()
        dbs.server.cleanup()
    print("approval signal -> write recorded, ms: min / median / max")
    for name, times in phases.items():
        print(f"  {name:<28} {len(times):>3} runs  {spread(times)}")
    print(f"messages: {expected} announced, {len(hook.messages())} delivered, {hook.refused} refused by the receiver "
          f"({failed} failed attempts recorded), {abandoned} abandoned")  # fmt: skip
    print(f"the last message was delivered {caught_up:.1f} s after the receiver came back")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15, help="runs per phase")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds the receiver answers 500")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
