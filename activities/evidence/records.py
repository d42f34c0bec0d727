"""The run's row (not an event: the runs table), and the report a finished run gives its rollout."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["shadow", "live"]
"""How a run runs: ``shadow`` proposes and records what it would write; ``live`` writes."""


class RunRecord(BaseModel):
    """The row that opens a run (not an event: the runs table). ``run_started`` carries the same facts, and
    these it alone holds: its Temporal execution and the submit's proof."""

    model_config = ConfigDict(frozen=True)
    EVENT_ONLY: ClassVar[frozenset[str]] = frozenset({"temporal_run_id", "submit_signature", "submit_message"})

    run_id: str = Field(min_length=1)
    task: str
    task_version: str
    policy_digest: str
    item_key: str
    requester: str
    stage: str
    mode: Mode
    started_at: datetime
    rollout_id: str | None = None


class RunReport(BaseModel):
    """What a finished run tells its rollout: the quality window's raw material.

    Written into the run's ``run_finished`` evidence; the rollout counts it from there,
    never from a signal's payload (anyone can send a signal).
    """

    model_config = ConfigDict(frozen=True)

    run_id: str
    stage: str
    mode: Mode
    checks_passed: bool
    scores: dict[str, float] = Field(default_factory=dict)
    overridden: bool = False
    error: bool = False
