"""What a run announces about its pending approvals, and what a delivery attempt answers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Transition = Literal["waiting", "escalated", "decided"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class AnnouncedAction(_Model):
    """One action of the run, as a reviewer needs it to decide (and the command to do so)."""

    action_id: str
    target: str
    record_id: str | None = None
    digest: str
    rule: str
    risk: str
    quorum: int
    approved_by: list[str] = Field(default_factory=list)
    eligible: list[str] = Field(default_factory=list)
    expires_at: datetime
    signature_required: bool = False
    status: str = Field(description="open while it waits; approved, rejected or expired once decided.")


class Announcement(_Model):
    """One message to one target about one transition of one run."""

    notification_id: str = Field(description="The delivery workflow's id: one chain, and the message's id.")
    run_id: str
    task: str
    task_version: str
    requester: str
    transition: Transition
    target: str
    at: datetime
    actions: list[AnnouncedAction]


class DeliveryAttempt(_Model):
    announcement: Announcement
    attempt: int = Field(ge=1)
    seq: int = Field(ge=1, description="Where this attempt's evidence goes in the notification's chain.")
    retry_in_s: float | None = Field(default=None, description="The wait before the next attempt, if it fails.")


class DeliveryResult(_Model):
    delivered: bool
    next_seq: int
    detail: str = ""


class Abandon(_Model):
    announcement: Announcement
    attempts: int
    seq: int
    detail: str
