"""Hash-chained evidence appends per second, through the real store on a real (embedded) Postgres.

    python -m bench.evidence_append [--rows 20000] [--batch 500] [--rounds 3]

Each writer appends its own streams in batches (one ``append_many`` = one transaction), as run and
rollout activities do; a third of the events carry a projection row (a policy decision, an approval
attempt or a touched record), as a run's do. Printed per scenario, over ``--rounds`` rounds:
min / median / max events per second, for one writer, eight writers at once, and re-appending
batches already stored (a retried activity: every row recognised, nothing written). After each
round every stream is verified, so a fast but wrong store cannot pass.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from bench.harness import evidence_database
from govflow.activities.evidence import (
    ApprovalAttemptRecord,
    EvidenceEvent,
    EvidenceStore,
    PolicyDecisionRecord,
    RunRecord,
    TouchedRecord,
)
from govflow.activities.evidence.events import ProjectedEvent

T0 = datetime(2026, 11, 28, tzinfo=UTC)


def _projection(i: int) -> ProjectedEvent | None:
    if i % 3:
        return None
    kind = (i // 3) % 3
    if kind == 0:
        return PolicyDecisionRecord(action_id=f"a{i}", action_digest="d" * 64, policy_digest="p" * 64,
                                    decision="allow", rule="r", reason="allowed by rule r", gate=None)  # fmt: skip
    if kind == 1:
        return ApprovalAttemptRecord(action_id=f"a{i}", action_digest="d" * 64, reviewer="bob", verdict="approve",
                                     accepted=True, reason="authorized")  # fmt: skip
    return TouchedRecord(action_id=f"a{i}", system="crm", resource="contact", record_id=str(i), operation="update",
                         mode="live", idempotency_key=f"k{i}", before_image={"status": "active"},
                         after_image={"status": "churn-risk"})  # fmt: skip


def batches(stream_id: str, rows: int, size: int) -> list[list[tuple[EvidenceEvent, ProjectedEvent | None]]]:
    items = []
    for i in range(rows):
        projection = _projection(i)
        kind = projection.kind if projection else "note"
        payload = {"i": i, "note": "x" * 80} if projection is None else projection.model_dump(mode="json")
        event = EvidenceEvent(stream="run", stream_id=stream_id, seq=i + 2, kind=kind,
                              occurred_at=T0 + timedelta(milliseconds=i), payload=payload)  # fmt: skip
        items.append((event, projection))
    return [items[i : i + size] for i in range(0, rows, size)]


async def write(store: EvidenceStore, plan: list[list[tuple[EvidenceEvent, ProjectedEvent | None]]]) -> int:
    stored = 0
    for batch in plan:
        stored += sum(r.stored for r in await store.append_many(batch))
    return stored


async def scenario(store: EvidenceStore, writers: int, rows: int, size: int, again: bool) -> float:
    plans = [batches(f"bench-{uuid.uuid4().hex[:10]}", rows // writers, size) for _ in range(writers)]
    for plan in plans:  # each stream is a run: registered with its opening event, untimed
        await store.start_run(RunRecord(
            run_id=plan[0][0][0].stream_id, task="bench", task_version="1", policy_digest="p" * 64, item_key="k",
            requester="bench", stage="manual", mode="live", started_at=T0,
        ))  # fmt: skip
    if again:
        await asyncio.gather(*(write(store, p) for p in plans))
    started = time.perf_counter()
    stored = await asyncio.gather(*(write(store, p) for p in plans))
    took = time.perf_counter() - started
    expected = 0 if again else rows // writers * writers
    assert sum(stored) == expected, f"stored {sum(stored)} rows, expected {expected}"
    for plan in plans:
        report = await store.verify("run", plan[0][0][0].stream_id)
        assert report.ok, report.problems[:3]
    return (rows // writers * writers) / took


async def main_async(args: argparse.Namespace) -> None:
    _server, url = await evidence_database()  # kept: the server lives as long as this name
    async with EvidenceStore.open(url) as store:
        await scenario(store, 1, 2_000, args.batch, False)  # warm-up
        print(f"{args.rows:,} events per round, batches of {args.batch}, a third with a projection row; "
              f"{args.rounds} rounds; events/s min / median / max")  # fmt: skip
        for label, writers, again in (("one writer", 1, False), ("eight writers", 8, False),
                                      ("re-append, one writer (all already stored)", 1, True)):  # fmt: skip
            rates = [await scenario(store, writers, args.rows, args.batch, again) for _ in range(args.rounds)]
            print(f"  {label:<44} {min(rates):>9,.0f} / {statistics.median(rates):>9,.0f} / {max(rates):>9,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.evidence_append", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
