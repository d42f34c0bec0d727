"""A notification's evidence kinds (one chain per message: its delivery workflow's id), each with its line
for `evidence show`."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from govflow.activities.evidence.chain import Stream
from govflow.activities.evidence.event import Event


class NotificationEvent(Event):
    stream: ClassVar[Stream] = "notification"


class NotificationRequested(NotificationEvent):
    """What is announced, to which target, for which run: the body sent (and signed) on every attempt."""

    kind: ClassVar[str] = "notification_requested"

    run_id: str
    task: str
    transition: Literal["waiting", "escalated", "decided"]
    target: str
    url: str
    body_sha256: str
    actions: list[str] = Field(default_factory=list)

    def describe(self) -> str:
        actions = ", ".join(self.actions)
        return f"announce to {self.target} that run {self.run_id} is {self.transition}: {actions} ({self.url})"


class NotificationDelivered(NotificationEvent):
    kind: ClassVar[str] = "notification_delivered"

    target: str
    attempt: int
    status: int
    run_id: str = ""

    def describe(self) -> str:
        return f"delivered to {self.target} on attempt {self.attempt} (HTTP {self.status})"


class NotificationFailed(NotificationEvent):
    """One attempt that did not deliver; the next waits ``retry_in_s``."""

    kind: ClassVar[str] = "notification_failed"

    target: str
    attempt: int
    detail: str
    status: int | None = None
    retry_in_s: float | None = None
    run_id: str = ""

    def describe(self) -> str:
        retry = f"; next attempt in {self.retry_in_s:.0f} s" if self.retry_in_s is not None else ""
        return f"attempt {self.attempt} to {self.target} FAILED: {self.detail}{retry}"


class NotificationAbandoned(NotificationEvent):
    kind: ClassVar[str] = "notification_abandoned"

    target: str
    attempts: int
    detail: str
    run_id: str = ""

    def describe(self) -> str:
        return f"GAVE UP announcing to {self.target} after {self.attempts} attempts: {self.detail}"
