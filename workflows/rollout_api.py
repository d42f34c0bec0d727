"""Inputs, state, signals and answers of RolloutWorkflow."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from govflow.activities.evidence.records import Mode, RunReport
from govflow.activities.rollout_messages import ControlAnswer, LeaseRequest
from govflow.policies import WindowCounts, WindowVerdict, act_message
from govflow.workflows.inputs import Note, PersonName, Token

__all__ = ["ControlAnswer", "LeaseRequest", "RunReport"]


class Breach(BaseModel):
    model_config = ConfigDict(frozen=True)

    stage: str
    action: Literal["pause", "rollback"]
    verdicts: list[WindowVerdict]
    at: datetime


class AdmittedRun(BaseModel):
    model_config = ConfigDict(frozen=True)

    stage: str
    mode: Mode


class RolloutState(BaseModel):
    """Everything a rollout carries across continue-as-new."""

    stage_index: int = 0
    stage_started_at: datetime | None = None
    paused: bool = False
    pause_reason: str = ""
    window: list[RunReport] = Field(default_factory=list, description="Reports of the current stage, newest last.")
    gates: dict[str, WindowCounts] = Field(
        default_factory=dict, description="Per cusum rule: the whole stage's counts and its CUSUM (sequential-gates)."
    )
    runs_in_stage: int = 0
    last_breach: Breach | None = None
    promotion_requested: bool = False
    evidence_seq: int = 1
    leases_granted: int = 0
    leases_refused: int = 0
    admitted: dict[str, AdmittedRun] = Field(
        default_factory=dict, description="Runs this rollout admitted and has not yet counted, oldest first."
    )
    reports_refused: int = 0
    control_seq: int = Field(
        default=0, description="Counts pauses, resumes and stage moves: a signed control names the one it follows."
    )
    fence_epoch: int = Field(
        default=0,
        description="Counts stops (pauses, rollbacks): the epoch a lease is granted in, checked by the fence.",
    )


class RolloutInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    task: str
    task_version: str = "1"
    state: RolloutState | None = None
    history_limit: int = Field(default=8_000, ge=20, description="Continue-as-new past this many events.")


class Control(BaseModel):
    """An operator's command, as one JSON payload: ``{"operator": "omar", "reason": "..."}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    operator: PersonName
    reason: Note = ""
    signature: Token | None = Field(
        default=None, description="base64 Ed25519 over control_message, where the policy requires resume/promote signed"
    )


class RollbackRequest(Control):
    to: Literal["previous", "shadow"] = "previous"
    data: bool = Field(default=False, description="Also undo the rollout's live writes (newest first).")
    since: datetime | None = Field(default=None, description="Only writes at or after this time.")


class ReportPoke(BaseModel):
    """A ``report`` signal: only the run id is read; the outcome comes from the run's evidence."""

    model_config = ConfigDict(frozen=True)

    run_id: Token


class Admission(BaseModel):
    """How a new item runs: the current stage, and live or shadow by a stable hash of its key."""

    model_config = ConfigDict(frozen=True)

    stage: str
    mode: Mode
    live_fraction: float


class RolloutStatus(BaseModel):
    task: str
    task_version: str
    stage: str
    stage_index: int
    live_fraction: float
    paused: bool
    pause_reason: str
    runs_in_stage: int
    verdicts: list[WindowVerdict]
    last_breach: Breach | None
    promotion_requested: bool
    leases_granted: int
    leases_refused: int
    runs_in_flight: int = Field(default=0, description="Admitted runs whose outcome is not counted yet.")
    reports_refused: int = 0
    control_seq: int = 0


def restore_message(rollout_id: str, stage: str, control_seq: int, since: datetime | None) -> bytes:
    """What an operator signs to undo a rollout's live writes (``rollback --data``): the rollout, its stage and
    ``control_seq`` when asked (from its status), and from when."""
    at = since.astimezone(UTC).isoformat(timespec="microseconds") if since else ""
    return act_message("restore", rollout_id, stage=stage, control_seq=str(control_seq), since=at)


def control_message(command: str, rollout_id: str, stage: str, control_seq: int) -> bytes:
    """What an operator signs to resume or promote: the rollout, its stage, and the state it acts on
    (``control_seq`` from the rollout's status), so a signature cannot be replayed after the next move."""
    return act_message(command, rollout_id, stage=stage, control_seq=str(control_seq))
