"""Ed25519 signatures of human acts: the bytes a person signs for each act, and whether a signature holds.
Pure (no I/O); passkey-signed acts sign the same bytes (policies/passkeys.py)."""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from govflow.policies.digest import canonical_json
from govflow.policies.model import Policy, SignedAct


def signing_message(run_id: str, action_digest: str, verdict: str) -> bytes:
    """The bytes a reviewer signs: bound to the run, the exact action and the verdict."""
    return canonical_json(
        {
            "purpose": "govflow-approval-v1",
            "run_id": run_id,
            "action_digest": action_digest,
            "verdict": verdict,
        }
    )


def act_message(act: str, subject: str, **bound: str) -> bytes:
    """The bytes a person signs for a human act other than a vote: the act, the run or rollout it
    is for, and what pins it to one moment of it (so a signature cannot be replayed later)."""
    return canonical_json({"purpose": f"govflow-{act}-v1", "subject": subject, **bound})


def signed_act_problem(
    policy: Policy, act: SignedAct, person_id: str, signature: str | None, message: bytes
) -> str | None:
    """Why ``act`` by ``person_id`` is refused for its signature, or None. Only where the policy
    requires the act signed (``identity.signed``)."""
    if not policy.signs(act):
        return None
    return signature_problem(policy, act, person_id, signature, message)


def signature_problem(policy: Policy, act: str, person_id: str, signature: str | None, message: bytes) -> str | None:
    """Why ``signature`` is not ``person_id``'s Ed25519 signature of ``message`` (an ``act``), or None."""
    if not signature:
        return (
            f"the policy requires a signed {act}: sign it with {person_id}'s Ed25519 key "
            "(the CLI's --key, or a key file in GOVFLOW_KEYS_DIR)"
        )
    person = policy.person(person_id)
    if person is None:
        return f"{person_id!r} is not in the policy's reviewers directory, so no signature can be checked"
    if person.public_key is None:
        return f"{person_id} has no public key in the policy, so no signature can be checked"
    try:
        raw = base64.b64decode(signature, validate=True)
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(person.public_key))
        key.verify(raw, message)
    except (binascii.Error, ValueError):
        return "the signature is not valid base64 Ed25519"
    except InvalidSignature:
        return f"the signature does not verify with {person_id}'s public key for this {act}"
    return None


def vote_signature_problem(
    public_key: str | None, reviewer: str, signature_b64: str | None, action_digest: str, verdict: str, run_id: str
) -> str | None:
    """Why ``signature_b64`` is not ``reviewer``'s Ed25519 signature of their vote, or None."""
    if public_key is None:
        return f"{reviewer} has no public key in the policy, so no signature can be checked"
    try:
        signature = base64.b64decode(signature_b64 or "", validate=True)
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
    except (binascii.Error, ValueError):
        return "the signature is not valid base64 Ed25519"
    message = signing_message(run_id, action_digest, verdict)
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return f"the signature does not verify with {reviewer}'s public key for this action"
    return None
