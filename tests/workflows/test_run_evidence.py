"""Crash consistency of a governed run's evidence: dying workers, divergence, rewound tails, restarts."""

from __future__ import annotations

import asyncpg
from temporalio.testing import WorkflowEnvironment

from govflow.activities.connectors import SharedPool
from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry
from govflow.examples import support_triage
from govflow.examples.support_triage import EXAMPLES
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.run_api import Review
from tests.helpers import event_kinds, sor_fetch, start_run, wait_for, worker


async def test_a_workflow_task_that_dies_after_evidence_committed_loses_and_duplicates_nothing(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, sor_url: str, task_queue: str
) -> None:
    """The task that learns an evidence append committed (the vote's row) dies before it schedules the
    write, as a killed worker would. Before evidence-v2 the retried task re-ran the append at a new
    time and the store refused it as a conflict: the approved run FAILED. Now the append is an activity
    whose input history holds: the retry schedules the write and the chain is whole."""
    from temporalio.worker import Worker

    from govflow.workers.worker import build_worker
    from tests.workflows import crash_points

    env = time_skipping_env
    crash_points.CRASHES[:] = ["govflow.publish_all"]
    crash_points.CRASHED.clear()
    w: Worker = build_worker(
        env.client, task_queue, store, registry, interceptors=[crash_points.CrashOnce()],
        passthrough=["tests"],
    )  # fmt: skip
    async with w:
        handle = await start_run(env.client, task_queue, "T0001")
        status = await wait_for(handle, lambda s: bool(s.pending))
        await handle.signal(
            GovernedRunWorkflow.approve, Review(reviewer="alice", action_digest=status.pending[0].digest)
        )
        result = await handle.result()
    assert crash_points.CRASHED == ["govflow.publish_all"]
    assert result.outcome == "published"
    history = await handle.fetch_history()
    # The task was retried: its failure is in the history, or (once seen on a loaded shared time-skipping
    # server) the retry shows as a timed-out task or a later attempt.
    assert any(
        e.HasField("workflow_task_failed_event_attributes")
        or e.HasField("workflow_task_timed_out_event_attributes")
        or e.workflow_task_scheduled_event_attributes.attempt > 1
        for e in history.events
    ), [e.event_type for e in history.events]
    kinds = await event_kinds(store, "run", result.run_id)
    assert kinds.count("approval_attempt") == 1
    assert kinds[-2:] == ["touched_record", "run_finished"]
    assert (await store.verify("run", result.run_id)).ok
    assert len(await sor_fetch(sor_url, "SELECT key FROM govflow_idempotency")) == 1
    assert result.chain_head == (await store.events("run", result.run_id))[-1]["hash"]


