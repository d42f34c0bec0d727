"""A standing approval's evidence kinds (one chain per grant: its workflow's id), each with its line for
`evidence show`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from govflow.activities.evidence.chain import Stream
from govflow.activities.evidence.event import Event, short


class GrantEvent(Event):
    stream: ClassVar[Stream] = "grant"


class GrantProposed(GrantEvent):
    kind: ClassVar[str] = "grant_proposed"

    task: str
    task_version: str
    rule: str
    match: dict[str, Any]
    max_uses: int
    expires_at: datetime
    proposed_by: str
    reason: str = ""
    quorum: int = 1

    def describe(self) -> str:
        return (f"{self.proposed_by} proposed a standing approval for rule {self.rule} of {self.task} "
                f"v{self.task_version}: "
                f"match {short(self.match, 60)}, at most {self.max_uses} uses, until {self.expires_at.isoformat()}; "
                f"needs {self.quorum} granter(s)")  # fmt: skip


class GrantAct(GrantEvent):
    """One person's act on a grant (grant or revoke), accepted or refused, as sent."""

    kind: ClassVar[str] = "grant_act"

    person: str
    act: Literal["grant", "revoke"]
    accepted: bool
    reason: str
    signed: bool = False
    signature: str | None = None
    note: str = ""

    def describe(self) -> str:
        signed = ", signed" if self.signed else ""
        return f"{self.person} {self.act}{signed}: {'accepted' if self.accepted else 'REFUSED'} ({self.reason})"


class GrantActivated(GrantEvent):
    kind: ClassVar[str] = "grant_activated"

    granted_by: list[str]

    def describe(self) -> str:
        return f"active: granted by {', '.join(self.granted_by)}"


class GrantEnded(GrantEvent):
    kind: ClassVar[str] = "grant_ended"

    status: Literal["revoked", "expired", "refused"]
    by: str = ""
    reason: str = ""

    def describe(self) -> str:
        return (
            f"ended: {self.status}"
            + (f" by {self.by}" if self.by else "")
            + (f": {self.reason}" if self.reason else "")
        )
