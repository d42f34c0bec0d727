"""The evidence store: append-only, hash-chained rows in Postgres."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from govflow.activities.evidence.chain import (
    GENESIS,
    ChainProblem,
    EvidenceEvent,
    Stream,
    VerifyReport,
    verify_rows,
)
from govflow.activities.evidence.events import Event, ProjectedEvent, RunRecord, UnreadableEvent, parse_event
from govflow.activities.evidence.failures import EvidenceConflictError, EvidenceGapError
from govflow.activities.evidence.pool import create_pool
from govflow.activities.evidence.signatures import enrolled_from, passkey_problems
from govflow.activities.evidence.sql import queries
from govflow.policies.standing import matches

_CONFLICT = "GF001"
"""SQLSTATE of govflow_append refusing a batch whose seqs hold other events (migration 0009)."""


@dataclass(frozen=True)
class FenceHold:
    """A live write's hold on its fences, one open evidence transaction (``EvidenceStore.fence``)."""

    stopped: list[str]
    """What refuses the write: paused or stopped rollouts, and ``grant:<id>`` for ended standing approvals."""
    conn: Any
    generations: dict[str, int]
    """Each held rollout's fence generation (``fence_generation``)."""


@dataclass(frozen=True)
class AppendResult:
    hash: str
    stored: bool
    """False when the same event was already there (a retry): nothing was written."""


E = TypeVar("E", bound=Event)


