"""Signatures in a run's evidence, re-checked offline by ``evidence verify``: each accepted passkey-signed
vote's assertion against the act it approves (the run, the action digest, the verdict), with the
credential the run read, and that credential against the passkey its reviewer's own chain enrolled. A
chain recomputed after an edit still verifies hash by hash; a signature does not survive the edit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from pydantic import ValidationError

from govflow.activities.evidence.chain import ChainProblem
from govflow.policies.passkeys import PasskeyCredential, PasskeyProof, check_assertion
from govflow.policies.signing import signing_message

Enrolled = Callable[[str], Awaitable[dict[str, str]]]
"""A reviewer's enrolled passkeys as their chain records them: credential id -> public key."""


def enrolled_from(pool: asyncpg.Pool) -> Enrolled:
    """Read a reviewer's enrolled passkeys from their chain (stream ``reviewer``) in ``pool``'s database."""

    async def enrolled(reviewer: str) -> dict[str, str]:
        rows = await pool.fetch(
            "SELECT payload FROM evidence_events WHERE stream = 'reviewer' AND stream_id = $1 "
            "AND kind = 'passkey_enrolled'",
            reviewer,
        )
        return {str(r["payload"]["credential_id"]): str(r["payload"].get("public_key", "")) for r in rows}

    return enrolled


async def passkey_problems(run_id: str, rows: Sequence[dict[str, Any]], enrolled: Enrolled) -> list[ChainProblem]:
    problems: list[ChainProblem] = []
    keys: dict[str, dict[str, str]] = {}
    for row in rows:
        payload = row["payload"]
        if row["kind"] != "approval_attempt" or not payload.get("accepted") or not payload.get("passkey"):
            continue
        seq, reviewer = int(row["seq"]), str(payload.get("reviewer", ""))
        try:
            proof = PasskeyProof.model_validate(payload["passkey"]["proof"])
            credential = PasskeyCredential.model_validate(payload["passkey"]["credential"])
            require_uv = bool(payload["passkey"]["user_verification_required"])
        except (KeyError, TypeError, ValidationError) as exc:
            problems.append(ChainProblem(seq=seq, problem=f"approval_attempt {seq}: its passkey does not read: {exc}"))
            continue
        message = signing_message(run_id, str(payload.get("action_digest", "")), str(payload.get("verdict", "")))
        checked = check_assertion(proof, credential, message, reviewer, require_uv)
        if checked.problem is not None:
            why = f"{reviewer}'s passkey signature does not verify: {checked.problem}"
            problems.append(ChainProblem(seq=seq, problem=f"approval_attempt {seq}: {why}"))
            continue
        if reviewer not in keys:
            keys[reviewer] = await enrolled(reviewer)
        if keys[reviewer].get(credential.credential_id) != credential.public_key:
            problems.append(ChainProblem(
                seq=seq, problem=f"approval_attempt {seq}: its passkey is not one {reviewer}'s chain enrolled",
            ))  # fmt: skip
    return problems
