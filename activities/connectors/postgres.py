"""A Postgres table as a system of record.

Writes are idempotent by key: the key, the before image and the after image
are stored in ``govflow_idempotency`` in the same transaction as the change,
so a retried write (a worker killed after it committed) returns the stored
images and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic import BaseModel, ConfigDict

from govflow.activities.connectors.connector import (
    ConnectorError,
    Record,
    RecordCheck,
    Scalar,
    WriteRequest,
    WriteResult,
)
from govflow.activities.pgerrors import is_transient

IDEMPOTENCY_DDL = """
CREATE TABLE IF NOT EXISTS govflow_idempotency (
    key         text PRIMARY KEY,
    system      text NOT NULL,
    resource    text NOT NULL,
    record_id   text NOT NULL,
    operation   text NOT NULL,
    before      jsonb,
    after       jsonb,
    written_at  timestamptz NOT NULL DEFAULT now()
)
"""


class SharedPool:
    """A pool made on first use, so connectors can be declared before the event loop runs."""

    def __init__(self, dsn: str, *, max_size: int = 10) -> None:
        self.dsn = dsn
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._lock: asyncio.Lock | None = None

    async def get(self) -> asyncpg.Pool:
        """The pool, opened on first use (one per process, shared by every connector on it)."""
        if self._pool is None:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self._pool is None:
                    try:
                        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self._max_size)
                    except (OSError, asyncpg.PostgresError) as exc:
                        raise ConnectorError(f"cannot connect to {self.dsn}: {exc}", retryable=True) from exc
        assert self._pool is not None
        return self._pool

    async def close(self) -> None:
        """Close the pool, if it was opened."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class Table(BaseModel):
    """How a resource maps to a table: the table's name and its key column."""

    model_config = ConfigDict(frozen=True)

    name: str
    key: str = "id"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _jsonable(row: asyncpg.Record | None) -> Record | None:
    if row is None:
        return None
    # Through JSON so dates, decimals and the like become plain JSON values.
    return dict(json.loads(json.dumps(dict(row), default=str)))


