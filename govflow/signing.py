"""Ed25519 keys from files, for the people who sign: reviewers, operators, auditors.

A private key file is PEM (``openssl genpkey -algorithm ed25519``) or base64 of its 32 raw bytes;
``govflow keys new`` writes one and prints the public key a policy (or a checkpoint verifier)
needs. Every problem is a :class:`GovflowError` that names the file, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from govflow.activities.evidence.checkpoint import public_text
from govflow.policies.errors import GovflowError


def load_signing_key(path: str, option: str = "--key") -> Ed25519PrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise GovflowError(f"{option} {path}: cannot read: {exc.strerror}") from None
    if b"BEGIN" in data:
        try:
            key = load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise GovflowError(f"{option} {path}: not a readable PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise GovflowError(f"{option} {path}: not an Ed25519 private key")
        return key
    try:
        raw = base64.b64decode(data.strip(), validate=True)
        return Ed25519PrivateKey.from_private_bytes(raw)
    except (binascii.Error, ValueError):
        raise GovflowError(f"{option} {path}: expected a PEM Ed25519 key or base64 of 32 raw bytes") from None


def load_public_key(value: str, option: str = "--public-key") -> Ed25519PublicKey:
    """A public key given inline (base64 of 32 bytes) or as a file: a PEM public key, base64 of the
    32 public bytes, or a private key file (its public half is taken)."""
    text: str | bytes = value
    if not _looks_like_key(value):
        try:
            text = Path(value).read_bytes()
        except OSError as exc:
            raise GovflowError(
                f"{option} {value}: neither base64 of a 32-byte key nor a readable file ({exc.strerror})"
            ) from None
    data = text.encode() if isinstance(text, str) else text
    if b"PRIVATE KEY" in data:
        return load_signing_key(value, option).public_key()
    if b"BEGIN" in data:
        try:
            key = load_pem_public_key(data)
        except ValueError as exc:
            raise GovflowError(f"{option} {value}: not a readable PEM public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise GovflowError(f"{option} {value}: not an Ed25519 public key")
        return key
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(data.strip(), validate=True))
    except (binascii.Error, ValueError):
        raise GovflowError(f"{option} {value}: expected base64 of a 32-byte Ed25519 key, or a key file") from None


def _looks_like_key(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def new_key(path: Path) -> str:
    """Write a new private key as PEM (mode 0600, never over an existing file; PEM so a key file is
    never mistaken for a public key, which is also base64 of 32 bytes); return its public key."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise GovflowError(f"{path}: exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise GovflowError(f"{path}: cannot create: {exc.strerror}") from None
    with os.fdopen(fd, "w") as out:
        out.write(pem)
    return public_text(key.public_key())


def key_for(person: str, explicit: str | None, keys_dir: Path | None) -> Ed25519PrivateKey | None:
    """The key to sign ``person``'s act with: ``explicit`` (a --key file), else ``keys_dir/<person>.pem``
    (GOVFLOW_KEYS_DIR) if it exists, else None (the act goes unsigned; a policy may refuse it)."""
    if explicit:
        return load_signing_key(explicit)
    if keys_dir is not None:
        for name in (f"{person}.pem", f"{person}.key"):
            path = keys_dir / name
            if path.is_file():
                return load_signing_key(str(path), "GOVFLOW_KEYS_DIR")
    return None


def sign(key: Ed25519PrivateKey | None, message: bytes) -> str | None:
    return None if key is None else base64.b64encode(key.sign(message)).decode()
