"""Passkey-signed acts: a WebAuthn assertion whose challenge is the act itself.

The reviewer's device signs a challenge derived from the act's canonical message (the bytes the Ed25519
path signs: run, action digest, verdict) and a single-use nonce. One touch may sign several acts (a bulk
decision): the challenge commits to the list of their messages' sha256 (``acts``), and each act carries
the whole list as its inclusion proof, so each run checks its own act alone.

Pure, no I/O: the run's workflow checks an assertion with the credential its activity read from the
reviewer's evidence chain (:func:`check_assertion`), and ``govflow evidence verify`` re-checks every
accepted one offline with what the evidence recorded. The checks are WebAuthn's (by the ``webauthn``
library): type, challenge, origin, relying-party id hash, user presence, user verification where
required, and the signature over the authenticator data and the client data's hash with the credential's
public key (ES256, EdDSA, RS256). The signature counter is compared by the caller, which holds the count.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from webauthn import verify_authentication_response
from webauthn.helpers import base64url_to_bytes
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, WebAuthnException

from govflow.policies.digest import canonical_json

PURPOSE = "govflow-passkey-v1"
MAX_ACTS = 50
MAX_ASSERTION = 8 * 1024
"""Bytes of an assertion's JSON at most (a browser's is well under 2 KB)."""


def act_leaf(message: bytes) -> str:
    """What a passkey's challenge commits to for one act: the sha256 (hex) of its canonical message."""
    return hashlib.sha256(message).hexdigest()


def challenge(acts: list[str] | tuple[str, ...], nonce: str) -> bytes:
    """The challenge a device signs for ``acts`` (their leaves, in order) and ``nonce``."""
    return hashlib.sha256(canonical_json({"purpose": PURPOSE, "nonce": nonce, "acts": list(acts)})).digest()


class PasskeyProof(BaseModel):
    """A passkey's signature of one or more acts, as the console sends it with each of them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    assertion: dict[str, Any] = Field(description="The browser's PublicKeyCredential, as toJSON() gives it.")
    nonce: str = Field(min_length=16, max_length=128, description="Single-use: part of the challenge.")
    acts: tuple[str, ...] = Field(
        min_length=1, max_length=MAX_ACTS, description="The sha256 (hex) of each act message the touch signed."
    )

    @field_validator("assertion")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(canonical_json(value))
        if size > MAX_ASSERTION:
            raise ValueError(f"the assertion is {size} bytes; at most {MAX_ASSERTION}")
        return value

    @field_validator("acts")
    @classmethod
    def _hex(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for leaf in value:
            if len(leaf) != 64 or any(c not in "0123456789abcdef" for c in leaf):
                raise ValueError("each act is the 64-hex sha256 of its message")
        return value

    @property
    def credential_id(self) -> str:
        found = self.assertion.get("id")
        return found if isinstance(found, str) else ""

    @property
    def fingerprint(self) -> str:
        """What identifies this assertion (a replay of it has the same)."""
        return hashlib.sha256(canonical_json(self.assertion)).hexdigest()


class PasskeyCredential(BaseModel):
    """A reviewer's passkey as the run read it (from the reviewer's evidence chain) and where it may sign."""

    model_config = ConfigDict(frozen=True)

    credential_id: str
    reviewer: str
    public_key: str = Field(description="The COSE public key, base64url, as enrolled.")
    rp_id: str
    origins: tuple[str, ...]
    revoked: str = Field(default="", description="Why it may not sign (revoked, not enrolled...); empty: it may.")


class Checked(BaseModel):
    model_config = ConfigDict(frozen=True)

    problem: str | None
    counter: int = 0
    """The authenticator's signature counter in the assertion (0: it keeps none)."""


def check_assertion(
    proof: PasskeyProof, credential: PasskeyCredential, message: bytes, reviewer: str, require_uv: bool
) -> Checked:
    """Whether ``proof`` is ``reviewer``'s passkey signing the act whose canonical message is ``message``."""
    if credential.revoked:
        return Checked(problem=f"passkey {proof.credential_id[:16]}… may not sign: {credential.revoked}")
    if proof.credential_id != credential.credential_id:
        return Checked(problem="the assertion names another passkey than the one read")
    if credential.reviewer != reviewer:
        return Checked(problem=f"the passkey is {credential.reviewer}'s, not {reviewer}'s")
    if act_leaf(message) not in proof.acts:
        return Checked(problem="the passkey signed other acts than this one (another action, run or verdict)")
    if not credential.origins:
        return Checked(problem="no reviewer console origin is configured where the run checks passkeys")
    try:
        verified = verify_authentication_response(
            credential=proof.assertion, expected_challenge=challenge(proof.acts, proof.nonce),
            expected_rp_id=credential.rp_id, expected_origin=list(credential.origins),
            credential_public_key=base64url_to_bytes(credential.public_key), credential_current_sign_count=0,
            require_user_verification=require_uv,
        )  # fmt: skip
    except InvalidAuthenticationResponse as exc:
        return Checked(problem=f"the passkey's signature does not hold: {exc}")
    except (WebAuthnException, ValueError, KeyError, TypeError, AttributeError) as exc:
        return Checked(problem=f"the passkey's assertion does not read: {type(exc).__name__}: {exc}")
    return Checked(problem=None, counter=verified.new_sign_count)
