"""Backtests on record (stream ``backtest``, written by `govflow backtest`): whether one of exactly this
candidate meets a policy's bars (``rollout.backtest``), which a rollout checks before it starts."""

from __future__ import annotations

import json
from typing import Any

from govflow.activities.evidence.store import EvidenceStore
from govflow.policies.gates import BacktestBar


def bar_missed(bar: BacktestBar, reported: dict[str, Any]) -> str | None:
    """Which of a policy's backtest bars (rollout.backtest) a recorded backtest misses, or None."""
    agreement, decided = reported.get("agreement_with_approved"), int(reported.get("decided", 0))
    again = len(reported.get("rejected_reproposed", []))
    if decided < bar.min_decided:
        return f"it rests on {decided} human decisions, fewer than the {bar.min_decided} the policy asks"
    if (agreement if agreement is not None else 0.0) < bar.min_agreement:
        return f"agreement with approved actions {agreement} is below the {bar.min_agreement} the policy asks"
    if bar.max_rejected_proposed is not None and again > bar.max_rejected_proposed:
        return f"it proposes {again} rejected actions again, more than the {bar.max_rejected_proposed} allowed"
    return None


async def backtest_on_record(
    store: EvidenceStore, task: str, version: str, digest: str, bar: BacktestBar
) -> tuple[str, str]:
    """The newest verified backtest of exactly this candidate (task version under policy ``digest``) meeting
    ``bar``: (its stream id, ""); or ("", why none does)."""
    rows = await store.pool.fetch(
        "SELECT s.stream_id, r.payload AS reported FROM evidence_events s JOIN evidence_events r "
        "ON r.stream = 'backtest' AND r.stream_id = s.stream_id AND r.kind = 'backtest_reported' "
        "WHERE s.stream = 'backtest' AND s.kind = 'backtest_started' AND s.payload->>'task' = $1 "
        "AND s.payload->>'candidate' = $2 AND s.payload->>'policy_digest' = $3 ORDER BY s.occurred_at DESC",
        task, version, digest,
    )  # fmt: skip
    if not rows:
        return "", (f"no backtest of {task} v{version} under policy {digest[:12]} is on record: run "
                    f"`govflow backtest --task {task} --candidate {version}` first")  # fmt: skip
    missed = ""
    for row in rows:
        if not (await store.verify("backtest", row["stream_id"])).ok:
            missed = missed or f"backtest {row['stream_id']} does not verify"
            continue
        reported = row["reported"]
        why = bar_missed(bar, json.loads(reported) if isinstance(reported, str) else reported)
        if why is None:
            return str(row["stream_id"]), ""
        missed = missed or f"the newest backtest, {row['stream_id']}: {why}"
    return "", missed
