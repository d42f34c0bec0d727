"""What bench.chaos checks from outside once the chaos is over, and the planted failures that prove the
checks can fail: duplicate writes (a trigger counts every row change in the system of record), writes
without evidence, chains that do not verify or do not match what Temporal recorded."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus

from govflow.activities.evidence import EvidenceStore
from govflow.export.bundle import anchor_problem
from govflow.workflows.run_api import RunResult

TRIGGER_SQL = """
CREATE TABLE IF NOT EXISTS chaos_row_changes (
    id bigserial PRIMARY KEY, tbl text NOT NULL, record_id text NOT NULL,
    txid bigint NOT NULL DEFAULT txid_current(), at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE OR REPLACE FUNCTION chaos_count_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chaos_row_changes (tbl, record_id) VALUES (TG_TABLE_NAME, NEW.id::text);
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS chaos_count ON ticket;
CREATE TRIGGER chaos_count AFTER INSERT OR UPDATE ON ticket FOR EACH ROW EXECUTE FUNCTION chaos_count_change();
DROP TRIGGER IF EXISTS chaos_count ON contact;
CREATE TRIGGER chaos_count AFTER INSERT OR UPDATE ON contact FOR EACH ROW EXECUTE FUNCTION chaos_count_change();
"""

DUPLICATES_SQL = """
SELECT c.tbl, c.record_id, c.changes, COALESCE(k.keys, 0) AS keys
FROM (SELECT tbl, record_id, count(*) AS changes FROM chaos_row_changes GROUP BY 1, 2) c
LEFT JOIN (SELECT resource, record_id, count(*) AS keys FROM govflow_idempotency GROUP BY 1, 2) k
  ON k.resource = c.tbl AND k.record_id = c.record_id
WHERE c.changes > COALESCE(k.keys, 0)
"""


@dataclass
class Findings:
    completed: int = 0
    failed: list[str] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    live_writes: int = 0
    duplicates: list[str] = field(default_factory=list)
    without_evidence: list[str] = field(default_factory=list)
    chains_bad: list[str] = field(default_factory=list)


async def _write_checks(sor: asyncpg.Connection, store: EvidenceStore) -> tuple[list[str], list[str], int]:
    dupes = await sor.fetch(DUPLICATES_SQL)
    keys = await sor.fetch("SELECT key, resource, record_id FROM govflow_idempotency")
    async with store.pool.acquire() as ev:
        recorded = {
            str(r["idempotency_key"])
            for r in await ev.fetch("SELECT idempotency_key FROM touched_records WHERE mode = 'live'")
        }
    duplicates = [f"{d['tbl']} {d['record_id']}: {d['changes']} changes, {d['keys']} idempotency keys" for d in dupes]
    unrecorded = [f"{k['resource']} {k['record_id']} (key {k['key']})" for k in keys if k["key"] not in recorded]
    return duplicates, unrecorded, len(keys)


async def check(client: Client, store: EvidenceStore, sor_url: str, run_ids: list[str]) -> Findings:
    found = Findings()
    for run_id in run_ids:
        handle = client.get_workflow_handle(run_id, result_type=RunResult)
        desc = await handle.describe()
        if desc.status != WorkflowExecutionStatus.COMPLETED:
            found.failed.append(f"{run_id}: {desc.status.name if desc.status else '?'}")
            continue
        result: RunResult = await handle.result()
        found.completed += 1
        found.outcomes[result.outcome] = found.outcomes.get(result.outcome, 0) + 1
        report = await store.verify("run", run_id)
        problem = report.problem
        problem = problem or await anchor_problem(store, client, run_id)
        if problem:
            found.chains_bad.append(f"{run_id}: {problem}")
    sor = await asyncpg.connect(sor_url)
    try:
        found.duplicates, found.without_evidence, found.live_writes = await _write_checks(sor, store)
    finally:
        await sor.close()
    return found


async def detectors_see_planted_failures(sor_url: str, store: EvidenceStore) -> tuple[int, int]:
    """Plant one duplicate write and one unrecorded write; return how many of each the checks count.
    Both planted rows are removed again afterwards."""
    conn = await asyncpg.connect(sor_url)
    before_dupes, before_unrec, _ = await _write_checks(conn, store)
    try:
        async with conn.transaction():
            written = await conn.fetchval("SELECT record_id FROM govflow_idempotency WHERE resource = 'ticket' LIMIT 1")
            other = await conn.fetchval(
                "SELECT id FROM ticket WHERE id NOT IN (SELECT record_id FROM govflow_idempotency) LIMIT 1"
            )
            await conn.execute("UPDATE ticket SET category = category WHERE id = $1", written)
            await conn.execute(
                "INSERT INTO govflow_idempotency (key, system, resource, record_id, operation, before, after) "
                "VALUES ($1, 'ticketing', 'ticket', $2, 'reply', '{}', '{}')",
                f"planted-{uuid.uuid4().hex[:6]}",
                other,
            )
            await conn.execute("UPDATE ticket SET category = category WHERE id = $1", other)
            dupes, unrec, _ = await _write_checks(conn, store)
            raise _Rollback(len(dupes) - len(before_dupes), len(unrec) - len(before_unrec))
    except _Rollback as planted:
        return planted.dupes, planted.unrecorded
    finally:
        await conn.close()


class _Rollback(Exception):
    def __init__(self, dupes: int, unrecorded: int) -> None:
        self.dupes, self.unrecorded = dupes, unrecorded
