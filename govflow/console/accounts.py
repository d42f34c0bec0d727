"""The console's accounts, in Postgres so that every replica shares them: one-time enrollment links,
passkeys, single-use WebAuthn challenges and sessions (migration 0011). Secrets are kept as their
sha256; each enrollment link issued, passkey enrolled or revoked is also a row of the reviewer's evidence
chain (stream ``reviewer``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg
from webauthn.helpers import bytes_to_base64url

from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence.chain import EvidenceEvent
from govflow.activities.evidence.failures import EvidenceConflictError
from govflow.activities.evidence.reviewer_events import (
    EnrollmentIssued,
    PasskeyEnrolled,
    PasskeyRevoked,
    ReviewerEvent,
    SignedIn,
)
from govflow.policies.errors import GovflowError

Purpose = Literal["enroll", "signin"]
CHALLENGE_TTL = timedelta(minutes=5)


class AccountError(GovflowError):
    """An act on an account the console refuses: it names what is wrong, and nothing is recorded."""


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def now() -> datetime:
    return datetime.now(UTC)


def session_id(token: str) -> str:
    """A session's public id (what evidence names): the first 16 hex of its token's sha256."""
    return sha256(token)[:16]


@dataclass(frozen=True)
class Session:
    reviewer: str
    credential_id: str
    csrf: str
    expires_at: datetime
    id: str


@dataclass(frozen=True)
class Credential:
    credential_id: str
    reviewer: str
    public_key: bytes
    sign_count: int


class Accounts:
    """The console's shared state, over the evidence database's pool."""

    def __init__(self, store: EvidenceStore) -> None:
        self.store = store
        self._pool: asyncpg.Pool = store.pool

    async def record(self, reviewer: str, event: ReviewerEvent) -> None:
        """Append ``event`` to the reviewer's chain; two replicas racing for a seq retry on the next one."""
        for _ in range(20):
            seq = await self.store.next_seq("reviewer", reviewer)
            row = EvidenceEvent(stream="reviewer", stream_id=reviewer, seq=seq, kind=event.kind, occurred_at=now(),
                                payload=event.payload())  # fmt: skip
            try:
                await self.store.append_many([(row, None)])
                return
            except EvidenceConflictError:
                continue
        raise AccountError(f"could not record {event.kind} for {reviewer}: its chain kept moving")

    # --- enrollment links -----------------------------------------------------------------------------

    async def issue_enrollment(self, reviewer: str, issued_by: str, ttl: timedelta) -> tuple[str, datetime]:
        """A one-time link token for ``reviewer`` (returned once, stored as its hash), and when it expires."""
        token, at = new_secret(), now()
        expires = at + ttl
        await self._pool.execute(
            "INSERT INTO console_enrollments (token_sha256, reviewer, issued_by, issued_at, expires_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            sha256(token), reviewer, issued_by, at, expires,
        )  # fmt: skip
        await self.record(reviewer, EnrollmentIssued(reviewer=reviewer, issued_by=issued_by, expires_at=expires))
        return token, expires

    async def enrollment(self, token: str) -> str:
        """The reviewer a link enrolls; an error naming why when it is unknown, used or expired."""
        row = await self._pool.fetchrow(
            "SELECT reviewer, expires_at, used_at FROM console_enrollments WHERE token_sha256 = $1", sha256(token)
        )
        if row is None:
            raise AccountError("this enrollment link is not one govflow issued: ask an operator for a new one")
        if row["used_at"] is not None:
            raise AccountError("this enrollment link was used already: each link enrolls one passkey, once")
        if row["expires_at"] <= now():
            raise AccountError("this enrollment link has expired: ask an operator for a new one")
        return str(row["reviewer"])

    # --- challenges -----------------------------------------------------------------------------------

    async def put_challenge(self, ceremony: str, purpose: Purpose, challenge: bytes, enrollment: str | None) -> None:
        await self._pool.execute(
            "INSERT INTO console_challenges (ceremony, purpose, challenge, enrollment, expires_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            ceremony, purpose, challenge, enrollment, now() + CHALLENGE_TTL,
        )  # fmt: skip

    async def take_challenge(self, ceremony: str, purpose: Purpose) -> tuple[bytes, str | None]:
        """The ceremony's challenge, used up now (a second answer to it is refused)."""
        row = await self._pool.fetchrow(
            "UPDATE console_challenges SET used_at = now() WHERE ceremony = $1 AND purpose = $2 "
            "AND used_at IS NULL AND expires_at > now() RETURNING challenge, enrollment",
            ceremony, purpose,
        )  # fmt: skip
        if row is None:
            raise AccountError("this sign-in attempt is unknown, used or expired: start again")
        return bytes(row["challenge"]), row["enrollment"]

    # --- passkeys -------------------------------------------------------------------------------------

    async def enroll(self, token: str, credential_id: str, public_key: bytes, sign_count: int, origin: str) -> str:
        """Store a verified passkey and use the link up, in one transaction; returns the reviewer."""
        async with self._pool.acquire() as conn, conn.transaction():
            reviewer = await conn.fetchval(
                "UPDATE console_enrollments SET used_at = now() WHERE token_sha256 = $1 AND used_at IS NULL "
                "AND expires_at > now() RETURNING reviewer",
                sha256(token),
            )
            if reviewer is None:
                raise AccountError("this enrollment link was used or has expired meanwhile: ask for a new one")
            await conn.execute(
                "INSERT INTO console_credentials (credential_id, reviewer, public_key, sign_count, enrolled_at) "
                "VALUES ($1, $2, $3, $4, now())",
                credential_id, reviewer, public_key, sign_count,
            )  # fmt: skip
        enrolled = PasskeyEnrolled(reviewer=reviewer, credential_id=credential_id, origin=origin,
                                   public_key=bytes_to_base64url(public_key))  # fmt: skip
        await self.record(reviewer, enrolled)
        return str(reviewer)

    async def credential(self, credential_id: str) -> Credential:
        row = await self._pool.fetchrow(
            "SELECT reviewer, public_key, sign_count, revoked_at FROM console_credentials WHERE credential_id = $1",
            credential_id,
        )
        if row is None:
            raise AccountError("this passkey is not enrolled here: enroll it with a link from an operator")
        if row["revoked_at"] is not None:
            raise AccountError("this passkey was revoked: ask an operator for a new enrollment link")
        return Credential(credential_id, str(row["reviewer"]), bytes(row["public_key"]), int(row["sign_count"]))

    async def signed_in(self, credential_id: str, sign_count: int) -> None:
        await self._pool.execute(
            "UPDATE console_credentials SET sign_count = $2 WHERE credential_id = $1", credential_id, sign_count
        )

    async def revoke(self, reviewer: str, revoked_by: str, reason: str) -> list[str]:
        """Revoke every passkey of ``reviewer`` and end their sessions; returns the credential ids."""
        async with self._pool.acquire() as conn, conn.transaction():
            ids = [
                str(r["credential_id"])
                for r in await conn.fetch(
                    "UPDATE console_credentials SET revoked_at = now() WHERE reviewer = $1 AND revoked_at IS NULL "
                    "RETURNING credential_id",
                    reviewer,
                )
            ]
            await conn.execute(
                "UPDATE console_sessions SET ended_at = now() WHERE reviewer = $1 AND ended_at IS NULL", reviewer
            )
        if not ids:
            raise AccountError(f"{reviewer} has no passkey to revoke")
        await self.record(
            reviewer, PasskeyRevoked(reviewer=reviewer, credential_ids=ids, revoked_by=revoked_by, reason=reason)
        )
        return ids

    async def reviewers(self) -> list[dict[str, Any]]:
        """Each enrolled reviewer: passkeys active and revoked, last enrollment."""
        rows = await self._pool.fetch(
            "SELECT reviewer, count(*) FILTER (WHERE revoked_at IS NULL) AS active, "
            "count(*) FILTER (WHERE revoked_at IS NOT NULL) AS revoked, max(enrolled_at) AS enrolled_at "
            "FROM console_credentials GROUP BY reviewer ORDER BY reviewer"
        )
        return [dict(r) for r in rows]

    # --- sessions -------------------------------------------------------------------------------------

    async def start_session(self, reviewer: str, credential_id: str, ttl: timedelta) -> tuple[str, Session]:
        """A session for ``reviewer``, signed in with ``credential_id``: its token (for the cookie, returned
        once, stored as its hash), and a signed_in row in the reviewer's chain naming the session's id."""
        token = new_secret()
        session = Session(reviewer, credential_id, new_secret(), now() + ttl, session_id(token))
        await self._pool.execute(
            "INSERT INTO console_sessions (token_sha256, reviewer, credential_id, csrf, created_at, expires_at) "
            "VALUES ($1, $2, $3, $4, now(), $5)",
            sha256(token), reviewer, credential_id, session.csrf, session.expires_at,
        )  # fmt: skip
        await self.record(reviewer, SignedIn(reviewer=reviewer, credential_id=credential_id, session=session.id,
                                             expires_at=session.expires_at))  # fmt: skip
        return token, session

    async def session(self, token: str) -> Session | None:
        """The live session ``token`` opens: not ended, not expired, its passkey not revoked."""
        row = await self._pool.fetchrow(
            "SELECT s.reviewer, s.credential_id, s.csrf, s.expires_at FROM console_sessions s "
            "JOIN console_credentials c USING (credential_id) WHERE s.token_sha256 = $1 AND s.ended_at IS NULL "
            "AND s.expires_at > now() AND c.revoked_at IS NULL",
            sha256(token),
        )
        if row is None:
            return None
        return Session(str(row["reviewer"]), str(row["credential_id"]), str(row["csrf"]), row["expires_at"],
                       session_id(token))  # fmt: skip

    async def end_session(self, token: str) -> None:
        await self._pool.execute(
            "UPDATE console_sessions SET ended_at = now() WHERE token_sha256 = $1 AND ended_at IS NULL", sha256(token)
        )