async def test_a_vote_during_publish_is_recorded_as_after_the_decision_with_its_note(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        handle = await start_run(env.client, task_queue, "T0001")
        status = await wait_for(handle, lambda s: bool(s.pending))
        digest = status.pending[0].digest
        await handle.signal(GovernedRunWorkflow.approve, Review(reviewer="alice", action_digest=digest, reason="ok"))
        await handle.signal(GovernedRunWorkflow.approve, Review(reviewer="bob", action_digest=digest, reason="late"))
        result = await handle.result()
    assert result.outcome == "published"
    rows = await store.pool.fetch(
        "SELECT reviewer, accepted, reason, note FROM approval_attempts WHERE run_id = $1 ORDER BY seq", handle.id
    )
    assert [(r["reviewer"], r["accepted"], r["note"]) for r in rows] == [("alice", True, "ok"), ("bob", False, "late")]
    kinds = await event_kinds(store, "run", handle.id)
    # Bob's vote lands while the run publishes (it always has here; a slower worker could see it before
    # the decision): either way it is in the chain, and one that comes after run_finished says so.
    if kinds[-1] == "approval_attempt":
        assert kinds[-3:-1] == ["touched_record", "run_finished"]
        assert "arrived after the run's decision" in rows[1]["reason"]
    else:
        assert kinds[-1] == "run_finished"
    assert (await store.verify("run", handle.id)).ok


async def test_a_rewound_tail_and_a_consistent_rehash_are_caught_by_the_temporal_anchor(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, task_queue: str
) -> None:
    """A superuser who bypasses the triggers can remove a run's tail and rewind its head, or rewrite a
    row and rehash everything after it: the database alone then verifies. The chain head the run's
    workflow returned to Temporal does not move."""
    from govflow.activities.evidence.chain import event_hash
    from govflow.export.verify import anchor_problem

    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        handles = [await start_run(env.client, task_queue, t, mode="shadow") for t in ("T0001", "T0002")]
        results = [await h.result() for h in handles]
    for r in results:
        assert r.chain_head is not None
        assert await anchor_problem(store, env.client, r.run_id) is None
    rewound, rehashed = (r.run_id for r in results)
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        # 1. Remove run_finished and rewind the head to the row before it.
        last = await conn.fetchrow(
            "SELECT seq FROM evidence_events WHERE stream_id = $1 ORDER BY seq DESC LIMIT 1", rewound
        )
        await conn.execute("DELETE FROM evidence_events WHERE stream_id = $1 AND seq = $2", rewound, last["seq"])
        prev = await conn.fetchrow(
            "SELECT seq, hash FROM evidence_events WHERE stream_id = $1 AND seq = $2", rewound, last["seq"] - 1
        )
        await conn.execute(
            "UPDATE chain_heads SET seq = $2, hash = $3 WHERE stream_id = $1", rewound, prev["seq"], prev["hash"]
        )
        # 2. Change the outcome and rehash the chain consistently from there on.
        rows = await conn.fetch("SELECT * FROM evidence_events WHERE stream_id = $1 ORDER BY seq", rehashed)
        prev_hash = rows[-2]["hash"]
        payload = {**rows[-1]["payload"], "outcome": "published"}
        new_hash = event_hash("run", rehashed, rows[-1]["seq"], rows[-1]["kind"], rows[-1]["occurred_at"], payload,
                              prev_hash)  # fmt: skip
        await conn.execute(
            "UPDATE evidence_events SET payload = $3, hash = $4 WHERE stream_id = $1 AND seq = $2",
            rehashed, rows[-1]["seq"], payload, new_hash,
        )  # fmt: skip
        await conn.execute("UPDATE chain_heads SET hash = $2 WHERE stream_id = $1", rehashed, new_hash)
    # Inside the database both still verify...
    assert (await store.verify("run", rewound)).ok
    assert (await store.verify("run", rehashed)).ok
    # ...against Temporal neither does.
    assert "the database holds" in (await anchor_problem(store, env.client, rewound) or "")
    assert "the chain was rewritten" in (await anchor_problem(store, env.client, rehashed) or "")


async def test_the_run_row_names_the_policy_the_run_decided_under_not_the_appending_workers(
    store: EvidenceStore, registry: Registry
) -> None:
    """In a rolling deploy the worker that appends a run's first rows may hold a newer policy than the
    one the run loaded. The run row must agree with run_started, or the chain stops verifying (found by
    bench.chaos when workers restarted onto new code mid-run)."""
    from datetime import UTC, datetime

    from temporalio.testing import ActivityEnvironment

    from govflow.activities.run_activities import RunActivities
    from govflow.activities.run_messages import EvidenceItem, RecordEvidence, StartRun

    at = datetime.now(UTC)
    loaded_by_the_run = "a" * 64  # not the digest of the policy this worker holds
    start = StartRun(
        run_id="run-rolling", task="support-triage", task_version="1", item_key="T0001", requester="priya",
        stage="manual", mode="live", at=at, policy_digest=loaded_by_the_run,
    )  # fmt: skip
    opening = {**start.model_dump(mode="json", exclude={"at"}), "policy_digest": loaded_by_the_run}
    rec = RecordEvidence(
        run_id="run-rolling", task="support-triage", task_version="1", seq=1, at=at,
        items=[EvidenceItem(kind="run_started", payload=opening, at=at)], start=start,
    )  # fmt: skip
    await ActivityEnvironment().run(RunActivities(registry, store).append_run_evidence, rec)
    row = await store.run("run-rolling")
    assert row is not None
    assert row.policy_digest == loaded_by_the_run
    assert (await store.verify("run", "run-rolling")).ok


async def test_a_real_divergence_fails_the_append_and_the_chain_says_so(
    store: EvidenceStore, registry: Registry
) -> None:
    """A conflict is not retried (it would never succeed) and is not silent: the chain records it."""
    from datetime import UTC, datetime

    import pytest
    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from govflow.activities.run_activities import RunActivities
    from govflow.activities.run_messages import EvidenceItem, RecordEvidence

    at = datetime.now(UTC)
    await store.append_event("run", "run-diverged", 1, "note", at, {"n": 1})
    rec = RecordEvidence(
        run_id="run-diverged", task="support-triage", task_version="1", seq=1, at=at,
        items=[EvidenceItem(kind="note", payload={"n": 2}, at=at)],
    )  # fmt: skip
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(RunActivities(registry, store).append_run_evidence, rec)
    assert refused.value.type == "EvidenceConflictError"
    assert refused.value.non_retryable
    events = await store.events("run", "run-diverged")
    assert [e["kind"] for e in events] == ["note", "evidence_diverged"]
    assert events[1]["payload"]["refused"] == [{"seq": 1, "kind": "note"}]
    assert "seq 1 already holds a different event" in events[1]["payload"]["detail"]


class _Outage:
    """What a restarting Postgres answers for a while: SQLSTATE 57P03 ("the database system is starting
    up") to the next ``left`` checkouts, from any pool that shares this outage."""

    def __init__(self) -> None:
        self.left = 0
        self.refused = 0

    def check(self) -> None:
        if self.left > 0:
            self.left -= 1
            self.refused += 1
            raise asyncpg.exceptions.CannotConnectNowError("the database system is starting up")


class _RestartingPool:
    """A real asyncpg pool whose checkouts meet the outage first."""

    def __init__(self, pool: asyncpg.Pool, outage: _Outage) -> None:
        self._pool, self._outage = pool, outage

    def acquire(self):  # type: ignore[no-untyped-def]
        self._outage.check()
        return self._pool.acquire()

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._pool, name)


