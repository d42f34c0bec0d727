"""The evidence store: migrations, hash-chained events, typed records, verification."""

from __future__ import annotations

from govflow.activities.evidence.chain import ChainProblem, EvidenceEvent, VerifyReport, verify_rows
from govflow.activities.evidence.events import (
    ApprovalAttemptRecord,
    PolicyDecisionRecord,
    QualityScoreRecord,
    RunRecord,
    TouchedRecord,
)
from govflow.activities.evidence.failures import (
    EvidenceConflictError,
    EvidenceError,
    EvidenceGapError,
    MigrationError,
)
from govflow.activities.evidence.migrate import MigrationReport, migrate
from govflow.activities.evidence.pool import create_pool
from govflow.activities.evidence.store import AppendResult, EvidenceStore

__all__ = [
    "AppendResult",
    "ApprovalAttemptRecord",
    "ChainProblem",
    "EvidenceConflictError",
    "EvidenceError",
    "EvidenceEvent",
    "EvidenceGapError",
    "EvidenceStore",
    "MigrationError",
    "MigrationReport",
    "PolicyDecisionRecord",
    "QualityScoreRecord",
    "RunRecord",
    "TouchedRecord",
    "VerifyReport",
    "create_pool",
    "migrate",
    "verify_rows",
]
