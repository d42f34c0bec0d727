"""What the activity classes share: errors typed for Temporal, redaction, the one evidence append path."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from govflow.activities.evidence import EvidenceConflictError, EvidenceEvent, EvidenceGapError, EvidenceStore, RunRecord
from govflow.activities.evidence.chain import Stream
from govflow.activities.evidence.events import PROJECTED, ProjectedEvent
from govflow.activities.evidence.store import AppendResult, FenceHold
from govflow.activities.names import ErrorType
from govflow.activities.pgerrors import is_transient
from govflow.activities.registry import Registration, Registry, UnknownTask
from govflow.activities.run_messages import EvidenceItem, RunSetup, StartRun
from govflow.activities.telemetry import Telemetry

REDACTED = "[redacted]"


def redact(value: Any, fields: frozenset[str]) -> Any:
    """Replace the values of keys named in ``fields``, at any depth."""
    if not fields:
        return value
    if isinstance(value, dict):
        return {k: (REDACTED if k in fields else redact(v, fields)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, fields) for v in value]
    return value


def fail(exc: Exception, kind: ErrorType, *, retryable: bool = False, details: Any = None) -> ApplicationError:
    args = (details,) if details is not None else ()
    return ApplicationError(str(exc), *args, type=kind, non_retryable=not retryable)


def evidence_failure(exc: Exception) -> ApplicationError:
    """A database error while appending evidence: retried while Postgres is away (it comes back and the
    run resumes); refused at once when the database rejects the row itself (a bug, or a tampered chain
    whose guard trigger refuses), so the run surfaces instead of retrying forever."""
    if is_transient(exc):
        return fail(exc, ErrorType.EVIDENCE_UNAVAILABLE, retryable=True)
    return fail(exc, ErrorType.EVIDENCE_REJECTED)


UNKNOWN_TASK_ATTEMPTS = 30
"""How often an activity for a task this worker does not serve is offered back to its task queue (1 s, then
one second more each time, up to 30 s: about 8 minutes) before the run fails: long enough for the worker
that serves it to take it (each attempt goes to whichever worker polls first), short enough that a task
nobody serves (a misspelt name) fails with a clear message."""


def unknown_task(exc: UnknownTask) -> ApplicationError:
    """A task this worker does not serve: retried, so that a worker on the same queue that serves it takes
    it (a second worker beside the demo's), and failed for good only when none has after many attempts."""
    attempt = activity.info().attempt if activity.in_activity() else UNKNOWN_TASK_ATTEMPTS
    if attempt < UNKNOWN_TASK_ATTEMPTS:
        return ApplicationError(
            f"{exc}; offered again to the other workers of this task queue (attempt {attempt} of "
            f"{UNKNOWN_TASK_ATTEMPTS})",
            type=ErrorType.UNKNOWN_TASK, non_retryable=False, next_retry_delay=timedelta(seconds=min(30, attempt)),
        )  # fmt: skip
    return fail(UnknownTask(f"{exc}; no worker of this task queue served it in {attempt} attempts"),
                ErrorType.UNKNOWN_TASK)  # fmt: skip


class GovflowActivities:
    """What every govflow activity class shares: the task registry, the evidence store (the one path by
    which evidence is appended), the Temporal client, telemetry."""

    def __init__(
        self,
        registry: Registry,
        store: EvidenceStore,
        client: Client | None = None,
        telemetry: Telemetry | None = None,
        console: str | None = None,
    ) -> None:
        """``console``: the reviewer console's origin, where one serves reviewers (for links to its pages)."""
        self._registry = registry
        self._store = store
        self._client = client
        self._telemetry = telemetry or Telemetry.default()
        self._console = console

    def _registration(self, task: str, version: str) -> Registration:
        try:
            return self._registry.get(task, version)
        except UnknownTask as exc:
            raise unknown_task(exc) from exc

    async def _append(
        self,
        task: str,
        run_id: str,
        seq: int,
        at: Any,
        items: list[EvidenceItem],
        redact_fields: frozenset[str],
        run: RunRecord | None = None,
    ) -> str:
        """Append ``items`` at ``seq``...; returns the hash of the last one (stored now or before)."""
        batch = self._run_batch(run_id, seq, at, items, redact_fields)
        return (await self._store_batch("run", task, batch, run))[-1].hash

    @staticmethod
    def _run_batch(
        run_id: str, seq: int, at: Any, items: list[EvidenceItem], redact_fields: frozenset[str]
    ) -> list[tuple[EvidenceEvent, ProjectedEvent | None]]:
        """A run's ``items`` as its events at ``seq``..., redacted, each with its projection."""
        batch: list[tuple[EvidenceEvent, ProjectedEvent | None]] = []
        for offset, item in enumerate(items):
            payload = redact(item.payload, redact_fields)
            event = EvidenceEvent(
                stream="run",
                stream_id=run_id,
                seq=seq + offset,
                kind=item.kind,
                occurred_at=item.at or at,
                payload=payload,
            )
            projection_type = PROJECTED.get(item.kind)
            batch.append((event, projection_type.model_validate(payload) if projection_type else None))
        return batch

    async def _note_divergence(
        self, batch: Sequence[tuple[EvidenceEvent, ProjectedEvent | None]], exc: EvidenceConflictError
    ) -> None:
        """A conflict means the run's history and its chain disagree: real divergence, never a retry.
        Before the run fails (visibly, in Temporal), the chain itself says so at its next free seq,
        with the rows that were refused, so an auditor reading the evidence sees it too."""
        first = batch[0][0]
        try:
            seq = await self._store.next_seq(first.stream, first.stream_id)
            note = EvidenceEvent(
                stream=first.stream, stream_id=first.stream_id, seq=seq, kind="evidence_diverged",
                occurred_at=first.occurred_at,
                payload={
                    "detail": str(exc),
                    "refused": [{"seq": e.seq, "kind": e.kind} for e, _ in batch],
                    "what_next": "the run stops here; compare its Temporal history with this chain",
                },
            )  # fmt: skip
            await self._store.append_many([(note, None)])
        except Exception:  # best effort: the refusal itself still fails the activity
            activity.logger.exception("could not record evidence_diverged for %s", first.stream_id)

    async def _store_batch(
        self,
        stream: Stream,
        task: str,
        batch: Sequence[tuple[EvidenceEvent, ProjectedEvent | None]],
        run: RunRecord | None = None,
    ) -> list[AppendResult]:
        """The one path by which activities append evidence: timed, errors typed for Temporal (a conflict
        or gap is final; a database error by its SQLSTATE), and each newly stored event counted once."""
        results = await self._append_batch(stream, batch, run)
        await self._count(task, batch, results)
        return results

    async def _append_batch(
        self,
        stream: Stream,
        batch: Sequence[tuple[EvidenceEvent, ProjectedEvent | None]],
        run: RunRecord | None = None,
        within: FenceHold | None = None,
    ) -> list[AppendResult]:
        """``_store_batch`` without the counting: ``within`` a fence hold, the rows are stored only when the
        hold commits, so they are counted (``_count``) after it."""
        try:
            with self._telemetry.timing_write(stream):
                return await self._store.append_many(batch, run=run, within=within)
        except EvidenceConflictError as exc:
            await self._note_divergence(batch, exc)
            raise fail(exc, ErrorType.EVIDENCE_CONFLICT) from exc
        except EvidenceGapError as exc:
            raise fail(exc, ErrorType.EVIDENCE_GAP) from exc
        except (OSError, asyncpg.PostgresError) as exc:
            raise evidence_failure(exc) from exc

    async def _count(
        self, task: str, batch: Sequence[tuple[EvidenceEvent, ProjectedEvent | None]], results: list[AppendResult]
    ) -> None:
        """Metrics of the events of ``batch`` that this append stored (not those a retry found there)."""
        stored = [event for (event, _), result in zip(batch, results, strict=True) if result.stored]
        await self._telemetry.observe(self._store, task, stored)

    async def _append_chain(
        self, stream: Stream, stream_id: str, task: str, seq: int, rows: Sequence[tuple[str, dict[str, Any], datetime]]
    ) -> int:
        """Append ``(kind, payload, when)`` rows to a chain whose workflow owns it (a rollout's, a grant's,
        a notification's) at ``seq``..., in one commit; returns the next free seq. Safe to retry."""
        batch = [
            (EvidenceEvent(stream=stream, stream_id=stream_id, seq=seq + i, kind=kind, occurred_at=at,
                           payload=payload), None)
            for i, (kind, payload, at) in enumerate(rows)
        ]  # fmt: skip
        if batch:
            await self._store_batch(stream, task, batch)
        return seq + len(batch)

    @staticmethod
    def _run_record(s: StartRun, policy_digest: str) -> RunRecord:
        return RunRecord(
            run_id=s.run_id, task=s.task, task_version=s.task_version, policy_digest=policy_digest,
            item_key=s.item_key, requester=s.requester, stage=s.stage, mode=s.mode, started_at=s.at,
            rollout_id=s.rollout_id,
        )  # fmt: skip

    def _setup(self, task: str, version: str) -> RunSetup:
        reg = self._registration(task, version)
        return RunSetup(policy_zlib=reg.policy_zlib, policy_digest=reg.digest, next_seq=1, console=self._console)
