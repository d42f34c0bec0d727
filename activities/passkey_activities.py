"""What a run needs to check a passkey-signed act, read from outside the workflow: the reviewer's passkey
as their evidence chain records it (enrolled, with its public key; not revoked since), where it may sign
(the reviewer console's origin this worker is configured with), and the claim of its signature counter.
The workflow checks the assertion itself (policies/passkeys.py) with what these return, recorded in its
history, so the check replays as it ran."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import asyncpg
from pydantic import BaseModel, ConfigDict
from temporalio import activity

from govflow.activities.common import GovflowActivities, evidence_failure
from govflow.activities.evidence.events import PasskeyEnrolled, PasskeyRevoked, parse_event
from govflow.policies.passkeys import PasskeyCredential


class CredentialRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    reviewer: str
    credential_id: str


class CounterClaim(BaseModel):
    model_config = ConfigDict(frozen=True)

    credential_id: str
    counter: int
    fingerprint: str
    """The assertion's: the same assertion may claim its count again (one touch signing a bulk decision)."""


class CounterAnswer(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    stored: int


# The count moves forward only: past the stored one, or to it again by the assertion that set it.
_CLAIM = """
UPDATE console_credentials SET sign_count = $2, last_assertion = $3
WHERE credential_id = $1 AND (sign_count < $2 OR (sign_count = $2 AND last_assertion = $3))
RETURNING sign_count
"""


class PasskeyActivities(GovflowActivities):
    @activity.defn(name="govflow.passkey_credential")
    async def passkey_credential(self, request: CredentialRequest) -> PasskeyCredential:
        """``request.reviewer``'s passkey ``credential_id`` as their evidence chain has it, and where it may
        sign; ``revoked`` says why it may not (not enrolled for them, revoked, a chain that does not verify)."""
        origins = (self._console,) if self._console else ()
        rp_id = (urlsplit(self._console).hostname or "") if self._console else ""
        try:
            rows = await self._store.events("reviewer", request.reviewer)
            report = await self._store.verify("reviewer", request.reviewer)
        except (OSError, asyncpg.PostgresError) as exc:
            raise evidence_failure(exc) from exc

        def credential(public_key: str = "", revoked: str = "") -> PasskeyCredential:
            return PasskeyCredential(credential_id=request.credential_id, reviewer=request.reviewer,
                                     public_key=public_key, rp_id=rp_id, origins=origins, revoked=revoked)  # fmt: skip

        if not report.ok:
            return credential(revoked=f"{request.reviewer}'s evidence chain does not verify: {report.problems[0]}")
        events: list[Any] = [parse_event(r["kind"], r["payload"]) for r in rows]
        enrolled = next(
            (e for e in events if isinstance(e, PasskeyEnrolled) and e.credential_id == request.credential_id), None
        )
        if enrolled is None:
            return credential(revoked=f"it is not a passkey enrolled for {request.reviewer}")
        if not enrolled.public_key:
            return credential(revoked="it was enrolled before passkeys signed acts: enroll a passkey again")
        for e in events:
            if isinstance(e, PasskeyRevoked) and request.credential_id in e.credential_ids:
                return credential(enrolled.public_key, f"revoked by {e.revoked_by} ({e.reason or 'no reason given'})")
        return credential(enrolled.public_key)

    @activity.defn(name="govflow.passkey_counter")
    async def passkey_counter(self, claim: CounterClaim) -> CounterAnswer:
        """Move the passkey's stored signature counter to ``claim.counter``; refused when that goes back."""
        try:
            async with self._store.pool.acquire() as conn:
                moved = await conn.fetchval(_CLAIM, claim.credential_id, claim.counter, claim.fingerprint)
                if moved is not None:
                    return CounterAnswer(ok=True, stored=int(moved))
                stored = await conn.fetchval(
                    "SELECT sign_count FROM console_credentials WHERE credential_id = $1", claim.credential_id
                )
        except (OSError, asyncpg.PostgresError) as exc:
            raise evidence_failure(exc) from exc
        return CounterAnswer(ok=False, stored=int(stored or 0))

    def all(self) -> list[Any]:
        return [self.passkey_credential, self.passkey_counter]
