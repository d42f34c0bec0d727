"""How long `govflow evidence verify ROLLOUT --rollout` takes for a rollout with many runs.

    python -m bench.verify_rollout [--runs 10000] [--events 8] [--rounds 3]

Builds a rollout stream and ``--runs`` runs that name it (each with ``--events`` chained events, a
third with projections) in an embedded Postgres, then times the CLI's own check (``_verify_runs``
plus the rollout's chain) ``--rounds`` times: min / median / max seconds. One run is then tampered
with, and the check must name it, so a check that verified nothing could not pass.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncpg

from bench.evidence_append import T0, batches
from bench.harness import evidence_database
from govflow.activities.evidence import EvidenceStore, RunRecord
from govflow.export.verify import _verify_runs


async def main_async(args: argparse.Namespace) -> None:
    _server, url = await evidence_database()  # kept: the server lives as long as this name
    rollout = "rollout-bench-v1"
    async with EvidenceStore.open(url) as store:
        started = time.perf_counter()
        await store.append_event("rollout", rollout, 1, "rollout_started", T0, {"stage": "shadow"})
        for i in range(args.runs):
            run_id = f"run-{i:06d}"
            record = RunRecord(run_id=run_id, task="bench", task_version="1", policy_digest="p" * 64,
                               item_key=str(i), requester="bench", stage="shadow", mode="shadow", started_at=T0,
                               rollout_id=rollout)  # fmt: skip
            await store.start_run(record)
            for batch in batches(run_id, args.events - 1, args.events):
                await store.append_many(batch)
        print(f"built {args.runs:,} runs x {args.events} events in {time.perf_counter() - started:.0f} s")
        took = []
        for _ in range(args.rounds):
            t = time.perf_counter()
            report = await store.verify("rollout", rollout)
            runs = await _verify_runs(store, rollout)
            took.append(time.perf_counter() - t)
            assert report.ok
            assert len(runs) == args.runs
            assert all(p is None for _, p in runs)
        print(f"verify --rollout of {args.runs:,} runs: {min(took):.1f} / {statistics.median(took):.1f} / "
              f"{max(took):.1f} s (min / median / max of {args.rounds}; target < 10 s)")  # fmt: skip
        conn = await asyncpg.connect(url)
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("UPDATE evidence_events SET kind = 'forged' WHERE stream_id = 'run-000042' AND seq = 2")
        await conn.close()
        bad = [r for r, p in await _verify_runs(store, rollout) if p is not None]
        assert bad == ["run-000042"], bad
        print("a tampered run is named: run-000042")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.verify_rollout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
