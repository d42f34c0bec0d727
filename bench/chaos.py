"""Chaos: live runs with approvals while workers die, Temporal restarts and Postgres goes away.

    python -m bench.chaos [--kills 50] [--temporal-restarts 3] [--pg-outage 30] [--in-flight 6] [--seed 7]

It builds a throwaway local stack (Temporal dev server with its state in a file, embedded
Postgres) in a temporary folder, seeds the support system of record, and starts two
``govflow worker`` processes on one task queue, as a scaled-out deployment runs. A driver
keeps live support-triage runs in flight and approves what waits (alice, and bob where a
rule needs two), through the same approve signal a reviewer sends. Meanwhile:

- one worker at a time is killed with SIGKILL at a random moment (a supervisor starts a new
  one, as systemd or Kubernetes would);
- the Temporal dev server is stopped (SIGTERM) and started again on its state file;
- Postgres (evidence and system of record, one server) is stopped for ``--pg-outage`` s.

Then it checks from outside, with nothing taken from the workers' word:

- runs completed and failed (a run still open after the drain counts as failed);
- duplicate writes: a trigger installed in the system of record counts every row change;
  a record changed more often than it has idempotency keys was written twice;
- writes without evidence: a committed write (its idempotency row) with no live
  ``touched_record`` event for that key;
- chains: every run's chain verifies and matches the chain head its workflow returned to
  Temporal.

Before trusting zeros it plants one duplicate write and one unrecorded write and checks that
both are counted: a detector that cannot see a failure would make this benchmark a defect.
Exit 0 only when every figure holds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError

from bench.chaos_checks import TRIGGER_SQL, check, detectors_see_planted_failures
from govflow.activities.evidence import EvidenceStore
from govflow.client import submit
from govflow.examples.support_triage import SOR_DATABASE, ensure_example_sor
from govflow.stack.local import LocalStack
from govflow.workers.settings import Settings, load_settings, with_database
from govflow.workers.temporal import connect
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.run_api import ExceptionDecision, Review, RunInput, RunResult

REVIEWERS = ("alice", "bob", "chen")
RPC = timedelta(seconds=5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log(t0: float, text: str) -> None:
    print(f"[{time.monotonic() - t0:6.1f}s] {text}", flush=True)


@dataclass
class Chaos:
    kills: int = 0
    kills_with_activity: int = 0
    temporal_restarts: int = 0
    pg_outage_s: float = 0.0
    worker_starts: int = 0
    submitted: list[str] = field(default_factory=list)
    votes: int = 0
    vote_errors: int = 0


class Workers:
    """Two ``govflow worker`` processes kept alive by a supervisor; ``kill`` SIGKILLs one."""

    def __init__(self, env: dict[str, str], count: int, logs: Path, chaos: Chaos) -> None:
        self.env, self.logs, self.chaos = env, logs, chaos
        self.procs: list[asyncio.subprocess.Process | None] = [None] * count
        self.started: list[float] = [0.0] * count

    async def _start(self, slot: int) -> None:
        log = (self.logs / f"worker-{slot}.log").open("ab")
        self.procs[slot] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "govflow", "worker", env=self.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        self.started[slot] = time.monotonic()
        self.chaos.worker_starts += 1

    async def supervise(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for slot, proc in enumerate(self.procs):
                if proc is None or proc.returncode is not None:
                    await self._start(slot)
            await asyncio.sleep(0.3)

    def kill_one(self, rng: random.Random) -> int | None:
        """SIGKILL one worker that has been up long enough to be working; its pid, or None."""
        ready = [
            p
            for slot, p in enumerate(self.procs)
            if p is not None and p.returncode is None and time.monotonic() - self.started[slot] > 2.5
        ]
        if not ready:
            return None
        victim = rng.choice(ready)
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.pid, signal.SIGKILL)
        return victim.pid

    async def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.returncode is None:
                proc.terminate()
        for proc in self.procs:
            if proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    await asyncio.wait_for(proc.wait(), 15)


async def _signal(handle: Any, name: Callable[..., Any], payload: Any) -> bool:
    try:
        await handle.signal(name, payload, rpc_timeout=RPC)
        return True
    except RPCError:
        return False


async def drive(client: Client, settings: Settings, ticket: str, n: int, chaos: Chaos) -> None:
    """One live run from start to end, approving what waits; survives every outage by retrying."""
    run_id = f"chaos-{n:04d}-{ticket}"
    inp = RunInput(task="support-triage", item_key=ticket, item={"ticket_id": ticket}, requester="priya", mode="live")
    while True:
        try:
            await submit(client, settings.task_queue, inp, run_id=run_id)
            break
        except WorkflowAlreadyStartedError:
            break
        except RPCError:
            await asyncio.sleep(0.5)
    chaos.submitted.append(run_id)
    handle = client.get_workflow_handle(run_id, result_type=RunResult)
    voted: set[tuple[str, str]] = set()
    while True:
        try:
            desc = await handle.describe(rpc_timeout=RPC)
            if desc.status != WorkflowExecutionStatus.RUNNING:
                return
            status = await handle.query(GovernedRunWorkflow.status, rpc_timeout=RPC)
        except Exception:  # Temporal restarting, no worker to answer the query, Postgres away: try again
            await asyncio.sleep(0.5)
            continue
        for action in status.pending:
            for gate in action.gates:
                if gate.status != "open":
                    continue
                need = gate.quorum - len(gate.approved_by)
                who = [r for r in REVIEWERS if r in gate.eligible and r not in gate.approved_by]
                for reviewer in who[:need]:
                    if (action.digest, reviewer) in voted:
                        continue
                    if await _signal(
                        handle, GovernedRunWorkflow.approve, Review(reviewer=reviewer, action_digest=action.digest)
                    ):
                        voted.add((action.digest, reviewer))
                        chaos.votes += 1
                    else:
                        chaos.vote_errors += 1
        if status.exception and ("exception", "alice") not in voted:
            decision = ExceptionDecision(reviewer="alice", decision="discard", reason="chaos bench")
            if await _signal(handle, GovernedRunWorkflow.resolve_exception, decision):
                voted.add(("exception", "alice"))
        await asyncio.sleep(0.4)


async def _activity_in_flight(pg_admin: str) -> bool:
    """Whether a write or an evidence append is open right now (a kill then lands mid-work)."""
    with contextlib.suppress(Exception):
        conn = await asyncpg.connect(pg_admin, timeout=2)
        try:
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE state <> 'idle' AND pid <> pg_backend_pid() "
                "AND datname IS NOT NULL"
            )
            return bool(busy)
        finally:
            await conn.close()
    return False


async def chaos_schedule(
    args: argparse.Namespace, stack: LocalStack, workers: Workers, pg_admin: str, chaos: Chaos, t0: float
) -> None:
    rng = random.Random(args.seed)
    start = time.monotonic()
    span = args.kills * (args.kill_min + args.kill_max) / 2
    restarts_at = [start + span * (i + 1) / (args.temporal_restarts + 2) for i in range(args.temporal_restarts)]
    outage_at = start + span * (args.temporal_restarts + 1) / (args.temporal_restarts + 2)
    outage_done = args.pg_outage <= 0

    async def outage() -> None:
        _log(t0, f"Postgres: stopping for {args.pg_outage:.0f} s")
        began = time.monotonic()
        await asyncio.to_thread(stack.stop_postgres)
        await asyncio.sleep(args.pg_outage)
        await asyncio.to_thread(stack.start_postgres)
        chaos.pg_outage_s = time.monotonic() - began
        _log(t0, f"Postgres: back after {chaos.pg_outage_s:.1f} s")

    outage_task: asyncio.Task[None] | None = None
    deadline = start + span * 2 + args.pg_outage + 60
    while (chaos.kills < args.kills or restarts_at or not outage_done) and time.monotonic() < deadline:
        now = time.monotonic()
        if restarts_at and now >= restarts_at[0]:
            restarts_at.pop(0)
            _log(t0, "Temporal: restarting the dev server (state on disk)")
            await asyncio.to_thread(stack.restart_temporal)
            chaos.temporal_restarts += 1
            _log(t0, f"Temporal: up again (restart {chaos.temporal_restarts})")
        if not outage_done and now >= outage_at:
            outage_done = True
            outage_task = asyncio.create_task(outage())
        if chaos.kills < args.kills:
            busy = await _activity_in_flight(pg_admin) if outage_task is None or outage_task.done() else False
            if workers.kill_one(rng) is not None:
                chaos.kills += 1
                chaos.kills_with_activity += busy
                if chaos.kills % 10 == 0:
                    _log(t0, f"workers: {chaos.kills} kills so far")
        await asyncio.sleep(rng.uniform(args.kill_min, args.kill_max))
    if outage_task is not None:
        await outage_task


async def main_async(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="govflow-chaos-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVFLOW_")}
    env.update(
        GOVFLOW_HOME=str(home),
        GOVFLOW_TEMPORAL_PORT=str(_free_port()),
        GOVFLOW_TEMPORAL_UI_PORT=str(_free_port()),
        GOVFLOW_TASK_QUEUE=f"chaos-{uuid.uuid4().hex[:8]}",
        GOVFLOW_METRICS_PORT="0",
        GOVFLOW_SDK_METRICS_PORT="0",
    )
    os.environ.update(env)
    settings = load_settings()
    stack = LocalStack(settings)
    info = await stack.up()
    env["GOVFLOW_DATABASE_URL"] = info.database_url  # workers reconnect by URL across the outage
    pg_admin = with_database(info.database_url, "postgres")
    sor_url = await ensure_example_sor(info.database_url, tickets=int(args.max_runs * 1.3) + 10)
    assert sor_url == with_database(info.database_url, SOR_DATABASE)
    conn = await asyncpg.connect(sor_url)
    try:
        await conn.execute(TRIGGER_SQL)
        tickets = [
            r["id"]
            for r in await conn.fetch(
                "SELECT t.id FROM ticket t JOIN contact c ON c.id = t.contact_id "
                "WHERE c.region IN ('eu', 'us') ORDER BY t.id"
            )
        ]
    finally:
        await conn.close()
    _log(t0, f"stack up in {home}: Temporal :{settings.temporal_port}, {len(tickets)} tickets in scope")

    chaos = Chaos()
    workers = Workers(env, 2, home, chaos)
    stop_supervisor = asyncio.Event()
    supervisor = asyncio.create_task(workers.supervise(stop_supervisor))
    quiet = Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
    )
    client = await connect(settings, quiet)  # the client's retry warnings during restarts are expected
    chaos_done = asyncio.Event()
    drivers: set[asyncio.Task[None]] = set()

    async def feed() -> None:
        n = 0
        while not chaos_done.is_set() and n < min(args.max_runs, len(tickets)):
            if len(drivers) < args.in_flight:
                task = asyncio.create_task(drive(client, settings, tickets[n], n, chaos))
                drivers.add(task)
                task.add_done_callback(drivers.discard)
                n += 1
            else:
                await asyncio.sleep(0.1)

    await asyncio.sleep(3)  # the workers' first start
    feeder = asyncio.create_task(feed())
    chaos_started = time.monotonic()
    await chaos_schedule(args, stack, workers, pg_admin, chaos, t0)
    chaos_done.set()
    chaos_s = time.monotonic() - chaos_started
    _log(t0, f"chaos over after {chaos_s:.0f} s; draining {len(drivers)} open runs")
    await feeder
    drain_started = time.monotonic()
    pending = set(drivers)
    if pending:
        _, still = await asyncio.wait(pending, timeout=args.drain)
        for task in still:
            task.cancel()
    drain_s = time.monotonic() - drain_started
    _log(t0, f"drained in {drain_s:.0f} s")

    async with EvidenceStore.open(info.database_url) as store:
        found = await check(client, store, sor_url, list(chaos.submitted))
        planted_dupes, planted_unrec = await detectors_see_planted_failures(sor_url, store)
    stop_supervisor.set()
    await supervisor
    await workers.stop()
    stack.down()

    elapsed = time.monotonic() - t0
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(found.outcomes.items()))
    rows = [
        (
            "worker SIGKILLs (a statement open in Postgres)",
            f"{chaos.kills} ({chaos.kills_with_activity})",
            chaos.kills >= 50,
        ),
        ("worker starts", str(chaos.worker_starts), True),
        ("Temporal dev-server restarts", str(chaos.temporal_restarts), chaos.temporal_restarts >= 3),
        ("Postgres outage", f"{chaos.pg_outage_s:.1f} s", chaos.pg_outage_s >= 30 or args.pg_outage < 30),
        ("live runs started", str(len(chaos.submitted)), len(chaos.submitted) > 0),
        ("runs completed", f"{found.completed} ({outcomes})", True),
        ("runs failed or stuck", str(len(found.failed)), not found.failed),
        ("approval votes sent (send errors retried)", f"{chaos.votes} ({chaos.vote_errors})", True),
        ("live writes committed", str(found.live_writes), found.live_writes > 0),
        ("duplicate writes (trigger)", str(len(found.duplicates)), not found.duplicates),
        ("writes without evidence", str(len(found.without_evidence)), not found.without_evidence),
        ("chains not verifying or not matching Temporal", str(len(found.chains_bad)), not found.chains_bad),
        (
            "detectors: planted duplicate / unrecorded found",
            f"{planted_dupes} / {planted_unrec}",
            planted_dupes == 1 and planted_unrec == 1,
        ),
        ("chaos phase / drain / whole bench", f"{chaos_s:.0f} s / {drain_s:.0f} s / {elapsed:.0f} s", elapsed < 600),
    ]
    print()
    print(f"{'figure':<50} {'value':>28}  ok")
    for name, value, ok in rows:
        print(f"{name:<50} {value:>28}  {'yes' if ok else 'NO'}")
    for title, items in (
        ("failed", found.failed),
        ("duplicates", found.duplicates),
        ("without evidence", found.without_evidence),
        ("chains", found.chains_bad),
    ):
        for item in items[:10]:
            print(f"  {title}: {item}")
    if all(ok for _, _, ok in rows):
        shutil.rmtree(home, ignore_errors=True)
        return 0
    print(f"logs kept in {home}")
    return 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50, help="worker SIGKILLs (default 50)")
    parser.add_argument("--kill-min", type=float, default=2.0, help="seconds between kills, at least")
    parser.add_argument("--kill-max", type=float, default=5.0, help="seconds between kills, at most")
    parser.add_argument("--temporal-restarts", type=int, default=3)
    parser.add_argument("--pg-outage", type=float, default=30.0, help="seconds Postgres stays down (0: none)")
    parser.add_argument("--in-flight", type=int, default=6, help="runs kept open at once")
    parser.add_argument("--max-runs", type=int, default=2000, help="a cap; runs are fed until the chaos ends")
    parser.add_argument("--drain", type=float, default=180.0, help="seconds to let open runs finish after the chaos")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
