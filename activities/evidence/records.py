"""Typed evidence records. Each is stored as a chained run event and projected
into its own table (whose columns are exactly the record's fields)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class RunRecord(BaseModel):
    """The row that opens a run; its fields are also the payload of event 1."""

    model_config = ConfigDict(frozen=True)

    run_id: str = Field(min_length=1)
    task: str
    task_version: str
    policy_digest: str
    item_key: str
    requester: str
    stage: str
    mode: Literal["shadow", "live"]
    started_at: datetime
    rollout_id: str | None = None


class ProjectedRecord(BaseModel):
    """A record with a projection table; ``kind`` is the run event kind."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: ClassVar[str]
    table: ClassVar[str]


class PolicyDecisionRecord(ProjectedRecord):
    kind: ClassVar[str] = "policy_decision"
    table: ClassVar[str] = "policy_decisions"

    action_id: str
    action_digest: str
    policy_digest: str
    decision: Literal["allow", "needs_approval", "deny"]
    rule: str | None = None
    reason: str
    gate: dict[str, Any] | None = None


class ApprovalAttemptRecord(ProjectedRecord):
    kind: ClassVar[str] = "approval_attempt"
    table: ClassVar[str] = "approval_attempts"

    action_id: str
    action_digest: str
    reviewer: str
    verdict: Literal["approve", "reject"]
    accepted: bool
    reason: str
    signed: bool = False
    via: Literal["signal", "update", "cli", "expiry"] = "signal"
    note: str | None = Field(default=None, description="The reviewer's own reason, as sent.")
    signature: str | None = Field(default=None, description="The base64 Ed25519 signature, as sent.")


class TouchedRecord(ProjectedRecord):
    kind: ClassVar[str] = "touched_record"
    table: ClassVar[str] = "touched_records"

    action_id: str
    system: str
    resource: str
    record_id: str
    operation: str
    mode: Literal["shadow", "live"]
    idempotency_key: str
    before_image: dict[str, Any] | None = None
    after_image: dict[str, Any] | None = None


class QualityScoreRecord(ProjectedRecord):
    kind: ClassVar[str] = "quality_score"
    table: ClassVar[str] = "quality_scores"

    metric: str
    score: float
    passed: bool | None = None


PROJECTED: dict[str, type[ProjectedRecord]] = {
    cls.kind: cls for cls in (PolicyDecisionRecord, ApprovalAttemptRecord, TouchedRecord, QualityScoreRecord)
}
