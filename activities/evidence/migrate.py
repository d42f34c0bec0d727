"""Forward-only migrations: one transaction each, under an advisory lock, checksummed."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from govflow.activities.evidence.failures import MigrationError
from govflow.activities.evidence.sql import Migration, migrations

# pg_advisory_lock key: any constant that other applications are unlikely to use.
_LOCK_KEY = 0x60F10E

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS govflow_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class MigrationReport:
    applied: list[str]
    already: list[str]


async def migrate(conn: asyncpg.Connection, wanted: list[Migration] | None = None) -> MigrationReport:
    """Apply every migration not yet applied; refuse if an applied one was edited.

    Safe to run from several processes at once: they queue on an advisory lock.
    """
    wanted = migrations() if wanted is None else wanted
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(_CREATE_LEDGER)
        rows = await conn.fetch("SELECT version, name, checksum FROM govflow_migrations")
        recorded = {r["version"]: (r["name"], r["checksum"]) for r in rows}
        known = {m.version for m in wanted}
        for version, (name, _) in sorted(recorded.items()):
            if version not in known:
                raise MigrationError(
                    f"migration {version:04d}_{name}.sql is recorded as applied but this govflow "
                    "does not ship it: the database is newer than the code; upgrade govflow"
                )
        applied: list[str] = []
        already: list[str] = []
        for m in wanted:
            if m.version in recorded:
                name, checksum = recorded[m.version]
                if checksum != m.checksum:
                    raise MigrationError(
                        f"migration {m.filename} was edited after it was applied "
                        f"(recorded checksum {checksum[:12]}, file now {m.checksum[:12]}); "
                        "restore the original file and put the change in a new migration"
                    )
                already.append(m.filename)
                continue
            async with conn.transaction():
                try:
                    await conn.execute(m.sql)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"migration {m.filename} failed: {exc}") from exc
                await conn.execute(
                    "INSERT INTO govflow_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
            applied.append(m.filename)
        return MigrationReport(applied=applied, already=already)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