class _RestartingSharedPool(SharedPool):
    def __init__(self, dsn: str, outage: _Outage) -> None:
        super().__init__(dsn)
        self._outage = outage

    async def get(self):  # type: ignore[no-untyped-def, override]
        return _RestartingPool(await super().get(), self._outage)


async def test_a_database_restart_window_is_retried_and_the_run_publishes_once(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str
) -> None:
    """Postgres restarting while a run publishes: the write's and the evidence's checkouts are refused
    with 57P03 three times; both are transient, retried, and the run publishes once with its evidence.
    Three: each refusal is an activity attempt, retried after the policy's backoff (1, 2, 4 s...), which
    the time-skipping server skips only while nothing else holds its clock; six cost 61 s in one full run."""
    env = time_skipping_env
    outage = _Outage()
    registry = Registry()
    registry.register(
        support_triage.SupportTriage(),
        policy=EXAMPLES / "support-triage.yaml",
        connectors=support_triage.connectors(_RestartingSharedPool(sor_url, outage)),
        model=support_triage.baseline_model(),
    )
    restarting_store = EvidenceStore(_RestartingPool(store.pool, outage))  # type: ignore[arg-type]
    async with worker(env.client, task_queue, restarting_store, registry):
        handle = await start_run(env.client, task_queue, "T0001")
        status = await wait_for(handle, lambda s: bool(s.pending))
        outage.left = 3
        await handle.signal(GovernedRunWorkflow.approve, Review(reviewer="bob", action_digest=status.pending[0].digest))
        result = await handle.result()
    await registry.aclose()
    assert outage.refused == 3
    assert result.outcome == "published"
    assert len(await sor_fetch(sor_url, "SELECT key FROM govflow_idempotency")) == 1
    assert (await store.verify("run", result.run_id)).ok
