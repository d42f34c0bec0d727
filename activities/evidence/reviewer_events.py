"""A reviewer's passkeys (one chain per reviewer: stream ``reviewer``, the reviewer's id): each enrollment
link issued, each passkey enrolled, each revoked; each with its line for `evidence show`."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from govflow.activities.evidence.chain import Stream
from govflow.activities.evidence.event import Event


class ReviewerEvent(Event):
    stream: ClassVar[Stream] = "reviewer"


class EnrollmentIssued(ReviewerEvent):
    kind: ClassVar[str] = "enrollment_issued"

    reviewer: str
    issued_by: str
    expires_at: datetime

    def describe(self) -> str:
        return (
            f"{self.issued_by} issued {self.reviewer} a one-time enrollment link, until {self.expires_at.isoformat()}"
        )


class PasskeyEnrolled(ReviewerEvent):
    kind: ClassVar[str] = "passkey_enrolled"

    reviewer: str
    credential_id: str
    origin: str
    public_key: str = Field(default="", description="The COSE public key, base64url: what checks its signatures.")

    def describe(self) -> str:
        return f"{self.reviewer} enrolled passkey {self.credential_id[:16]}… at {self.origin}"


class PasskeyRevoked(ReviewerEvent):
    kind: ClassVar[str] = "passkey_revoked"

    reviewer: str
    credential_ids: list[str]
    revoked_by: str
    reason: str = ""

    def describe(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"{self.revoked_by} revoked {len(self.credential_ids)} passkey(s) of {self.reviewer}{why}"


class SignedIn(ReviewerEvent):
    """A console session started with a passkey (enrolling signs in too): the session's id is what an act
    sent from it names (``approval_attempt.session``)."""

    kind: ClassVar[str] = "signed_in"

    reviewer: str
    credential_id: str
    session: str
    expires_at: datetime

    def describe(self) -> str:
        return (
            f"{self.reviewer} signed in to the console with passkey {self.credential_id[:16]}…: session "
            f"{self.session}, until {self.expires_at.isoformat()}"
        )
