from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from govflow.activities.evidence import (
    ApprovalAttemptRecord,
    EvidenceConflictError,
    EvidenceEvent,
    EvidenceGapError,
    EvidenceStore,
    PolicyDecisionRecord,
    QualityScoreRecord,
    RunRecord,
    TouchedRecord,
)

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _event(seq: int, kind: str = "note", **payload: object) -> EvidenceEvent:
    return EvidenceEvent(
        stream="run",
        stream_id="run-1",
        seq=seq,
        kind=kind,
        occurred_at=T0 + timedelta(seconds=seq),
        payload=dict(payload),
    )


async def _full_run(store: EvidenceStore, run_id: str = "run-1") -> None:
    """A run's worth of evidence: start, decision, approval, write, score, finish."""
    await store.start_run(
        RunRecord(
            run_id=run_id,
            task="support-triage",
            task_version="1",
            policy_digest="p" * 64,
            item_key="ticket-42",
            requester="alice",
            stage="canary",
            mode="live",
            started_at=T0,
        )
    )
    at = T0 + timedelta(seconds=1)
    await store.record(
        run_id,
        2,
        at,
        PolicyDecisionRecord(
            action_id="a1",
            action_digest="d" * 64,
            policy_digest="p" * 64,
            decision="needs_approval",
            rule="status-to-churn-risk",
            reason="status change to churn-risk needs 2 support leads",
            gate={"quorum": 2, "roles": ["support-lead"]},
        ),
    )
    await store.record(
        run_id,
        3,
        at,
        ApprovalAttemptRecord(
            action_id="a1",
            action_digest="d" * 64,
            reviewer="bob",
            verdict="approve",
            accepted=True,
            reason="authorized support-lead",
        ),
    )
    await store.record(
        run_id,
        4,
        at,
        TouchedRecord(
            action_id="a1",
            system="crm",
            resource="contact",
            record_id="42",
            operation="update",
            mode="live",
            idempotency_key=f"{run_id}:a1",
            before_image={"status": "active", "score": 0.5},
            after_image={"status": "churn-risk", "score": 1.0},
        ),
    )
    await store.record(run_id, 5, at, QualityScoreRecord(metric="confidence", score=0.93, passed=True))
    await store.append_event("run", run_id, 6, "run_finished", at, {"outcome": "published"})


