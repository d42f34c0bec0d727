"""The reviewer console under load: the inbox with 10,000 actions waiting, and 50 reviewers acting at once.

    python -m bench.console [--waiting 10000] [--reviewers 50] [--acts 4] [--samples 200]

1. The inbox. ``--waiting`` actions wait for approval by ``alice`` (live runs, a ``policy_decision`` each,
   no ``run_finished``), written straight into the evidence projections the inbox reads (it reads nothing
   else). The console (`govflow console`, a process of its own) serves alice's inbox; its first page is
   fetched ``--samples`` times, one after the other (closed loop, one in flight), after 20 to warm up.
2. Acts. ``--reviewers`` reviewers (support leads in a copy of the support-triage policy, each with a
   console session) act at once, each on runs of its own parked at approval on the dev server with one
   worker (`govflow worker`, a process of its own): each posts an approval and waits for the page with
   the run's verdict before the next (closed loop, ``--reviewers`` in flight), ``--acts`` each. Every
   verdict must be "accepted".

Printed: min / median / p95 / max in ms, per part; targets p95 < 300 ms (inbox) and < 500 ms (act).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import yaml
from temporalio.testing import WorkflowEnvironment

from bench.approval_latency import park, spread
from bench.harness import bench_databases
from govflow import Registry, SharedPool, parse_policy
from govflow.activities.evidence import EvidenceStore
from govflow.client import review
from govflow.console.accounts import Accounts
from govflow.examples import support_triage
from govflow.workflows import search_attributes
from govflow.workflows.payloads import data_converter
from govflow.workflows.run_api import ReviewRequest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def waiting_actions(evidence_url: str, n: int) -> None:
    """``n`` live runs, each with one action waiting for alice, bob or chen: rows of the projections."""
    import asyncpg

    now = datetime.now(UTC)
    gate = {"gates": [{"rule": "reply-to-ticket", "action_id": "reply", "action_digest": "d" * 64,
                       "requester": "priya", "eligible": ["alice", "bob", "chen"], "quorum": 1,
                       "separation_of_duties": True, "on_expiry": "reject", "signature_required": False,
                       "expires_at": (now + timedelta(hours=8)).isoformat()}]}  # fmt: skip
    runs = [(f"waiting-{i:05d}", "support-triage", "1", "p" * 64, f"T{i:05d}", "priya", "manual", "live", now)
            for i in range(n)]  # fmt: skip
    conn = await asyncpg.connect(evidence_url)
    try:
        await conn.copy_records_to_table(
            "runs",
            records=runs,
            columns=[
                "run_id",
                "task",
                "task_version",
                "policy_digest",
                "item_key",
                "requester",
                "stage",
                "mode",
                "started_at",
            ],
        )
        await conn.copy_records_to_table("policy_decisions", records=[
            (r[0], 2, "reply", "d" * 64, "p" * 64, "needs_approval", "reply-to-ticket", "needs a support lead",
             json.dumps(gate)) for r in runs
        ], columns=["run_id", "seq", "action_id", "action_digest", "policy_digest", "decision", "rule", "reason",
                    "gate"])  # fmt: skip
    finally:
        await conn.close()


async def session_for(store: EvidenceStore, reviewer: str) -> str:
    """A console session for ``reviewer`` (its passkey row made directly: the bench measures the console)."""
    credential = f"bench-{reviewer}-{uuid.uuid4().hex[:8]}"
    await store.pool.execute(
        "INSERT INTO console_credentials (credential_id, reviewer, public_key, enrolled_at) VALUES ($1, $2, '', now())",
        credential, reviewer,
    )  # fmt: skip
    token, _ = await Accounts(store).start_session(reviewer, credential, timedelta(hours=1))
    return token


def fifty_leads_policy(n: int) -> object:
    doc = yaml.safe_load((support_triage.EXAMPLES / "support-triage.yaml").read_text())
    doc["reviewers"]["people"] += [{"id": f"lead{i:02d}", "name": f"Lead {i}", "roles": ["support-lead"]}
                                   for i in range(n)]  # fmt: skip
    return parse_policy(yaml.safe_dump(doc, sort_keys=False), source="support-triage.yaml (bench leads)")


def leads_app(settings: object, database_url: str) -> Registry:
    """The worker's app in this bench (`govflow worker --app bench.console:leads_app`): support triage under
    the policy with ``BENCH_LEADS`` more support leads, over ``BENCH_SOR_URL``."""
    import os

    registry = Registry()
    registry.register(support_triage.SupportTriage(), policy=fifty_leads_policy(int(os.environ["BENCH_LEADS"])),  # type: ignore[arg-type]
                      connectors=support_triage.connectors(SharedPool(os.environ["BENCH_SOR_URL"])),
                      model=support_triage.baseline_model())  # fmt: skip
    return registry


async def _process(environ: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "govflow", *args, env=environ,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def main_async(args: argparse.Namespace) -> None:
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    dbs = await bench_databases(4 * args.reviewers * args.acts + 80)  # about half wait for one vote only
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"), data_converter=data_converter,
        search_attributes=search_attributes.ALL, dev_server_log_level="error",
    )  # fmt: skip
    port = free_port()
    origin = f"http://localhost:{port}"
    task_queue = f"bench-{uuid.uuid4()}"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GOVFLOW_")}
    environ.update(GOVFLOW_DATABASE_URL=dbs.evidence_url, GOVFLOW_CONSOLE_PORT=str(port),
                   GOVFLOW_TASK_QUEUE=task_queue,
                   GOVFLOW_TEMPORAL_ADDRESS=env.client.service_client.config.target_host, GOVFLOW_METRICS_PORT="0",
                   GOVFLOW_SDK_METRICS_PORT="0", BENCH_LEADS=str(args.reviewers),
                   BENCH_SOR_URL=dbs.sor_url)  # fmt: skip
    # The console and the worker in processes of their own, as they run in production.
    console = await _process(environ, "console")
    worker = await _process(environ, "worker", "--app", "bench.console:leads_app")
    try:
        async with httpx.AsyncClient(base_url=origin) as probe:
            for _ in range(300):
                try:
                    if (await probe.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        await waiting_actions(dbs.evidence_url, args.waiting)
        async with EvidenceStore.open(dbs.evidence_url) as store, httpx.AsyncClient(base_url=origin) as http:
            alice = await session_for(store, "alice")
            inbox_ms: list[float] = []
            for i in range(20 + args.samples):
                started = time.perf_counter()
                answer = await http.get("/", cookies={"govflow_session": alice})
                took = (time.perf_counter() - started) * 1000
                assert answer.status_code == 200, answer.text[:200]
                assert f"{args.waiting} action(s) and exception(s) wait for alice" in answer.text, answer.text[:500]
                if i >= 20:
                    inbox_ms.append(took)

            tickets = list(dbs.tickets)
            parked = await park(env, task_queue, tickets, args.reviewers * args.acts)
            leads = [f"lead{i:02d}" for i in range(args.reviewers)]
            sessions = {lead: await session_for(store, lead) for lead in leads}
            act_ms: list[float] = []

            async def reviewer(k: int) -> None:
                lead = leads[k]
                csrf = await store.pool.fetchval("SELECT csrf FROM console_sessions WHERE reviewer = $1", lead)
                for run_id, digest in parked[k * args.acts : (k + 1) * args.acts]:
                    started = time.perf_counter()
                    answer = await http.post(
                        f"/runs/{run_id}/actions/reply", cookies={"govflow_session": sessions[lead]},
                        headers={"Origin": origin},
                        data={"csrf": csrf, "verdict": "approve", "action_digest": digest, "reason": "bench"},
                    )  # fmt: skip
                    act_ms.append((time.perf_counter() - started) * 1000)
                    assert "Accepted by the run" in answer.text, answer.text[:800]

            # The same acts through the client API (the review Update, no console), on runs of their own:
            # what the run itself takes to answer, under the same load.
            direct = await park(env, task_queue, tickets, args.reviewers * args.acts)
            direct_ms: list[float] = []

            async def direct_reviewer(k: int) -> None:
                for run_id, digest in direct[k * args.acts : (k + 1) * args.acts]:
                    started = time.perf_counter()
                    vote = ReviewRequest(verdict="approve", reviewer=leads[k], action_digest=digest, action_id="reply",
                                         reason="bench")  # fmt: skip
                    outcome = await review(env.client, run_id, vote)
                    direct_ms.append((time.perf_counter() - started) * 1000)
                    assert outcome.accepted, outcome

            await asyncio.gather(*(direct_reviewer(k) for k in range(args.reviewers)))
            for run_id, _ in direct:  # their publishes drain before the console's acts start
                await env.client.get_workflow_handle(run_id).result()
            started_all = time.perf_counter()
            await asyncio.gather(*(reviewer(k) for k in range(args.reviewers)))
            all_s = time.perf_counter() - started_all
    finally:
        for proc in (console, worker):
            proc.terminate()
            await proc.wait()
        await env.shutdown()
        dbs.server.cleanup()
    print("reviewer console, ms: min / median / p95 / max")
    print(f"  inbox first page, {args.waiting} waiting, {args.samples} requests one at a time   {spread(inbox_ms)}"
          "   (target p95 < 300)")  # fmt: skip
    print(
        f"  act -> verdict shown, {args.reviewers} reviewers at once, {len(act_ms)} acts          {spread(act_ms)}"
        f"   (target p95 < 500; {all_s:.1f} s in all)"
    )
    print(f"  the same acts through the client API (the Update alone)       {spread(direct_ms)}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--reviewers", type=int, default=50)
    parser.add_argument("--acts", type=int, default=4)
    parser.add_argument("--samples", type=int, default=200)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
