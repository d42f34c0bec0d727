"""Policies: the schema, loader and engine that decide what a governed run may do.

Pure Python: no Temporal, no I/O, so workflows can call it deterministically.
"""

from __future__ import annotations

from policies.digest import canonical_json, digest
from policies.errors import GovflowError

__all__ = ["GovflowError", "canonical_json", "digest"]
