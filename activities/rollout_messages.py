"""What a rollout's activities take and return, and what it answers runs (admission, leases, controls)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from govflow.activities.evidence.events import Event, RunReport
from govflow.activities.evidence.records import Mode


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class PolicyRequest(_Model):
    task: str
    task_version: str


class BacktestFound(_Model):
    """The backtest a rollout relies on (its chain's id), or why it may not start (rollout.backtest)."""

    stream_id: str = ""
    refusal: str = ""


class RecordRolloutEvidence(_Model):
    rollout_id: str
    task: str
    task_version: str
    seq: int
    at: datetime
    kind: str
    payload: dict[str, Any]


class AdmitRequest(_Model):
    """A run asking its rollout how it may run: the rollout records the admission."""

    run_id: str
    item_key: str
    requested: Mode


class RunAdmission(_Model):
    """How a run runs: the rollout's answer, or that no rollout of its task version runs."""

    rollout_id: str | None
    stage: str
    mode: Mode
    reason: str = ""
    fence_generation: int | None = Field(
        default=None, description="No rollout ran: the generation of the version's fence, read before asking."
    )

    def lacks_rollout(self, requested: Mode, rollout_required: bool) -> bool:
        """A live run the policy's ``rollout.required`` refuses: no rollout runs to admit it."""
        return self.rollout_id is None and requested == "live" and rollout_required


class OutcomeRequest(_Model):
    rollout_id: str
    run_ids: list[str]


class OutcomeAnswer(_Model):
    """A run's outcome as its evidence records it, or why it cannot be counted."""

    run_id: str
    report: RunReport | None = None
    refused: str = ""
    released: str = Field(default="", description="The run ended without a report (Temporal says so): free its slot.")


class RolloutRow(_Model):
    kind: str
    payload: dict[str, Any]
    at: datetime

    @classmethod
    def of(cls, event: Event, at: datetime) -> RolloutRow:
        return cls(kind=event.kind, payload=event.payload(), at=at)


class RecordRolloutBatch(_Model):
    """Rollout events appended at ``seq``, ``seq + 1``, ... in one commit."""

    rollout_id: str
    task: str
    task_version: str
    seq: int
    rows: list[RolloutRow]


class DataRollback(_Model):
    rollout_id: str
    task: str
    task_version: str
    since: datetime | None = None


class FenceRequest(_Model):
    rollout_id: str
    paused: bool
    epoch: int | None = Field(default=None, description="The rollout's stop epoch; None: leave it.")


class LeaseRequest(_Model):
    """A live run asking its rollout for publish authority, right before it writes."""

    run_id: str
    stage: str


class ControlAnswer(_Model):
    """The rollout's answer to a lease or an operator's command."""

    accepted: bool
    reason: str
    stage: str
    paused: bool
    epoch: int = Field(default=0, description="A granted lease: the rollout's stop epoch it holds in.")


def rollout_id_for(task: str, version: str) -> str:
    """The one rollout of a task version: its workflow id."""
    return f"rollout-{task}-v{version}"
