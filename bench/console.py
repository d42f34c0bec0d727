"""The reviewer console under load: the inbox with 10,000 actions waiting, and 50 reviewers acting at once.

    python -m bench.console [--waiting 10000] [--reviewers 50] [--acts 4] [--samples 200] [--workers 1]

1. The inbox. ``--waiting`` actions wait for approval by ``alice`` (live runs, a ``policy_decision`` each,
   no ``run_finished``), written straight into the evidence projections the inbox reads (it reads nothing
   else). The console (`govflow console`, a process of its own) serves alice's inbox; its first page is
   fetched ``--samples`` times, one after the other (closed loop, one in flight), after 20 to warm up.
2. Acts. ``--reviewers`` reviewers (support leads in a copy of the support-triage policy, each with a
   console session) act at once, each on runs of its own parked at approval on the dev server with
   ``--workers`` workers (`govflow worker`, processes of their own): each posts an approval and waits for
   the page with the run's verdict before the next (closed loop, ``--reviewers`` in flight), ``--acts``
   each. A warm-up round first (one act each, not counted); then two rounds alternate the same acts
   through the client API alone (the review Update, no console) with acts through the console, each
   round's publishes drained before the next. Then one reviewer alone (closed loop, one in flight) for
   the act's latency with nothing else in flight. Every verdict must be "accepted".

Printed: min / median / p95 / max in ms, per part (targets p95 < 300 ms for the inbox and < 500 ms for an
act), and the CPU each process group used while the console's acts ran (a share of one core), which
shows what bounds the acts.
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
from typing import Any

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


def dev_server_pids() -> list[int]:
    """The Temporal dev server's processes (the CLI's ``server start-dev``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"start-dev" in cmdline:
                found.append(int(entry.name))
    return found


def _postgres_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each group of processes (postgres: every backend now)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, group in pids.items():
        total = 0.0
        for pid in group or (_postgres_pids() if name == "postgres" else []):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        out[name] = total
    return out


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
    workers = [await _process(environ, "worker", "--app", "bench.console:leads_app") for _ in range(args.workers)]
    pids = {"console": [console.pid], "worker(s)": [w.pid for w in workers], "temporal dev server": dev_server_pids(),
            "postgres": [], "this bench (client)": [os.getpid()]}  # fmt: skip
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
            leads = [f"lead{i:02d}" for i in range(args.reviewers)]
            sessions = {lead: await session_for(store, lead) for lead in leads}
            csrfs = {lead: await store.pool.fetchval("SELECT csrf FROM console_sessions WHERE reviewer = $1", lead)
                     for lead in leads}  # fmt: skip

            async def console_act(lead: str, run_id: str, digest: str) -> float:
                started = time.perf_counter()
                answer = await http.post(
                    f"/runs/{run_id}/actions/reply", cookies={"govflow_session": sessions[lead]},
                    headers={"Origin": origin},
                    data={"csrf": csrfs[lead], "verdict": "approve", "action_digest": digest, "reason": "bench"},
                )  # fmt: skip
                took = (time.perf_counter() - started) * 1000
                assert "Accepted by the run" in answer.text, answer.text[:800]
                return took

            async def update_act(lead: str, run_id: str, digest: str) -> float:
                started = time.perf_counter()
                vote = ReviewRequest(verdict="approve", reviewer=lead, action_digest=digest, action_id="reply",
                                     reason="bench")  # fmt: skip
                outcome = await review(env.client, run_id, vote)
                assert outcome.accepted, outcome
                return (time.perf_counter() - started) * 1000

            async def closed_loop(act: Any, runs: list[tuple[str, str]], in_flight: int, into: list[float]) -> None:
                """``in_flight`` reviewers at once, each acting on its share of ``runs`` one after the other."""
                share = len(runs) // in_flight

                async def one(k: int) -> None:
                    for run_id, digest in runs[k * share : (k + 1) * share]:
                        into.append(await act(leads[k], run_id, digest))

                await asyncio.gather(*(one(k) for k in range(in_flight)))
                for run_id, _ in runs:  # their publishes drain before the next round starts
                    await env.client.get_workflow_handle(run_id).result()

            # Warm-up (not counted): one act per reviewer through the console (its Temporal client connects).
            await closed_loop(console_act, await park(env, task_queue, tickets, args.reviewers), args.reviewers, [])
            # Alternated rounds: the review Update alone (the client API, no console), then through the console.
            act_ms: list[float] = []
            direct_ms: list[float] = []
            busy: dict[str, float] = {}
            all_s = 0.0
            rounds = 2
            per_round = args.reviewers * args.acts // rounds
            for _ in range(rounds):
                await closed_loop(update_act, await park(env, task_queue, tickets, per_round), args.reviewers,
                                  direct_ms)  # fmt: skip
                runs = await park(env, task_queue, tickets, per_round)
                before, started_all = cpu_seconds(pids), time.perf_counter()
                await closed_loop(console_act, runs, args.reviewers, act_ms)
                all_s += time.perf_counter() - started_all
                for name, used in cpu_seconds(pids).items():
                    busy[name] = busy.get(name, 0.0) + used - before.get(name, 0.0)
            # One reviewer at a time: the act's latency with nothing else in flight.
            alone_ms: list[float] = []
            await closed_loop(console_act, await park(env, task_queue, tickets, 20), 1, alone_ms)
    finally:
        for proc in (console, *workers):
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
    print(f"  the same acts through the client API (the Update alone)       {spread(direct_ms)}")
    print(f"  act -> verdict shown, one reviewer at a time, {len(alone_ms)} acts          {spread(alone_ms)}")
    print(f"  CPU while the console's acts ran ({all_s:.1f} s; {os.cpu_count()} cores), share of one core:")
    for name, used in sorted(busy.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<22} {used / all_s:6.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--reviewers", type=int, default=50)
    parser.add_argument("--acts", type=int, default=4)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (replicas of `govflow worker`)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
