"""Policies as evidence: each policy version a task version runs under is stored once, content-addressed by
its digest, in a chain of its own (stream ``policy``); `govflow policy show DIGEST` and `policy history`
read it back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from govflow.activities.evidence.chain import EvidenceEvent
from govflow.activities.evidence.failures import EvidenceConflictError
from govflow.activities.evidence.policy_events import PolicyRecorded, PolicyUsed
from govflow.activities.evidence.store import EvidenceStore
from govflow.policies import Policy
from govflow.policies.digest import sha256_hex
from govflow.policies.errors import GovflowError


class PolicyNotRecorded(GovflowError):
    """No policy version with that digest is in the evidence."""


async def record_policy_use(
    store: EvidenceStore, policy: Policy, digest: str, text: str, *, task: str, version: str, run_id: str,
    at: datetime,
) -> None:  # fmt: skip
    """Record ``policy`` (its canonical JSON ``text``, whose sha256 is ``digest``) and its first use by
    ``task`` ``version`` (``run_id``, at ``at``), each once; two workers racing retry on the next seq."""
    for _ in range(20):
        events = await store.events("policy", digest)
        rows: list[PolicyRecorded | PolicyUsed] = []
        if not events:
            people = [p.model_dump(mode="json", include={"id", "roles", "public_key"}) for p in policy.reviewers.people]
            rows.append(PolicyRecorded(digest=digest, name=policy.name, version=policy.version, text=text,
                                       people=people))  # fmt: skip
        uses = [e["payload"] for e in events if e["kind"] == "policy_used"]
        used = {(u.get("task"), u.get("task_version")) for u in uses}
        if (task, version) not in used:
            rows.append(PolicyUsed(task=task, task_version=version, first_run=run_id, first_used_at=at))
        if not rows:
            return
        batch = [
            (EvidenceEvent(stream="policy", stream_id=digest, seq=len(events) + 1 + i, kind=row.kind, occurred_at=at,
                           payload=row.payload()), None)
            for i, row in enumerate(rows)
        ]  # fmt: skip
        try:
            await store.append_many(batch)
            return
        except EvidenceConflictError:
            continue
    raise EvidenceConflictError(f"policy {digest[:12]}: its chain kept moving while recording a use")


@dataclass(frozen=True)
class PolicyVersion:
    recorded: PolicyRecorded
    uses: list[PolicyUsed]
    verified: bool
    """Its chain verifies, and the text's sha256 is its digest."""


async def policy_version(store: EvidenceStore, digest: str) -> PolicyVersion:
    """The recorded policy whose digest is (or starts with, 8 characters at least) ``digest``."""
    full = await _full_digest(store, digest)
    events = await store.events("policy", full)
    first = events[0]["payload"]
    recorded = PolicyRecorded.model_validate(first)
    uses = [PolicyUsed.model_validate(e["payload"]) for e in events if e["kind"] == "policy_used"]
    report = await store.verify("policy", full)
    return PolicyVersion(recorded, uses, report.ok and sha256_hex(recorded.text.encode()) == full)


async def _full_digest(store: EvidenceStore, digest: str) -> str:
    prefix = digest.strip().lower()
    if len(prefix) < 8 or any(c not in "0123456789abcdef" for c in prefix):
        raise PolicyNotRecorded(f"{digest!r} is not a policy digest (64 hex characters, or the first 8 at least)")
    found = await store.pool.fetch(
        "SELECT DISTINCT stream_id FROM evidence_events WHERE stream = 'policy' AND stream_id LIKE $1 || '%'", prefix
    )
    if not found:
        raise PolicyNotRecorded(
            f"no policy {prefix} in the evidence: a policy is recorded when a run first uses it "
            "(`govflow policy history --task T` lists those recorded)"
        )
    if len(found) > 1:
        raise PolicyNotRecorded(f"{prefix} names {len(found)} policies: give more of the digest")
    return str(found[0]["stream_id"])


async def policy_history(store: EvidenceStore, task: str) -> list[tuple[PolicyUsed, PolicyRecorded]]:
    """Each policy version ``task`` ran under, by first use (oldest first), with its text."""
    rows = await store.pool.fetch(
        """
        SELECT u.payload AS used, r.payload AS recorded
        FROM evidence_events u JOIN evidence_events r ON r.stream = 'policy' AND r.stream_id = u.stream_id AND r.seq = 1
        WHERE u.stream = 'policy' AND u.kind = 'policy_used' AND u.payload->>'task' = $1
        ORDER BY (u.payload->>'first_used_at')::timestamptz, u.stream_id
        """,
        task,
    )
    return [(PolicyUsed.model_validate(r["used"]), PolicyRecorded.model_validate(r["recorded"])) for r in rows]
