from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest

from govflow.activities.evidence import MigrationError, migrate
from govflow.activities.evidence.sql import Migration, migrations

TABLES = {
    "runs",
    "evidence_events",
    "chain_heads",
    "policy_decisions",
    "approval_attempts",
    "touched_records",
    "quality_scores",
    "govflow_migrations",
}


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def test_migrations_apply_to_an_empty_database_then_reapply_as_noop(
    empty_database_url: str,
) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await _tables(conn) == set()
        first = await migrate(conn)
        assert first.applied == [m.filename for m in migrations()]
        assert await _tables(conn) >= TABLES
        ledger = await conn.fetch("SELECT version, checksum FROM govflow_migrations")
        assert {r["version"]: r["checksum"] for r in ledger} == {m.version: m.checksum for m in migrations()}

        second = await migrate(conn)
        assert second.applied == []
        assert second.already == first.applied
        assert await conn.fetchval("SELECT count(*) FROM govflow_migrations") == len(migrations())
    finally:
        await conn.close()


async def test_an_edited_applied_migration_is_refused(database_url: str) -> None:
    shipped = migrations()
    edited = [dataclasses.replace(shipped[0], sql=shipped[0].sql + "\n-- sneaky edit\n")]
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(MigrationError, match=r"0001_evidence_v1\.sql was edited after it was applied"):
            await migrate(conn, edited + shipped[1:])
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_behind(database_url: str) -> None:
    broken = Migration(9000, "broken", "CREATE TABLE half_done (id int);\nSELECT no_such_column FROM runs;")
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(MigrationError, match=r"9000_broken\.sql failed"):
            await migrate(conn, [*migrations(), broken])
        assert "half_done" not in await _tables(conn)
        assert await conn.fetchval("SELECT count(*) FROM govflow_migrations WHERE version = 9000") == 0
    finally:
        await conn.close()


async def test_a_database_newer_than_the_code_is_refused(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO govflow_migrations (version, name, checksum) VALUES (9999, 'future', 'x')")
        with pytest.raises(MigrationError, match=r"9999_future\.sql .* upgrade govflow"):
            await migrate(conn)
    finally:
        await conn.close()


async def test_concurrent_migrators_apply_each_migration_once(empty_database_url: str) -> None:
    conns = [await asyncpg.connect(empty_database_url) for _ in range(4)]
    try:
        reports = await asyncio.gather(*(migrate(c) for c in conns))
        applied = [name for r in reports for name in r.applied]
        assert sorted(applied) == [m.filename for m in migrations()]
    finally:
        for c in conns:
            await c.close()
