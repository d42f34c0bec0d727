"""The activities of a standing approval: its chain of acts, and its state that runs claim uses of."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity

from govflow.activities.common import GovflowActivities, evidence_failure
from govflow.activities.run_messages import EvidenceItem
from govflow.policies.standing import GrantTerms


class GrantRecord(BaseModel):
    """Rows for a grant's chain at ``seq``..., and the state change they record (applied first)."""

    model_config = ConfigDict(frozen=True)

    grant_id: str
    terms: GrantTerms
    seq: int = Field(ge=1)
    at: datetime
    rows: list[EvidenceItem]
    change: Literal["none", "propose", "activate", "revoke", "expire"] = "none"
    granted_by: list[str] = Field(default_factory=list)
    by: str = ""
    reason: str = ""


class GrantActivities(GovflowActivities):
    @activity.defn(name="govflow.record_grant")
    async def record_grant(self, rec: GrantRecord) -> int:
        """Apply the change to the grant's row, then append its rows; returns the next free seq. Both
        steps are idempotent, so a retry changes nothing twice."""
        t = rec.terms
        try:
            if rec.change == "propose":
                await self._store.propose_grant(rec.grant_id, t.task, t.task_version, t.rule, dict(t.match),
                                                t.max_uses, t.expires_at)  # fmt: skip
            elif rec.change == "activate":
                await self._store.activate_grant(rec.grant_id, rec.granted_by)
            elif rec.change in ("revoke", "expire"):
                status = "revoked" if rec.change == "revoke" else "expired"
                await self._store.end_grant(rec.grant_id, status, rec.by, rec.reason)
        except (OSError, asyncpg.PostgresError) as exc:
            raise evidence_failure(exc) from exc
        rows = [(row.kind, row.payload, rec.at) for row in rec.rows]
        return await self._append_chain("grant", rec.grant_id, t.task, rec.seq, rows)

    def all(self) -> list[Any]:
        return [self.record_grant]
