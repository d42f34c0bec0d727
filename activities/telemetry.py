"""Prometheus metrics, read off the evidence as it is written.

Every fact worth a metric (a run started or finished, a vote, a score, a scope
refusal, a breach, a pause) is an evidence event first, and every evidence event
passes through an activity of this worker. So metrics are counted where the
event is stored, once (a retried append that stores nothing counts nothing), and
workflow code stays free of side effects. The Temporal SDK's own metrics come
from its Runtime, on a port of their own (see workers/worker.py).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import asyncpg
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from govflow.activities.evidence.chain import EvidenceEvent
from govflow.activities.evidence.events import (
    ApprovalAttemptRecord,
    BreachDetected,
    Event,
    LeaseRefused,
    NotificationAbandoned,
    NotificationDelivered,
    NotificationFailed,
    Paused,
    Promoted,
    QualityCheckFailed,
    QualityScoreRecord,
    RolledBack,
    RunFinished,
    RunStarted,
    ScopeRefused,
    UnreadableEvent,
    parse_event,
)
from govflow.activities.evidence.store import EvidenceStore

_log = logging.getLogger(__name__)

_WAIT_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 8 * 3600, 24 * 3600, 72 * 3600)
_SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Runs whose start this process counted, remembered until they finish: their finish is labelled without a
# lookup (a run that started elsewhere, or long ago, is looked up in its runs row).
_STARTED_RUNS = 10_000


class Telemetry:
    """govflow's metrics. One per process (``Telemetry.default()``); tests may pass their own registry."""

    _default: Telemetry | None = None

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self._started: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self.evidence_unreadable = Counter(
            "govflow_evidence_unreadable",
            "Evidence rows stored under a known kind whose payload does not read as that kind.",
            ["task", "kind"],
            registry=registry,
        )
        self.runs_started = Counter(
            "govflow_runs_started", "Governed runs started.", ["task", "stage", "mode"], registry=registry
        )
        self.runs_finished = Counter(
            "govflow_runs_finished",
            "Governed runs finished, by outcome (published, shadowed, refused, rejected, expired, exception).",
            ["task", "stage", "mode", "outcome"],
            registry=registry,
        )
        self.approval_attempts = Counter(
            "govflow_approval_attempts",
            "Approval and rejection votes, accepted or refused.",
            ["task", "verdict", "result"],
            registry=registry,
        )
        self.approval_wait = Histogram(
            "govflow_approval_wait_seconds",
            "From the policy decision asking for approval to each accepted vote.",
            ["task", "action"],
            buckets=_WAIT_BUCKETS,
            registry=registry,
        )
        self.quality_score = Histogram(
            "govflow_quality_score",
            "Quality scores of proposals.",
            ["task", "metric"],
            buckets=_SCORE_BUCKETS,
            registry=registry,
        )
        self.quality_checks_failed = Counter(
            "govflow_quality_checks_failed", "Proposals failing a quality check.", ["task", "check"], registry=registry
        )
        self.breaches = Counter(
            "govflow_rollout_breaches",
            "Quality-window breaches that stopped a rollout (action: pause or rollback).",
            ["task", "stage", "rule", "action"],
            registry=registry,
        )
        self.pauses = Counter(
            "govflow_rollout_pauses",
            "Rollout pauses (cause: breach or operator).",
            ["task", "cause"],
            registry=registry,
        )
        self.stage_changes = Counter(
            "govflow_rollout_stage_changes",
            "Promotions and rollbacks.",
            ["task", "kind", "to"],
            registry=registry,
        )
        self.scope_refusals = Counter(
            "govflow_scope_refusals",
            "Reads or writes refused because the policy does not grant them.",
            ["task", "system", "resource"],
            registry=registry,
        )
        self.lease_refusals = Counter(
            "govflow_lease_refusals",
            "Live writes refused publish authority by their rollout (paused, stale stage, shadow).",
            ["task"],
            registry=registry,
        )
        self.notifications = Counter(
            "govflow_notification_deliveries",
            "Attempts to announce a pending approval to a webhook (outcome: delivered, failed, abandoned).",
            ["task", "target", "outcome"],
            registry=registry,
        )
        self.evidence_write = Histogram(
            "govflow_evidence_write_seconds",
            "Time to append one batch of evidence (one transaction).",
            ["stream"],
            buckets=_WRITE_BUCKETS,
            registry=registry,
        )

    @classmethod
    def default(cls) -> Telemetry:
        if cls._default is None:
            cls._default = cls()
        return cls._default

    @contextmanager
    def timing_write(self, stream: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.evidence_write.labels(stream).observe(time.perf_counter() - started)

    async def observe(self, store: EvidenceStore, task: str, events: Sequence[EvidenceEvent]) -> None:
        """Count what newly stored ``events`` say. A row that does not read as its kind is counted as
        unreadable (``govflow_evidence_unreadable_total``), never silently skipped."""
        for event in events:
            try:
                await self._observe(store, task, event, parse_event(event.kind, event.payload))
            except (OSError, asyncpg.PostgresError):  # a lookup for a label; the event itself is stored
                _log.warning("metrics for %s %s seq %s skipped: the database is away", event.stream,
                             event.stream_id, event.seq, exc_info=True)  # fmt: skip

    async def _observe(self, store: EvidenceStore, task: str, row: EvidenceEvent, event: Event) -> None:
        match event:
            case UnreadableEvent():
                self.evidence_unreadable.labels(task, event.stored_kind).inc()
            case RunStarted():
                self.runs_started.labels(task, event.stage, event.mode).inc()
                self._started[row.stream_id] = (event.stage, event.mode)
                if len(self._started) > _STARTED_RUNS:
                    self._started.popitem(last=False)
            case RunFinished():
                labels = self._started.pop(row.stream_id, None)
                stage, mode = labels if labels is not None else await self._run_labels(store, row.stream_id)
                self.runs_finished.labels(task, stage, mode, event.outcome).inc()
            case ApprovalAttemptRecord():
                self.approval_attempts.labels(task, event.verdict, "accepted" if event.accepted else "refused").inc()
                if event.accepted:
                    decided = await store.decided_at(row.stream_id, event.action_id)
                    if decided is not None:
                        waited = (row.occurred_at - decided).total_seconds()
                        self.approval_wait.labels(task, event.action_id).observe(max(0.0, waited))
            case QualityScoreRecord():
                self.quality_score.labels(task, event.metric).observe(event.score)
            case QualityCheckFailed():
                self.quality_checks_failed.labels(task, event.check).inc()
            case ScopeRefused():
                self.scope_refusals.labels(task, str(event.system), str(event.resource)).inc()
            case LeaseRefused():
                self.lease_refusals.labels(task).inc()
            case BreachDetected():
                for verdict in event.verdicts:
                    self.breaches.labels(task, event.stage, verdict.rule, event.action).inc()
                if event.action == "pause":
                    self.pauses.labels(task, "breach").inc()
            case Paused():
                self.pauses.labels(task, "operator").inc()
            case NotificationDelivered():
                self.notifications.labels(task, event.target, "delivered").inc()
            case NotificationFailed():
                self.notifications.labels(task, event.target, "failed").inc()
            case NotificationAbandoned():
                self.notifications.labels(task, event.target, "abandoned").inc()
            case Promoted() | RolledBack():
                # The label keeps its values ("promoted", "rollback") for dashboards and alerts already written.
                change = "promoted" if isinstance(event, Promoted) else "rollback"
                self.stage_changes.labels(task, change, event.to).inc()

    @staticmethod
    async def _run_labels(store: EvidenceStore, run_id: str) -> tuple[str, str]:
        run = await store.run(run_id)
        return (run.stage, run.mode) if run else ("unknown", "unknown")
