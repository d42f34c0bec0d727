"""The evidence database's connection pool: connections that read and write JSON as Python values, with
no per-checkout reset (the store keeps no session state)."""

from __future__ import annotations

import json

import asyncpg

from govflow.activities.evidence.failures import EvidenceError


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text")


async def _no_reset(_: asyncpg.Connection) -> None:
    """The store holds no session state across checkouts (no advisory locks, LISTEN, SET or open
    cursors; every transaction is closed by its context manager), so the pool's reset query per
    checkout is a round trip with nothing to do."""


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections read and write JSON as Python values."""
    try:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_no_reset
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise EvidenceError(f"cannot connect to the evidence database at {dsn}: {exc}") from exc
    assert pool is not None
    return pool
