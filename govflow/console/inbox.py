"""What waits for a reviewer, read from the evidence's projections (never by asking thousands of workflows):
each action a live, unfinished run holds for approval, still open (not rejected, not expired, quorum not
met), that the reviewer may approve (eligible by person or role, escalations included; not the requester
where duties are separated) and has not voted on; and each exception a run waits on that the reviewer
may decide (retry or discard). Soonest expiry first.

It is what the evidence says so far; the workflow's own verdict on an act is the truth, and the page
shows that verdict, never a guess of the console's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from govflow.activities.escaping import console_exception_url, console_url
from govflow.activities.evidence import EvidenceStore
from govflow.policies.engine import Gate

_OPEN = """
WITH d AS (
  SELECT d.*, (SELECT e.seq FROM evidence_events e WHERE e.stream = 'run' AND e.stream_id = d.run_id
                 AND e.kind = 'gate_escalated' AND e.payload->>'action_id' = d.action_id
                 ORDER BY e.seq DESC LIMIT 1) AS escalated_at
  FROM policy_decisions d
  WHERE d.decision = 'needs_approval'
)
SELECT d.run_id, d.action_id, d.action_digest, d.rule, d.gate, r.task, r.task_version, r.item_key, r.requester,
       (SELECT count(*) FROM approval_attempts a WHERE a.run_id = d.run_id AND a.action_id = d.action_id
          AND a.accepted AND a.verdict = 'approve' AND a.seq > coalesce(d.escalated_at, 0)) AS approvals,
       EXISTS (SELECT 1 FROM approval_attempts a WHERE a.run_id = d.run_id AND a.action_id = d.action_id
          AND a.accepted AND a.verdict = 'reject') AS rejected,
       EXISTS (SELECT 1 FROM approval_attempts a WHERE a.run_id = d.run_id AND a.action_id = d.action_id
          AND a.accepted AND a.reviewer = $1 AND a.seq > coalesce(d.escalated_at, 0)) AS voted,
       (SELECT e.payload FROM evidence_events e WHERE e.stream = 'run' AND e.stream_id = d.run_id
          AND e.seq = d.escalated_at) AS escalation,
       EXISTS (SELECT 1 FROM evidence_events e WHERE e.stream = 'run' AND e.stream_id = d.run_id
          AND e.kind = 'gate_expired' AND e.payload->>'action_id' = d.action_id) AS expired
FROM d JOIN runs r USING (run_id)
WHERE r.mode = 'live'
  AND NOT EXISTS (SELECT 1 FROM evidence_events f WHERE f.stream = 'run' AND f.stream_id = d.run_id
                  AND f.kind = 'run_finished')
"""
# A gate escalated (its expiry, or a window that filled meanwhile) is a fresh one: its people, its votes.

# An exception still waits when nothing after it ended it: an accepted decision, its expiry, the run's end.
_EXCEPTIONS = """
SELECT e.stream_id AS run_id, e.payload, r.task, r.task_version, r.item_key, r.requester
FROM evidence_events e JOIN runs r ON r.run_id = e.stream_id
WHERE e.stream = 'run' AND e.kind = 'exception_raised' AND jsonb_typeof(e.payload->'route') = 'object'
  AND NOT EXISTS (SELECT 1 FROM evidence_events f WHERE f.stream = 'run' AND f.stream_id = e.stream_id
                  AND f.seq > e.seq AND (f.kind IN ('exception_expired', 'run_finished')
                       OR (f.kind = 'exception_decision' AND (f.payload->>'accepted')::boolean)))
"""

Kind = Literal["approval", "exception"]


@dataclass(frozen=True)
class Waiting:
    kind: Kind
    run_id: str
    task: str
    task_version: str
    item_key: str
    requester: str
    rule: str
    """The approval's rule; for an exception, its problem (``incomplete_input``...)."""
    eligible: tuple[str, ...]
    expires_at: datetime
    action_id: str = ""
    action_digest: str = ""
    approvals: int = 0
    quorum: int = 0
    escalated: bool = False
    risk: str = ""
    """The rule's risk (low, medium, high); empty for exceptions and for gates recorded without one."""
    passkey: bool = False
    """Its approvals are signed, and a passkey may sign them: the console asks for one with the act."""

    @property
    def path(self) -> str:
        """The page of this action or exception in the console (each id one path segment)."""
        if self.kind == "exception":
            return console_exception_url("", self.run_id)
        return console_url("", self.run_id, self.action_id)


def _approval(row: Any, reviewer: str) -> Waiting | None:
    gates = [Gate.model_validate(g) for g in (row["gate"] or {}).get("gates", [])]
    if not gates or row["rejected"] or row["voted"]:
        return None
    gate = gates[0]
    eligible, expires_at = set(gate.eligible), gate.expires_at
    escalation = row["escalation"]
    if escalation is not None:
        eligible = set(escalation.get("eligible", []))
        expires_at = datetime.fromisoformat(escalation["expires_at"])
    elif row["expired"]:
        return None
    if reviewer not in eligible or (gate.separation_of_duties and reviewer == row["requester"]):
        return None
    if reviewer in gate.excluded:  # the data keeps them from it (approval.not_by)
        return None
    if row["approvals"] >= gate.quorum:
        return None
    return Waiting(
        kind="approval", run_id=row["run_id"], action_id=row["action_id"], action_digest=row["action_digest"],
        task=row["task"], task_version=row["task_version"], item_key=row["item_key"], requester=row["requester"],
        rule=row["rule"] or gate.rule, approvals=int(row["approvals"]), quorum=gate.quorum,
        eligible=tuple(sorted(eligible)), expires_at=expires_at, escalated=escalation is not None,
        risk=gate.risk or "", passkey=gate.signature_required and gate.passkey,
    )  # fmt: skip


def _exception(row: Any, reviewer: str) -> Waiting | None:
    payload = row["payload"]
    route = payload["route"]
    # Rows from before the route named its people with roles resolved list the named reviewers only.
    eligible = tuple(sorted(route.get("eligible") or route.get("reviewers") or []))
    if reviewer not in eligible or not payload.get("expires_at"):
        return None
    return Waiting(
        kind="exception", run_id=row["run_id"], task=row["task"], task_version=row["task_version"],
        item_key=row["item_key"], requester=row["requester"], rule=str(payload.get("kind", "exception")),
        eligible=eligible, expires_at=datetime.fromisoformat(payload["expires_at"]),
    )  # fmt: skip


async def inbox(store: EvidenceStore, reviewer: str) -> list[Waiting]:
    """What waits for ``reviewer``, soonest expiry first."""
    async with store.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        approvals = await conn.fetch(_OPEN, reviewer)
        exceptions = await conn.fetch(_EXCEPTIONS)
    found = [w for row in approvals if (w := _approval(row, reviewer)) is not None]
    found += [w for row in exceptions if (w := _exception(row, reviewer)) is not None]
    return sorted(found, key=lambda w: (w.expires_at, w.run_id, w.action_id))
