"""Activities that write evidence, for workflows."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.evidence import (
    EvidenceConflictError,
    EvidenceEvent,
    EvidenceGapError,
    EvidenceStore,
)


class EvidenceActivities:
    """Evidence appends as activities; idempotent, so Temporal may retry them freely."""

    def __init__(self, store: EvidenceStore) -> None:
        self._store = store

    @activity.defn(name="govflow.append_evidence")
    async def append_evidence(self, event: EvidenceEvent) -> str:
        """Append one event to its chain and return its hash (the same on a retry)."""
        try:
            return (await self._store.append(event)).hash
        except EvidenceConflictError as exc:
            # Retrying cannot make a different event fit a taken sequence number.
            raise ApplicationError(str(exc), type="EvidenceConflict", non_retryable=True) from exc
        except EvidenceGapError as exc:
            raise ApplicationError(str(exc), type="EvidenceGap", non_retryable=True) from exc
