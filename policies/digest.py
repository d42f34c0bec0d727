"""Canonical JSON and digests.

Canonical JSON is RFC 8785 (JSON Canonicalization Scheme): sorted keys, no
insignificant whitespace, ECMAScript number formatting. Two documents that mean
the same thing get the same bytes, whatever their key order or spacing, and a
value that went through Postgres ``jsonb`` and back (``1.0`` -> ``1``) still
canonicalizes to the same bytes. Digests are ``sha256`` hex of those bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785

from govflow.policies.errors import GovflowError


class CanonicalJSONError(GovflowError, ValueError):
    """A value has no canonical JSON form (a huge integer, NaN, a non-string key...)."""


_INT_LIMIT = 2**53  # rfc8785 refuses integers outside (-2**53, 2**53)


def _plain(value: Any) -> bool:
    """Whether the standard library's JSON encoder writes ``value`` exactly as RFC 8785 does: only dicts
    with ASCII string keys (code-point order is then UTF-16 order), lists, strings, booleans, None,
    integers within +-2**53, and floats that both print as plain decimals (non-integral, 1e-4 <= |x| <
    1e16, where Python's shortest repr and ECMAScript's agree digit for digit)."""
    stack = [value]
    while stack:
        v = stack.pop()
        kind = type(v)
        if kind is str or kind is bool or v is None:
            continue
        if kind is int:
            if -_INT_LIMIT < v < _INT_LIMIT:
                continue
            return False
        if kind is float:
            if v.is_integer() or not 1e-4 <= abs(v) < 1e16:  # also false for NaN and infinities
                return False
            continue
        if kind is dict:
            for k, x in v.items():
                if type(k) is not str or not k.isascii():
                    return False
                stack.append(x)
            continue
        if kind is list or kind is tuple:
            stack.extend(v)
            continue
        return False
    return True


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical bytes of a JSON-compatible value.

    Integers beyond +-2**53 and non-finite floats have no interoperable JSON
    form; they are refused rather than silently rounded. Values the standard
    library's C encoder writes identically (see ``_plain``; checked against
    rfc8785 by a property test) take that path: hashing evidence is most of
    what verifying it costs.
    """
    if _plain(value):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: rfc8785 refuses it, with its own message
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise CanonicalJSONError(f"{exc}: send such values as strings (integers must lie within +-2**53)") from None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(value: Any) -> str:
    """``sha256`` hex digest of the canonical JSON of ``value``."""
    return sha256_hex(canonical_json(value))