def _verify_cli(database_url: str, run_id: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVFLOW_")}
    env["GOVFLOW_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "govflow", "evidence", "verify", run_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _tamper(database_url: str, sql: str) -> None:
    """Change evidence the way a superuser could: past the append-only triggers."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(sql)
    finally:
        await conn.close()


async def test_an_event_appended_twice_is_stored_once(store: EvidenceStore) -> None:
    first = await store.append(_event(1, note="hello"))
    again = await store.append(_event(1, note="hello"))
    assert first.stored
    assert not again.stored
    assert again.hash == first.hash
    assert len(await store.events("run", "run-1")) == 1


async def test_concurrent_deliveries_of_one_event_store_it_once(store: EvidenceStore) -> None:
    await store.append(_event(1))
    results = await asyncio.gather(*(store.append(_event(2, n=7)) for _ in range(8)))
    assert sum(r.stored for r in results) == 1
    assert len({r.hash for r in results}) == 1
    assert [e["seq"] for e in await store.events("run", "run-1")] == [1, 2]


async def test_a_conflicting_event_at_a_taken_seq_is_refused(store: EvidenceStore) -> None:
    await store.append(_event(1, note="original"))
    with pytest.raises(EvidenceConflictError, match=r"run run-1: seq 1 already holds a different event"):
        await store.append(_event(1, note="forgery"))
    (kept,) = await store.events("run", "run-1")
    assert kept["payload"] == {"note": "original"}


async def test_a_batch_that_conflicts_anywhere_leaves_nothing_behind(store: EvidenceStore) -> None:
    # A retried batch whose second row differs from what is stored: its new rows, projections and the
    # chain head are refused with it, not stored up to the conflict.
    await store.append_many([(_event(1), None), (_event(2, note="original"), None)])
    decision = PolicyDecisionRecord(
        action_id="a", action_digest="x", rule="r", decision="allow", reason="", policy_digest="d"
    )
    with pytest.raises(EvidenceConflictError, match=r"seq 2 already holds a different event"):
        await store.append_many([(_event(1), None), (_event(2, note="forgery"), None), (_event(3), decision)])
    assert [e["seq"] for e in await store.events("run", "run-1")] == [1, 2]
    assert await store.next_seq("run", "run-1") == 3
    assert await store.pool.fetchval("SELECT count(*) FROM policy_decisions") == 0


async def test_an_event_before_its_predecessor_is_refused(store: EvidenceStore) -> None:
    await store.append(_event(1))
    with pytest.raises(EvidenceGapError, match=r"event 3 .* before event 2"):
        await store.append(_event(3))


async def test_evidence_rows_refuse_update_and_delete(store: EvidenceStore) -> None:
    await _full_run(store)
    async with store.pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("UPDATE evidence_events SET kind = 'x' WHERE seq = 2")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("DELETE FROM touched_records")


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("TRUNCATE evidence_events CASCADE", "TRUNCATE on evidence_events refused"),
        ("TRUNCATE chain_heads", "TRUNCATE on chain_heads refused"),
        ("TRUNCATE runs", "TRUNCATE on runs refused"),
        ("TRUNCATE approval_attempts, touched_records", "TRUNCATE on approval_attempts refused"),
        ("UPDATE chain_heads SET seq = 4, hash = 'x' WHERE stream_id = 'run-1'", "only move forward"),
        ("UPDATE chain_heads SET seq = 7, hash = repeat('0', 64) WHERE stream_id = 'run-1'", "names no stored event"),
        ("DELETE FROM chain_heads", "only move forward"),
        ("UPDATE runs SET requester = 'someone-else'", "append-only"),
    ],
)
async def test_truncate_and_rewinding_a_chain_head_are_refused(
    store: EvidenceStore, statement: str, refusal: str
) -> None:
    await _full_run(store)
    async with store.pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match=refusal):
            await conn.execute(statement)
    assert (await store.verify("run", "run-1")).ok


async def test_a_complete_run_verifies_with_the_cli(store: EvidenceStore, database_url: str) -> None:
    await _full_run(store)
    report = await store.verify("run", "run-1")
    assert report.ok, report.problems
    assert report.rows == 6
    done = _verify_cli(database_url, "run-1")
    assert done.returncode == 0, done.stderr
    assert "run run-1: chain verifies (6 rows)" in done.stdout


async def test_an_unknown_run_does_not_verify(store: EvidenceStore, database_url: str) -> None:
    done = _verify_cli(database_url, "no-such-run")
    assert done.returncode == 1
    assert "no evidence rows for run no-such-run" in done.stdout


@pytest.mark.parametrize(
    ("tampering", "named"),
    [
        pytest.param(
            'UPDATE evidence_events SET payload = \'{"outcome": "skipped"}\' WHERE seq = 6',
            "row 6 (run_finished) was changed",
            id="edited-event",
        ),
        pytest.param(
            "UPDATE evidence_events SET occurred_at = occurred_at + interval '1 hour' WHERE seq = 3",
            "row 3 (approval_attempt) was changed",
            id="edited-timestamp",
        ),
        pytest.param(
            "DELETE FROM evidence_events WHERE seq = 3",
            "row 3 is missing",
            id="deleted-middle-row",
        ),
        pytest.param(
            "DELETE FROM evidence_events WHERE seq = 6",
            "row 6 is missing",
            id="deleted-last-row",
        ),
        pytest.param(
            "UPDATE evidence_events SET seq = 1000 WHERE seq = 2;"
            "UPDATE evidence_events SET seq = 2 WHERE seq = 3;"
            "UPDATE evidence_events SET seq = 3 WHERE seq = 1000;",
            "row 2",
            id="reordered-rows",
        ),
        pytest.param(
            'UPDATE touched_records SET after_image = \'{"status": "active"}\'',
            "touched_records row 4 differs from its event",
            id="edited-projection",
        ),
        pytest.param(
            "DELETE FROM approval_attempts",
            "approval_attempt projection row 3 is missing",
            id="deleted-projection",
        ),
        pytest.param(
            "UPDATE runs SET requester = 'mallory'",
            "runs row differs from its run_started event",
            id="edited-run-row",
        ),
    ],
)
async def test_tampering_is_detected_and_the_row_named(
    store: EvidenceStore, database_url: str, tampering: str, named: str
) -> None:
    await _full_run(store)
    await _tamper(database_url, tampering)
    done = _verify_cli(database_url, "run-1")
    assert done.returncode == 1, done.stdout
    first_line = done.stdout.splitlines()[0]
    assert "chain does NOT verify; first bad row" in first_line
    assert named in first_line, done.stdout


async def test_rollout_streams_chain_separately(store: EvidenceStore) -> None:
    await _full_run(store)
    for seq in (1, 2):
        await store.append_event("rollout", "rollout-a", seq, "stage_changed", T0, {"stage": seq})
    assert (await store.verify("rollout", "rollout-a")).ok
    assert (await store.verify("run", "run-1")).ok


@pytest.mark.parametrize("paused_before", [True, False], ids=["paused-before", "first-pause"])
async def test_a_pause_waits_for_the_writes_holding_the_fence_and_no_write_starts_after(
    store: EvidenceStore, paused_before: bool
) -> None:
    if paused_before:  # the rollout has a fence row already (it paused and resumed once)
        await store.set_fence("rollout-f", True)
        await store.set_fence("rollout-f", False)
    # Otherwise its first pause creates the row: it must still wait for the write in progress.
    order: list[str] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def write() -> None:
        async with store.fence(["rollout-f", "rollout-other"]) as hold:
            assert hold.stopped == []
            holding.set()
            await release.wait()  # the write is in progress
            order.append("write done")

    async def pause() -> None:
        await holding.wait()
        await store.set_fence("rollout-f", True)
        order.append("paused")

    writer, pauser = asyncio.create_task(write()), asyncio.create_task(pause())
    await holding.wait()
    await asyncio.sleep(0.3)
    assert order == []  # the pause is waiting for the write
    release.set()
    await asyncio.gather(writer, pauser)
    assert order == ["write done", "paused"]
    async with store.fence(["rollout-f"]) as hold:
        assert hold.stopped == ["rollout-f"]  # a write that starts now sees the pause


async def test_a_lease_granted_before_a_stop_never_writes_after_it(store: EvidenceStore) -> None:
    # The lease is asked before the fence is taken; it carries the rollout's stop epoch. A rollback
    # (stop, then unpause at a new epoch) in between refuses it at the fence, though nothing is paused now.
    async with store.fence(["rollout-e"], epochs={"rollout-e": 0}) as hold:
        assert hold.stopped == []  # a new rollout: epoch 0, unpaused
    await store.set_fence("rollout-e", True, epoch=1)
    await store.set_fence("rollout-e", False, epoch=1)
    async with store.fence(["rollout-e"], epochs={"rollout-e": 0}) as hold:
        assert hold.stopped == ["rollout-e"]  # leased at epoch 0, before the rollback
    async with store.fence(["rollout-e"], epochs={"rollout-e": 1}) as hold:
        assert hold.stopped == []  # leased after it
    await store.set_fence("rollout-e", False)  # a rollout from before epochs leaves the epoch as it is
    async with store.fence(["rollout-e"], epochs={"rollout-e": 1}) as hold:
        assert hold.stopped == []
