"""Signed checkpoints: every stream's head, signed with an Ed25519 key kept outside the database.

The chain catches an edited or deleted row, but someone who can write the database can also
remove a tail and rewind its head, or rewrite a chain consistently with fresh hashes. A checkpoint
taken earlier and kept elsewhere (a file in object storage with retention, a ticket, an email)
catches both: the row at a checkpointed seq must still carry the checkpointed hash.

Pure: building, signing and checking the document. The store reads heads and rows; the CLI
(`govflow evidence checkpoint`, `govflow evidence verify --checkpoint FILE`) does the I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from govflow.activities.evidence.chain import Stream, timestamp_text
from govflow.policies.digest import canonical_json, sha256_hex
from govflow.policies.errors import GovflowError

FORMAT = "govflow-evidence-checkpoint/1"


class CheckpointError(GovflowError):
    """A checkpoint file that cannot be read, or whose signature does not hold."""


class Head(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stream: Stream
    stream_id: str = Field(min_length=1)
    seq: int = Field(ge=1)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")


class Checkpoint(BaseModel):
    """What is signed: the format, when, and every head. The signature covers the RFC 8785
    canonical JSON of these three fields, so any JSON tool can re-check it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str = FORMAT
    taken_at: str
    heads: list[Head]

    def signed_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))


class SignedCheckpoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    checkpoint: Checkpoint
    public_key: str
    signature: str

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.public_key)


def public_text(key: Ed25519PublicKey) -> str:
    """Base64 of the key's 32 raw bytes: the form policies and checkpoints carry."""
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def key_fingerprint(public_key_b64: str) -> str:
    """Short, stable name of a public key: sha256 of its raw bytes, first 16 hex."""
    try:
        return sha256_hex(base64.b64decode(public_key_b64, validate=True))[:16]
    except (binascii.Error, ValueError):
        return "(unreadable key)"


def sign(heads: list[dict[str, Any]], key: Ed25519PrivateKey, taken_at: datetime) -> SignedCheckpoint:
    checkpoint = Checkpoint(
        taken_at=timestamp_text(taken_at),
        heads=[Head(stream=h["stream"], stream_id=h["stream_id"], seq=int(h["seq"]), hash=h["hash"]) for h in heads],
    )
    public = public_text(key.public_key())
    signature = base64.b64encode(key.sign(checkpoint.signed_bytes())).decode()
    return SignedCheckpoint(checkpoint=checkpoint, public_key=public, signature=signature)


def read(text: str, source: str) -> SignedCheckpoint:
    """Parse a checkpoint file; a clear error naming ``source`` if it is not one."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{source}: not JSON (line {exc.lineno}: {exc.msg})") from None
    try:
        signed = SignedCheckpoint.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise CheckpointError(f"{source}: not a govflow checkpoint: {where}: {first['msg']}") from None
    if signed.checkpoint.format != FORMAT:
        raise CheckpointError(f"{source}: format {signed.checkpoint.format!r}; this govflow reads {FORMAT!r}")
    return signed


def check_signature(signed: SignedCheckpoint, trusted: Ed25519PublicKey, source: str) -> None:
    """The checkpoint must be signed by ``trusted``: a file re-signed with another key (say, by
    whoever rewrote the database) is refused, as is any edit of the signed content."""
    trusted_b64 = public_text(trusted)
    if signed.public_key != trusted_b64:
        raise CheckpointError(
            f"{source}: signed by key {signed.fingerprint}, not by the trusted key {key_fingerprint(trusted_b64)}"
        )
    try:
        trusted.verify(base64.b64decode(signed.signature, validate=True), signed.checkpoint.signed_bytes())
    except (InvalidSignature, binascii.Error, ValueError):
        raise CheckpointError(f"{source}: the signature does not match its content: the file was edited") from None


def head_problem(head: Head, found_hash: str | None) -> str | None:
    """Compare one checkpointed head with the row the database holds at that seq now."""
    if found_hash is None:
        return f"{head.stream} {head.stream_id}: row {head.seq} was in the checkpoint and is gone (a tail was removed)"
    if found_hash != head.hash:
        return (
            f"{head.stream} {head.stream_id}: row {head.seq} should carry {head.hash[:12]} "
            f"(checkpoint); the database has {found_hash[:12]}: the chain was rewritten"
        )
    return None
