"""What waits for a reviewer, read from the evidence's projections (never by asking thousands of workflows):
each action a live, unfinished run holds for approval, still open (not rejected, not expired, quorum not
met), that the reviewer may approve (eligible by person or role, escalations included; not the requester
where duties are separated) and has not voted on; soonest expiry first.

It is what the evidence says so far; the workflow's own verdict on an act is the truth, and the page
shows that verdict, never a guess of the console's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from govflow.activities.evidence import EvidenceStore
from govflow.policies.engine import Gate

_OPEN = """
SELECT d.run_id, d.action_id, d.action_digest, d.rule, d.gate, r.task, r.task_version, r.item_key, r.requester,
       (SELECT count(*) FROM approval_attempts a WHERE a.run_id = d.run_id AND a.action_id = d.action_id
          AND a.accepted AND a.verdict = 'approve') AS approvals,
       EXISTS (SELECT 1 FROM approval_attempts a WHERE a.run_id = d.run_id AND a.action_id = d.action_id
          AND a.accepted AND a.verdict = 'reject') AS rejected,
       EXISTS (SELECT 1 FROM approval_attempts a WHERE a.run_id = d.run_id AND a.action_id = d.action_id
          AND a.accepted AND a.reviewer = $1) AS voted,
       (SELECT e.payload FROM evidence_events e WHERE e.stream = 'run' AND e.stream_id = d.run_id
          AND e.kind = 'gate_escalated' AND e.payload->>'action_id' = d.action_id ORDER BY e.seq DESC LIMIT 1)
          AS escalation,
       EXISTS (SELECT 1 FROM evidence_events e WHERE e.stream = 'run' AND e.stream_id = d.run_id
          AND e.kind = 'gate_expired' AND e.payload->>'action_id' = d.action_id) AS expired
FROM policy_decisions d JOIN runs r USING (run_id)
WHERE d.decision = 'needs_approval' AND r.mode = 'live'
  AND NOT EXISTS (SELECT 1 FROM evidence_events f WHERE f.stream = 'run' AND f.stream_id = d.run_id
                  AND f.kind = 'run_finished')
"""


@dataclass(frozen=True)
class Waiting:
    run_id: str
    action_id: str
    action_digest: str
    task: str
    task_version: str
    item_key: str
    requester: str
    rule: str
    approvals: int
    quorum: int
    eligible: tuple[str, ...]
    expires_at: datetime
    escalated: bool


def _waiting(row: Any, reviewer: str) -> Waiting | None:
    gates = [Gate.model_validate(g) for g in (row["gate"] or {}).get("gates", [])]
    if not gates or row["rejected"] or row["voted"]:
        return None
    gate = gates[0]
    eligible, expires_at = set(gate.eligible), gate.expires_at
    escalation = row["escalation"]
    if escalation is not None:
        eligible |= set(escalation.get("eligible", []))
        expires_at = datetime.fromisoformat(escalation["expires_at"])
    elif row["expired"]:
        return None
    if reviewer not in eligible or (gate.separation_of_duties and reviewer == row["requester"]):
        return None
    if row["approvals"] >= gate.quorum:
        return None
    return Waiting(
        run_id=row["run_id"], action_id=row["action_id"], action_digest=row["action_digest"], task=row["task"],
        task_version=row["task_version"], item_key=row["item_key"], requester=row["requester"],
        rule=row["rule"] or gate.rule, approvals=int(row["approvals"]), quorum=gate.quorum,
        eligible=tuple(sorted(eligible)), expires_at=expires_at, escalated=escalation is not None,
    )  # fmt: skip


async def inbox(store: EvidenceStore, reviewer: str) -> list[Waiting]:
    """What waits for ``reviewer``, soonest expiry first."""
    rows = await store.pool.fetch(_OPEN, reviewer)
    found = [w for row in rows if (w := _waiting(row, reviewer)) is not None]
    return sorted(found, key=lambda w: (w.expires_at, w.run_id, w.action_id))
