"""Errors of the evidence store."""

from __future__ import annotations

from govflow.policies.errors import GovflowError


class EvidenceError(GovflowError):
    """Base of evidence store errors."""


class MigrationError(EvidenceError):
    """A migration cannot be applied, or an applied one was changed."""


class EvidenceConflictError(EvidenceError):
    """A different event claims a sequence number already taken in a stream."""


class EvidenceGapError(EvidenceError):
    """An event was appended before the event that precedes it."""