class EvidenceStore:
    """Appends evidence and verifies chains. Methods are safe to retry."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._q = queries()
        self._fenced: set[str] = set()  # rollouts whose fence row this store has made sure of

    @classmethod
    @asynccontextmanager
    async def open(cls, dsn: str) -> AsyncIterator[EvidenceStore]:
        pool = await create_pool(dsn)
        try:
            yield cls(pool)
        finally:
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def next_seq(self, stream: Stream, stream_id: str) -> int:
        """The sequence number the stream's next event takes (1 for a new stream)."""
        row = await self._pool.fetchrow(self._q["chain_head"], stream, stream_id)
        return 1 if row is None else int(row["seq"]) + 1

    async def append(self, event: EvidenceEvent, projection: ProjectedEvent | None = None) -> AppendResult:
        """Append one event to its stream.

        The same event delivered twice is stored once. A different event at a
        taken sequence number raises :class:`EvidenceConflictError`; an event
        whose predecessor is missing raises :class:`EvidenceGapError`.
        """
        return (await self.append_many([(event, projection)]))[0]

    async def append_many(
        self,
        items: Sequence[tuple[EvidenceEvent, ProjectedEvent | None]],
        *,
        run: RunRecord | None = None,
        within: FenceHold | None = None,
    ) -> list[AppendResult]:
        """Append consecutive events of one stream in one transaction (one commit), same rules as ``append``.

        With ``run``, the run's row is registered in the same transaction. ``within``: in the transaction
        of a fence hold, committed when the hold ends (a live write's evidence, with the write's release).
        """
        if not items:
            return []
        first = items[0][0]
        for offset, (event, _) in enumerate(items):
            if (event.stream, event.stream_id, event.seq) != (first.stream, first.stream_id, first.seq + offset):
                raise EvidenceGapError(
                    f"append_many takes consecutive events of one stream; got {event.stream} "
                    f"{event.stream_id} seq {event.seq} after seq {first.seq + offset - 1}"
                )
        if within is not None:
            return await self._append_on(within.conn, items, run)
        async with self._pool.acquire() as conn:  # one statement (a lookup first past seq 1): no transaction
            return await self._append_on(conn, items, run)

    async def _append_on(
        self, conn: Any, items: Sequence[tuple[EvidenceEvent, ProjectedEvent | None]], run: RunRecord | None
    ) -> list[AppendResult]:
        """Chain ``items`` after the stored event before them and store them, their projections, the chain
        head and ``run`` in one statement (``govflow_append``, migration 0009).

        Rows already stored (a retried append) are recognised by hash and not stored again; another hash
        at a taken seq is a conflict and nothing of the batch stays. Projections are written only for the
        rows this call stored.
        """
        q = self._q
        first = items[0][0]
        if first.seq == 1:
            prev_hash = GENESIS
        else:
            found = await conn.fetchval(q["event_hash_at"], first.stream, first.stream_id, first.seq - 1)
            if found is None:
                raise EvidenceGapError(
                    f"{first.stream} {first.stream_id}: event {first.seq} ({first.kind}) "
                    f"cannot be appended before event {first.seq - 1}"
                )
            prev_hash = str(found)
        hashes: list[str] = []
        prevs: list[str] = []
        for event, _ in items:
            prevs.append(prev_hash)
            prev_hash = event.hash_with(prev_hash)
            hashes.append(prev_hash)
        events = [e for e, _ in items]
        projections: dict[str, list[dict[str, Any]]] = {}
        for event, projection in items:
            if projection is not None:
                row = projection.model_dump(mode="json")
                row.update(run_id=event.stream_id, seq=event.seq)
                projections.setdefault(projection.table, []).append(row)
        try:
            stored = set(
                await conn.fetchval(
                    q["append"], first.stream, first.stream_id, [e.seq for e in events], [e.kind for e in events],
                    [e.occurred_at for e in events], [e.payload for e in events], prevs, hashes,
                    None if run is None else run.model_dump(mode="json"), projections or None,
                )
            )  # fmt: skip
        except asyncpg.PostgresError as exc:
            if getattr(exc, "sqlstate", None) == _CONFLICT:
                raise EvidenceConflictError(str(exc)) from exc
            raise
        return [AppendResult(hash=h, stored=e.seq in stored) for e, h in zip(events, hashes, strict=True)]

    async def start_run(self, run: RunRecord) -> AppendResult:
        """Register a run and append its opening event (seq 1, ``run_started``), in one transaction."""
        event = EvidenceEvent(
            stream="run",
            stream_id=run.run_id,
            seq=1,
            kind="run_started",
            occurred_at=run.started_at,
            payload=run.model_dump(mode="json", exclude={"started_at"}),
        )
        return (await self.append_many([(event, None)], run=run))[0]

    async def record(self, run_id: str, seq: int, occurred_at: datetime, record: ProjectedEvent) -> AppendResult:
        """Append a typed record to a run's chain and its projection table."""
        event = EvidenceEvent(
            stream="run",
            stream_id=run_id,
            seq=seq,
            kind=record.kind,
            occurred_at=occurred_at,
            payload=record.model_dump(mode="json"),
        )
        return await self.append(event, record)

    async def append_event(
        self, stream: Stream, stream_id: str, seq: int, kind: str, occurred_at: datetime, payload: dict[str, Any]
    ) -> AppendResult:
        """Append one untyped event to a run's or a rollout's chain."""
        event = EvidenceEvent(
            stream=stream, stream_id=stream_id, seq=seq, kind=kind, occurred_at=occurred_at, payload=payload
        )
        return await self.append(event)

    async def run(self, run_id: str) -> RunRecord | None:
        """The run's row (task, version, policy digest, item, requester, stage, mode, start, rollout)."""
        row = await self._pool.fetchrow(self._q["get_run"], run_id)
        return None if row is None else RunRecord.model_validate(dict(row))

    async def last_event(self, run_id: str, event: type[E]) -> E | UnreadableEvent | None:
        """The run's last event of ``event``'s kind, read as that model (or as unreadable), or None."""
        found = await self._pool.fetchval(self._q["last_event_of_kind"], run_id, event.kind)
        if found is None:
            return None
        parsed = parse_event(event.kind, found)
        return parsed if isinstance(parsed, event | UnreadableEvent) else None

    async def refused_starts(self, run_id: str) -> list[str]:
        """The chains of starts refused under ``run_id`` (``<run id>@<Temporal run id>``), oldest first."""
        return [r["stream_id"] for r in await self._pool.fetch(self._q["refused_starts"], run_id)]

    async def rollout_runs(self, rollout_id: str) -> list[str]:
        """The runs a rollout admitted, oldest first."""
        return [r["run_id"] for r in await self._pool.fetch(self._q["rollout_runs"], rollout_id)]

    # --- standing approvals ------------------------------------------------------------------------------

    async def propose_grant(self, grant_id: str, task: str, task_version: str, rule: str, match: dict[str, Any],
                            max_uses: int, expires_at: datetime) -> None:  # fmt: skip
        await self._pool.execute(self._q["grant_propose"], grant_id, task, task_version, rule, json.dumps(match),
                                 max_uses, expires_at)  # fmt: skip

    async def activate_grant(self, grant_id: str, granted_by: list[str]) -> None:
        await self._pool.execute(self._q["grant_activate"], grant_id, granted_by)

    async def end_grant(self, grant_id: str, status: str, by: str, reason: str) -> None:
        await self._pool.execute(self._q["grant_end"], grant_id, status, by, reason)

    async def claim_grant(
        self, task: str, task_version: str, rule: str, fields: dict[str, Any], requester: str, run_id: str,
        action_id: str, now: datetime,
    ) -> str | None:  # fmt: skip
        """A use of a live grant that covers this action, or None. Idempotent: the same run's action gets
        the use it already has. Never past a cap: candidate grants are locked while uses are counted."""
        q = self._q
        async with self._pool.acquire() as conn, conn.transaction():
            had = await conn.fetchval(q["grant_use_of"], run_id, action_id)
            if had is not None:
                return str(had)
            for g in await conn.fetch(q["grant_candidates"], task, task_version, rule, now):
                match = g["match"] if isinstance(g["match"], dict) else json.loads(g["match"])
                if not matches(match, fields) or requester in g["granted_by"]:
                    continue
                if await conn.fetchval(q["grant_uses_count"], g["grant_id"]) >= g["max_uses"]:
                    continue
                await conn.execute(q["grant_use_insert"], run_id, action_id, g["grant_id"])
                return str(g["grant_id"])
        return None

    async def grants(self, task: str | None = None) -> list[dict[str, Any]]:
        """Every standing approval (of ``task``), oldest first, with how many uses it has had."""
        return [dict(r) for r in await self._pool.fetch(self._q["grants_list"], task)]

    async def run_notifications(self, run_id: str) -> list[dict[str, Any]]:
        """The run's announcements (notification chains), oldest first, each with its last event."""
        return [dict(r) for r in await self._pool.fetch(self._q["run_notifications"], run_id)]

    async def decided_at(self, run_id: str, action_id: str) -> datetime | None:
        """When the policy decided ``action_id`` in the run (its policy_decision event)."""
        found: datetime | None = await self._pool.fetchval(self._q["decided_at"], run_id, action_id)
        return found

    async def approval_tally(self, run_ids: list[str]) -> list[tuple[str, bool, int]]:
        """Approval attempts of these runs: (reviewer, accepted, how many)."""
        rows = await self._pool.fetch(self._q["approval_tally"], run_ids)
        return [(r["reviewer"], r["accepted"], r["n"]) for r in rows]

    async def rollout_live_writes(self, rollout_id: str, since: datetime | None) -> list[dict[str, Any]]:
        """Live writes of a rollout's runs (newest first), for data rollback."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(self._q["rollout_live_writes"], rollout_id, since)
        return [dict(r) for r in rows]

    async def set_fence(self, rollout_id: str, paused: bool, epoch: int | None = None) -> None:
        """Pause or unpause a rollout's fence, at the rollout's stop ``epoch`` (None: leave it). Pausing
        waits for every write that holds the fence."""
        async with self._pool.acquire() as conn:
            await conn.execute(self._q["set_fence"], rollout_id, paused, epoch)

    async def fence_generation(self, rollout_id: str) -> int:
        """How many times the rollout has set its fence (0: never; its row is made here if missing). Read
        before asking whether the rollout runs: a rollout that starts after the read moves it."""
        found = await self._pool.fetchval(self._q["fence_generation_of"], rollout_id)  # a read, once it exists
        if found is None:
            # Made unpaused (as ``fence`` makes it); a concurrent maker's row is committed once this returns.
            await self._pool.execute(self._q["ensure_fences"], [rollout_id])
            self._fenced.add(rollout_id)
            found = await self._pool.fetchval(self._q["fence_generation_of"], rollout_id)
        return int(found)

    @asynccontextmanager
    async def fence(
        self, rollout_ids: list[str], grant_ids: Sequence[str] = (), epochs: Mapping[str, int] | None = None
    ) -> AsyncIterator[FenceHold]:
        """Hold the rollouts' fence rows (FOR SHARE) for the duration: yields the paused ones (``stopped``)
        and the transaction's connection, for evidence that commits as the hold ends
        (``append_many(within=)``). A pause (``set_fence``) waits until this is left, so hold it around the
        write. ``epochs``: the stop epoch each rollout's lease was granted in; a rollout whose fence has moved
        on since (a pause or rollback after the lease) is yielded too, as stopped. ``grant_ids``: standing
        approvals the write relies on, held the same way; one no longer active is yielded as ``grant:<id>`` (a
        revocation waits for the write in progress, and refuses every later one).

        A rollout that never paused gets its (unpaused) row first, committed before the hold: without a row to
        hold, its first pause would not wait for the writes in progress (bench.pause_latency caught one such
        write in 40 trials). Rows are never deleted, so each is made once per process.
        """
        async with self._pool.acquire() as conn:
            new = [r for r in rollout_ids if r not in self._fenced]
            if new:
                await conn.execute(self._q["ensure_fences"], new)
                self._fenced.update(new)
            async with conn.transaction():
                rows = await conn.fetch(self._q["hold_fences"], rollout_ids)
                leased = epochs or {}
                stopped = [
                    str(r["rollout_id"]) for r in rows
                    if r["paused"] or (r["rollout_id"] in leased and leased[r["rollout_id"]] != r["epoch"])
                ]  # fmt: skip
                if grant_ids:
                    held = {
                        r["grant_id"]: r["status"] for r in await conn.fetch(self._q["hold_grants"], list(grant_ids))
                    }
                    stopped += [f"grant:{g}" for g in grant_ids if held.get(g) != "active"]
                yield FenceHold(stopped, conn, {str(r["rollout_id"]): int(r["generation"]) for r in rows})

    async def heads(self) -> list[dict[str, Any]]:
        """Every stream's newest row (stream, stream_id, seq, hash), for a checkpoint."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(self._q["all_heads"])
        return [dict(r) for r in rows]

    async def hash_at(self, stream: Stream, stream_id: str, seq: int) -> str | None:
        async with self._pool.acquire() as conn:
            value = await conn.fetchval(self._q["event_hash_at"], stream, stream_id, seq)
        return None if value is None else str(value)

    async def events(self, stream: Stream, stream_id: str) -> list[dict[str, Any]]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(self._q["stream_events"], stream, stream_id)
        return [dict(r) for r in rows]

    async def task_runs(
        self, task: str, version: str | None = None, since: datetime | None = None, limit: int = 1_000_000
    ) -> list[RunRecord]:
        """The runs of a task (one version, or all), newest first, started at or after ``since``."""
        rows = await self._pool.fetch(self._q["task_runs"], task, version, since, limit)
        return [RunRecord.model_validate(dict(r)) for r in rows]

    async def stream_rows(
        self, stream: Stream, ids: Sequence[str]
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, tuple[int, str]]]:
        """Several streams at once, as one snapshot: each one's rows (ordered by seq) and chain head, for
        bulk readers (what-if) to check with ``verify_rows``. ``verify`` also checks a run's projections."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            rows = await conn.fetch(self._q["streams_events"], stream, list(ids))
            heads = {r["stream_id"]: (int(r["seq"]), str(r["hash"])) for r in
                     await conn.fetch(self._q["streams_heads"], stream, list(ids))}  # fmt: skip
        by_stream: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        for r in rows:
            by_stream[r["stream_id"]].append(dict(r))
        return by_stream, heads

    async def verify(self, stream: Stream, stream_id: str) -> VerifyReport:
        """Recompute a stream's chain and, for a run, check its projections, its run row and the passkey
        signatures of its accepted votes (activities/evidence/signatures.py)."""
        q = self._q
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            rows = await conn.fetch(q["stream_events"], stream, stream_id)
            head_row = await conn.fetchrow(q["chain_head"], stream, stream_id)
            head = None if head_row is None else (int(head_row["seq"]), str(head_row["hash"]))
            report = verify_rows(stream, stream_id, [dict(r) for r in rows], head)
            if stream != "run" or not rows:
                return report
            extra: list[ChainProblem] = []
            for bad in await conn.fetch(q["projection_mismatches"], stream_id):
                extra.append(
                    ChainProblem(
                        seq=int(bad["seq"]),
                        problem=f"{bad['tbl']} row {bad['seq']} {bad['problem']}",
                    )
                )
            extra += await passkey_problems(stream_id, [dict(r) for r in rows], enrolled_from(self._pool))
            run = await conn.fetchrow(q["get_run"], stream_id)
            first = rows[0]
            if run is None:
                extra.append(ChainProblem(seq=1, problem=f"runs row for {stream_id} is missing"))
            elif first["kind"] == "run_started":
                as_recorded = RunRecord.model_validate(dict(run))
                expected = as_recorded.model_dump(mode="json", exclude={"started_at"})
                # The event also names its Temporal execution and carries the submit's proof; the row does not.
                stated = {k: v for k, v in first["payload"].items() if k not in RunRecord.EVENT_ONLY}
                if expected != stated or as_recorded.started_at != first["occurred_at"]:
                    extra.append(ChainProblem(seq=1, problem="runs row differs from its run_started event"))
        if not extra:
            return report
        problems = sorted([*report.problems, *extra], key=lambda p: p.seq)
        return report.model_copy(update={"problems": problems})
