"""Actions: the intended changes a task proposes, and the context a run decides them in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from govflow.policies.digest import canonical_json, digest


class Action(BaseModel):
    """One intended change in a system of record, e.g. ``crm.contact.update(42, {status: ...})``.

    Approvals bind to :meth:`digest`, the sha256 of its canonical JSON: change any
    part of the action and an approval given for it no longer counts.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    action_id: str = Field(min_length=1)
    system: str = Field(min_length=1)
    resource: str = Field(min_length=1)
    operation: str = Field(min_length=1)
    record_id: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _canonical(cls, value: dict[str, Any]) -> dict[str, Any]:
        canonical_json(value)  # an action must have a digest; refuse what cannot
        return value

    @property
    def target(self) -> str:
        """``system.resource.operation``: what a grant or an action rule names."""
        return f"{self.system}.{self.resource}.{self.operation}"

    def digest(self) -> str:
        """The sha256 of the action's canonical JSON: what an approval binds to."""
        return digest(self.model_dump(mode="json"))


class RunContext(BaseModel):
    """What the engine knows of the run when it decides."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    requester: str
    now: datetime
    record: dict[str, Any] | None = Field(
        default=None, description="The record's current values, for grants that filter records."
    )
    reads: dict[str, tuple[dict[str, Any], ...]] = Field(
        default_factory=dict,
        description="The records the run read, by resource: for separation of duties from the data (not_by).",
    )
    window_totals: dict[str, str] = Field(
        default_factory=dict,
        description="By rule: what was already written in its limits' window for this action's group (decimal).",
    )
    failed_checks: tuple[str, ...] = Field(
        default=(), description="The run's quality checks that failed, each with its figures (quality.hold_failed)."
    )
