"""Canonical JSON and digests.

Canonical JSON is RFC 8785 (JSON Canonicalization Scheme): sorted keys, no
insignificant whitespace, ECMAScript number formatting. Two documents that mean
the same thing get the same bytes, whatever their key order or spacing, and a
value that went through Postgres ``jsonb`` and back (``1.0`` -> ``1``) still
canonicalizes to the same bytes. Digests are ``sha256`` hex of those bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

from policies.errors import GovflowError


class CanonicalJSONError(GovflowError, ValueError):
    """A value has no canonical JSON form (a huge integer, NaN, a non-string key...)."""


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical bytes of a JSON-compatible value.

    Integers beyond +-2**53 and non-finite floats have no interoperable JSON
    form; they are refused rather than silently rounded.
    """
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise CanonicalJSONError(f"{exc}: send such values as strings (integers must lie within +-2**53)") from None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(value: Any) -> str:
    """``sha256`` hex digest of the canonical JSON of ``value``."""
    return sha256_hex(canonical_json(value))
