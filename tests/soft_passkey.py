"""A software passkey for tests without a browser: it makes WebAuthn assertions the way an authenticator
does (authenticator data, client data, an ES256 or EdDSA signature over both), so the checks of
policies/passkeys.py can be driven case by case. The browser tests use Chromium's virtual authenticator."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from webauthn.helpers import bytes_to_base64url

from govflow.policies.passkeys import PasskeyCredential, PasskeyProof, act_leaf, challenge


@dataclass
class SoftPasskey:
    reviewer: str
    rp_id: str = "localhost"
    origin: str = "http://localhost:8280"
    algorithm: str = "ES256"
    counter: int = 0
    """0: keeps no counter; else it goes up by one with each assertion."""
    credential_id: str = field(default_factory=lambda: bytes_to_base64url(secrets.token_bytes(16)))

    def __post_init__(self) -> None:
        self._ec = ec.generate_private_key(ec.SECP256R1()) if self.algorithm == "ES256" else None
        self._ed = Ed25519PrivateKey.generate() if self.algorithm == "EdDSA" else None

    @property
    def public_key(self) -> str:
        """The COSE public key, base64url, as enrollment records it."""
        if self._ec is not None:
            numbers = self._ec.public_key().public_numbers()
            cose = {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        else:
            assert self._ed is not None
            cose = {1: 1, 3: -8, -1: 6, -2: self._ed.public_key().public_bytes_raw()}
        return bytes_to_base64url(cbor2.dumps(cose))

    def credential(self, **changes: Any) -> PasskeyCredential:
        values: dict[str, Any] = {
            "credential_id": self.credential_id, "reviewer": self.reviewer, "public_key": self.public_key,
            "rp_id": self.rp_id, "origins": (self.origin,),
        }  # fmt: skip
        return PasskeyCredential(**{**values, **changes})

    def sign(self, messages: list[bytes], *, origin: str | None = None, verified: bool = True,
             rp_id: str | None = None, nonce: str | None = None) -> PasskeyProof:  # fmt: skip
        """A proof of one touch signing ``messages`` (the acts' canonical messages)."""
        acts = [act_leaf(m) for m in messages]
        nonce = nonce or secrets.token_urlsafe(24)
        client_data = json.dumps({"type": "webauthn.get", "challenge": bytes_to_base64url(challenge(acts, nonce)),
                                  "origin": origin or self.origin, "crossOrigin": False}).encode()  # fmt: skip
        if self.counter:
            self.counter += 1
        flags = 0x01 | (0x04 if verified else 0)
        auth_data = (
            hashlib.sha256((rp_id or self.rp_id).encode()).digest() + bytes([flags]) + self.counter.to_bytes(4, "big")
        )
        signed = auth_data + hashlib.sha256(client_data).digest()
        if self._ec is not None:
            signature = self._ec.sign(signed, ec.ECDSA(hashes.SHA256()))
        else:
            assert self._ed is not None
            signature = self._ed.sign(signed)
        assertion = {
            "id": self.credential_id, "rawId": self.credential_id, "type": "public-key",
            "response": {"clientDataJSON": bytes_to_base64url(client_data),
                         "authenticatorData": bytes_to_base64url(auth_data),
                         "signature": bytes_to_base64url(signature), "userHandle": None},
            "clientExtensionResults": {}, "authenticatorAttachment": "platform",
        }  # fmt: skip
        return PasskeyProof(assertion=assertion, nonce=nonce, acts=tuple(acts))