class PostgresTableConnector:
    """``resource`` -> table. Reads and writes whole rows by key."""

    def __init__(self, system: str, pool: SharedPool, tables: dict[str, Table]) -> None:
        self.system = system
        self._shared = pool
        self._tables = tables
        self._columns: dict[str, dict[str, str]] = {}

    async def aclose(self) -> None:
        """Close the connector's shared pool."""
        await self._shared.close()

    def _table(self, resource: str) -> Table:
        table = self._tables.get(resource)
        if table is None:
            raise ConnectorError(f"{self.system}: no table is configured for resource {resource!r}", retryable=False)
        return table

    async def _known_columns(self, conn: PoolConnectionProxy[asyncpg.Record], table: Table) -> dict[str, str]:
        """The table's columns and their types."""
        if table.name not in self._columns:
            rows = await conn.fetch(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1", table.name
            )
            if not rows:
                raise ConnectorError(f"{self.system}: table {table.name!r} does not exist", retryable=False)
            self._columns[table.name] = {r["column_name"]: r["data_type"] for r in rows}
        return self._columns[table.name]

    async def columns(self, resource: str) -> set[str]:
        """The columns of ``resource``'s table (``policy check --app`` holds a grant's fields against them)."""
        table = self._table(resource)
        pool = await self._shared.get()
        async with pool.acquire() as conn:
            return set(await self._known_columns(conn, table))

    async def find(self, resource: str, where: dict[str, Scalar], limit: int) -> dict[str, Record]:
        """Rows whose columns equal ``where`` (each value compared as the column's type, so an index on
        the column serves it), at most ``limit``, by key."""
        table = self._table(resource)
        try:
            pool = await self._shared.get()
            async with pool.acquire() as conn:
                columns = await self._known_columns(conn, table)
                unknown = sorted(set(where) - set(columns))
                if unknown:
                    raise ConnectorError(
                        f"{self.system}.{resource}: no column {', '.join(unknown)} in table {table.name} to find by",
                        retryable=False,
                    )
                conditions = [
                    f"{_ident(c)} = {_placeholder(columns[c], i)}"
                    if columns[c] in _CASTABLE
                    else f"{_ident(c)}::text = ${i}"
                    for i, c in enumerate(where, start=1)
                ]
                values = [_as_text(v) for v in where.values()]
                rows = await conn.fetch(
                    f"SELECT * FROM {_ident(table.name)} WHERE {' AND '.join(conditions) or 'true'} "
                    f"ORDER BY {_ident(table.key)} LIMIT {int(limit)}",
                    *values,
                )
        except (OSError, asyncpg.PostgresError) as exc:
            raise classify(exc, f"{self.system}: cannot find {resource} by {', '.join(where)}") from exc
        found = (_jsonable(r) for r in rows)
        return {str(r[table.key]): r for r in found if r is not None}

    async def read(self, resource: str, record_id: str) -> Record | None:
        """The row ``record_id`` of the resource's table, or None."""
        table = self._table(resource)
        try:
            pool = await self._shared.get()
            async with pool.acquire() as conn:
                row = await conn.fetchrow(
                    f"SELECT * FROM {_ident(table.name)} WHERE {_ident(table.key)} = $1", record_id
                )
        except (OSError, asyncpg.PostgresError) as exc:
            raise classify(exc, f"{self.system}: cannot read {resource} {record_id}") from exc
        return _jsonable(row)

    async def written(self, idempotency_key: str) -> WriteResult | None:
        """The stored images of a write that already committed under this key, or None."""
        try:
            pool = await self._shared.get()
            async with pool.acquire() as conn:
                done = await conn.fetchrow(
                    "SELECT before, after FROM govflow_idempotency WHERE key = $1 AND system = $2",
                    idempotency_key,
                    self.system,
                )
        except (OSError, asyncpg.PostgresError) as exc:
            raise classify(exc, f"{self.system}: cannot look up write {idempotency_key}") from exc
        if done is None:
            return None
        return WriteResult(before=_decode(done["before"]), after=_decode(done["after"]), replayed=True)

    async def write(self, request: WriteRequest, check: RecordCheck) -> WriteResult:
        """Lock the row, check it, write it and record the idempotency key, in one transaction."""
        table = self._table(request.resource)
        try:
            pool = await self._shared.get()
            async with pool.acquire() as conn, conn.transaction():
                done = await conn.fetchrow(
                    "SELECT before, after FROM govflow_idempotency WHERE key = $1", request.idempotency_key
                )
                if done is not None:
                    return WriteResult(before=_decode(done["before"]), after=_decode(done["after"]), replayed=True)
                columns = await self._known_columns(conn, table)
                unknown = sorted(set(request.fields) - set(columns))
                if unknown:
                    raise ConnectorError(
                        f"{self.system}.{request.resource}: no column {', '.join(unknown)} in table {table.name}",
                        retryable=False,
                    )
                where = f"{_ident(table.key)} = $1"
                before_row = await conn.fetchrow(
                    f"SELECT * FROM {_ident(table.name)} WHERE {where} FOR UPDATE", request.record_id
                )
                before = _jsonable(before_row)
                check(before)
                after = await self._apply(conn, table, columns, request, before is not None)
                await conn.execute(
                    "INSERT INTO govflow_idempotency (key, system, resource, record_id, operation, before, after)"
                    " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)",
                    request.idempotency_key,
                    self.system,
                    request.resource,
                    request.record_id,
                    request.operation,
                    json.dumps(before),
                    json.dumps(after),
                )
                return WriteResult(before=before, after=after)
        except (OSError, asyncpg.PostgresError) as exc:
            raise classify(exc, f"{self.system}.{request.resource} {request.record_id}: write failed") from exc

    async def _apply(
        self,
        conn: PoolConnectionProxy[asyncpg.Record],
        table: Table,
        columns: dict[str, str],
        request: WriteRequest,
        exists: bool,
    ) -> Record | None:
        """Apply the write. A JSON value is sent as text and cast to its column's type (a money amount
        as "12500.00" into numeric, a date as "2026-12-01" into date), so fields need no Python types."""
        name, key = _ident(table.name), _ident(table.key)
        names = list(request.fields)
        values: list[Any] = [_param_value(columns[n], request.fields[n]) for n in names]
        if request.operation == "delete":
            if not exists:
                raise ConnectorError(f"{self.system}: {request.record_id} does not exist", retryable=False)
            await conn.execute(f"DELETE FROM {name} WHERE {key} = $1", request.record_id)
            return None
        if request.operation == "create":
            cols = [key, *(_ident(n) for n in names)]
            params = ", ".join(["$1", *(_placeholder(columns[n], i) for i, n in enumerate(names, start=2))])
            row = await conn.fetchrow(
                f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({params}) RETURNING *",
                request.record_id,
                *values,
            )
            return _jsonable(row)
        if not exists:
            raise ConnectorError(
                f"{self.system}.{request.resource}: record {request.record_id} does not exist", retryable=False
            )
        if not names:
            row = await conn.fetchrow(f"SELECT * FROM {name} WHERE {key} = $1", request.record_id)
            return _jsonable(row)
        sets = ", ".join(f"{_ident(n)} = {_placeholder(columns[n], i)}" for i, n in enumerate(names, start=2))
        row = await conn.fetchrow(f"UPDATE {name} SET {sets} WHERE {key} = $1 RETURNING *", request.record_id, *values)
        return _jsonable(row)


_CASTABLE = frozenset(
    {"text", "character varying", "character", "integer", "bigint", "smallint", "numeric", "real",
     "double precision", "boolean", "date", "uuid", "timestamp with time zone", "timestamp without time zone"}
)  # fmt: skip
"""Column types a text parameter is cast to, so ``column = value`` compares (and uses an index) natively."""


def _as_text(value: Scalar) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _placeholder(column_type: str, i: int) -> str:
    return f"(${i}::text)::{column_type}" if column_type in _CASTABLE else f"${i}"


def _param_value(column_type: str, value: Any) -> Any:
    if column_type in _CASTABLE and isinstance(value, str | int | float | bool):
        return _as_text(value)
    return value


def classify(exc: BaseException, what: str) -> ConnectorError:
    """A driver error as a ConnectorError, retryable exactly when it is transient (see pgerrors)."""
    return ConnectorError(f"{what}: {exc}", retryable=is_transient(exc))


def _decode(value: Any) -> Record | None:
    if value is None:
        return None
    decoded = json.loads(value) if isinstance(value, str) else value
    return decoded if isinstance(decoded, dict) else None


def with_database(url: str, name: str) -> str:
    """Swap the database in a ``postgresql://user@host/db?query`` URL."""
    head, sep, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}{sep}{query}"


async def ensure_database(url: str, name: str) -> str:
    """Create the database ``name`` on the server of ``url`` unless it exists; returns its URL."""
    conn = await asyncpg.connect(url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(url, name)
