"""What every evidence event is: a typed row of a chain, which says in words what it records. The kinds
live beside the workflow that writes them (run_events, rollout_events, notify_events, grant_events);
activities/evidence/events.py reads a stored row back into its kind."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from govflow.activities.evidence.chain import Stream


class Event(BaseModel):
    """One evidence event; subclasses name their ``kind``."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    kind: ClassVar[str]
    stream: ClassVar[Stream] = "run"

    def payload(self) -> dict[str, Any]:
        """What is stored (and hashed) for this event."""
        return self.model_dump(mode="json", by_alias=True)

    def describe(self) -> str:
        """One line for this event, in words (``govflow evidence show``); each kind says its own."""
        return f"{self.kind.replace('_', ' ')}: {short(self.payload(), 100)}"


class ProjectedEvent(Event):
    """An event with a projection table of its own; its columns are exactly these fields."""

    table: ClassVar[str]


class OtherEvent(Event):
    """A row of a kind this version does not know (a test's note, a later version's kind)."""

    model_config = ConfigDict(extra="allow")
    kind: ClassVar[str] = "other"


class UnreadableEvent(Event):
    """A row of a known kind whose payload does not fit its model: shown and counted, never guessed at."""

    kind: ClassVar[str] = "unreadable"

    stored_kind: str
    problem: str
    raw: dict[str, Any] = Field(default_factory=dict)

    def describe(self) -> str:
        return f"UNREADABLE {self.stored_kind}: {self.problem}; payload {short(self.raw, 80)}"


def short(value: Any, width: int = 60) -> str:
    """``value`` as text, cut to ``width`` characters (for one line of ``evidence show``)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """What a write changed, field by field."""
    before, after = before or {}, after or {}
    keys = [k for k in after if before.get(k) != after.get(k)]
    return "; ".join(f"{k}: {short(before.get(k), 30)} -> {short(after.get(k), 40)}" for k in keys) or "no change"
