"""Policies as evidence (one chain per policy version: stream ``policy``, the policy's digest): its text
once, then the first use by each task version that ran under it; each with its line for `evidence show`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from govflow.activities.evidence.chain import Stream
from govflow.activities.evidence.event import Event


class PolicyEvent(Event):
    stream: ClassVar[Stream] = "policy"


class PolicyRecorded(PolicyEvent):
    """A policy version's text: the canonical JSON whose sha256 is ``digest`` (re-checkable offline), with
    the people, roles and public keys that were in force under it."""

    kind: ClassVar[str] = "policy_recorded"

    digest: str
    name: str
    version: int
    text: str = Field(description="The policy's canonical JSON (RFC 8785): sha256 of its UTF-8 bytes is digest.")
    people: list[dict[str, Any]] = Field(default_factory=list, description="id, roles, public_key of each person.")

    def describe(self) -> str:
        return f"policy {self.name} v{self.version} recorded: digest {self.digest[:12]}, {len(self.people)} people"


class PolicyUsed(PolicyEvent):
    """The first run of a task version under this policy version (each worker records it once)."""

    kind: ClassVar[str] = "policy_used"

    task: str
    task_version: str
    first_run: str
    first_used_at: datetime

    def describe(self) -> str:
        at = self.first_used_at.isoformat()
        return f"first used by {self.task} v{self.task_version}: run {self.first_run} at {at}"
