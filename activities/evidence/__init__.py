"""The evidence store: migrations, hash-chained events, typed records, verification."""

from __future__ import annotations

from activities.evidence.chain import ChainProblem, EvidenceEvent, VerifyReport, verify_rows
from activities.evidence.errors import (
    EvidenceConflictError,
    EvidenceError,
    EvidenceGapError,
    MigrationError,
)
from activities.evidence.events import (
    ApprovalAttemptRecord,
    PolicyDecisionRecord,
    QualityScoreRecord,
    RunRecord,
    TouchedRecord,
)
from activities.evidence.migrate import MigrationReport, migrate
from activities.evidence.store import AppendResult, EvidenceStore, create_pool

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
