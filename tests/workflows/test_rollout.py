"""RolloutWorkflow: stages, gates, pause, authority, leases (time-skipping server; live runs on the dev server)."""

from __future__ import annotations

import dataclasses
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from govflow.activities.connectors import WriteRequest
from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry
from govflow.activities.run_activities import RunActivities
from govflow.activities.run_messages import EvidenceItem, PlannedWrite, PublishAll, StartRun
from govflow.examples.support_triage import EXAMPLES, example_registry
from govflow.policies import Action, parse_policy
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.rollout import RolloutWorkflow, bucket
from govflow.workflows.rollout_api import (
    Control,
    LeaseRequest,
    RollbackRequest,
    RolloutInput,
)
from govflow.workflows.run_api import Review, RunInput
from tests.helpers import event_kinds, eventually, keep_history, sor_fetch, wait_for, worker
from tests.workflows.rollout_helpers import (
    STARTED,
    admit_runs,
    finish_runs,
    report_runs,
    rollout_status,
    start_rollout,
    until,
)


async def test_stages_progress_only_when_minimums_and_gates_pass(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, window_registry: Registry, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, window_registry):
        handle = await start_rollout(env, task_queue)
        assert (await rollout_status(handle)).stage == "shadow"
        stale = await admit_runs(handle, 10)  # these finish only once the rollout has moved on
        await report_runs(handle, store, 19, 0)
        status = await until(handle, lambda s: s.runs_in_stage == 19)
        assert status.stage == "shadow"  # 19 runs: below min_runs 20, and the window is inconclusive
        assert status.verdicts[0].status == "inconclusive"
        await report_runs(handle, store, 11, 0)
        status = await until(handle, lambda s: s.runs_in_stage == 30)
        assert status.stage == "shadow"  # the 10 minute floor has not passed
        assert [v.status for v in status.verdicts] == ["pass", "pass", "inconclusive"]  # 0 errors in 30 proves little
        await env.sleep(timedelta(minutes=11))
        await report_runs(handle, store, 50, 0)  # error-rate needs ~74 clean runs to pass 0.05 at 95%
        status = await until(handle, lambda s: s.stage == "canary")
        assert status.live_fraction == 0.1

        # In canary, 25 of 30 passing is inconclusive against 0.8: it holds, past the time floor.
        await report_runs(handle, store, 25, 5)
        await env.sleep(timedelta(minutes=31))
        status = await until(handle, lambda s: s.runs_in_stage == 30)
        assert status.stage == "canary"
        assert status.verdicts[0].status == "inconclusive"
        assert not status.paused

        # A stale report (a run admitted to an earlier stage) does not count.
        await finish_runs(handle, store, stale, 0)
        status = await until(handle, lambda s: s.runs_in_flight == 0)
        assert status.runs_in_stage == 30
    events = await store.events("rollout", handle.id)
    assert [e["kind"] for e in events] == ["rollout_started", "promoted"]
    assert (await store.verify("rollout", handle.id)).ok


async def test_a_breach_pauses_at_once_and_refuses_leases(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, window_registry: Registry, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, window_registry):
        handle = await start_rollout(env, task_queue)
        await handle.execute_update(
            RolloutWorkflow.promote_update, Control(operator="omar", reason="shadow looked fine")
        )
        (live,) = await admit_runs(handle, 1, live=True)
        assert live.mode == "live"
        lease = LeaseRequest(run_id=live.reason, stage="canary")
        assert (await handle.execute_update(RolloutWorkflow.lease, lease)).accepted
        await report_runs(handle, store, 10, 10)  # 50% against 0.8: a clear breach of pass-rate -> pause
        status = await until(handle, lambda s: s.paused)
        assert status.stage == "canary"
        assert status.last_breach is not None
        (verdict,) = status.last_breach.verdicts
        assert (verdict.rule, verdict.status, verdict.n) == ("pass-rate", "breach", 20)
        assert verdict.high is not None
        assert verdict.high < 0.8
        refused = await handle.execute_update(RolloutWorkflow.lease, lease)
        assert not refused.accepted
        assert refused.reason.startswith("rollout is paused: pass-rate breached")
        await keep_history(handle, "rollout-breach")
        # Resuming starts a fresh window: the runs that tripped the pause do not trip it again.
        resumed = await handle.execute_update(RolloutWorkflow.resume_update, Control(operator="omar"))
        assert (resumed.accepted, resumed.paused) == (True, False)
        status = await rollout_status(handle)
        assert not status.paused
        assert [v.n for v in status.verdicts] == [0, 0, 0]
    breach = [e for e in await store.events("rollout", handle.id) if e["kind"] == "breach"]
    assert breach[0]["payload"]["verdicts"][0]["estimate"] == 0.5


async def test_resume_and_promote_need_authority_pause_does_not(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        handle = await start_rollout(env, task_queue)
        paused = await handle.execute_update(RolloutWorkflow.pause_update, Control(operator="priya", reason="odd"))
        assert paused.accepted
        assert paused.paused
        no = await handle.execute_update(RolloutWorkflow.resume_update, Control(operator="priya"))
        assert (no.accepted, no.reason) == (False, "priya may not resume (may: chen, omar)")
        yes = await handle.execute_update(RolloutWorkflow.resume_update, Control(operator="omar"))
        assert yes.accepted
        assert not yes.paused
        refused = await handle.execute_update(RolloutWorkflow.promote_update, Control(operator="priya"))
        assert not refused.accepted
        await handle.signal(RolloutWorkflow.pause, Control(operator="alice", reason="from the UI"))
        status = await until(handle, lambda s: s.paused)
        assert status.pause_reason == "paused by alice: from the UI"
        assert (await handle.execute_update(RolloutWorkflow.promote_update, Control(operator="omar"))).reason == (
            "the rollout is paused: resume it first"
        )
    kinds = await event_kinds(store, "rollout", handle.id)
    assert kinds == [
        "rollout_started",
        "paused",
        "resumed",
        "resumed",
        "promotion_refused",
        "paused",
        "promotion_refused",
    ]


async def test_continue_as_new_keeps_stage_window_pause_and_pending_promotion(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, window_registry: Registry, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, window_registry):
        handle = await start_rollout(env, task_queue, history_limit=40)
        first_run = (await handle.describe()).run_id
        for _ in range(2):
            await handle.execute_update(RolloutWorkflow.promote_update, Control(operator="omar"))
        await env.sleep(timedelta(hours=2, minutes=1))
        await report_runs(handle, store, 80, 0)  # past min_runs 50 and 2 h: the gate asks omar or chen
        status = await until(handle, lambda s: s.promotion_requested and s.runs_in_stage == 80)
        assert (await handle.describe()).run_id != first_run  # 80 reports cannot fit in 40 events
        assert status.stage == "half"
        assert [v.n for v in status.verdicts] == [80, 80, 80]  # the window came across whole
        await handle.signal(RolloutWorkflow.pause, Control(operator="priya", reason="hold on"))
        await until(handle, lambda s: s.paused)
        paused_run = (await handle.describe()).run_id
        await report_runs(handle, store, 20, 0)
        status = await until(handle, lambda s: s.runs_in_stage == 100)
        assert (await handle.describe()).run_id != paused_run
        assert (status.paused, status.pause_reason) == (True, "paused by priya: hold on")
        assert status.promotion_requested
        # Signals, not Updates: the time-skipping server answers an Update that races a continue-as-new
        # with "update not found"; a real server aborts it as retryable and the SDK retries (temporal#6485).
        await handle.signal(RolloutWorkflow.resume, Control(operator="chen"))
        await handle.signal(RolloutWorkflow.promote, Control(operator="chen"))
        status = await until(handle, lambda s: s.stage == "full")
        assert not status.paused
        # The stage moves before its evidence row commits: wait for the row while the worker still runs.
        kinds = await eventually(lambda: event_kinds(store, "rollout", handle.id), lambda k: k.count("promoted") == 3)
        await keep_history(handle, "rollout-continued")
    assert kinds == ["rollout_started", "promoted", "promoted", "promotion_requested", "paused", "resumed", "promoted"]
    assert (await store.verify("rollout", handle.id)).ok


async def test_a_rollout_started_again_under_its_id_continues_its_evidence_chain(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, task_queue: str
) -> None:
    env = time_skipping_env
    wid = f"rollout-{uuid.uuid4()}"
    async with worker(env.client, task_queue, store, registry):
        for operator in ("priya", "omar"):
            handle = await env.client.start_workflow(
                RolloutWorkflow.run, RolloutInput(task="support-triage"), id=wid, task_queue=task_queue
            )
            answer = await handle.execute_update(RolloutWorkflow.pause_update, Control(operator=operator))
            assert (answer.accepted, answer.stage) == (True, "shadow")
            await handle.terminate("restarting")
    events = await store.events("rollout", wid)
    assert [(e["kind"], e["payload"].get("operator")) for e in events] == [
        ("rollout_started", None), ("paused", "priya"), ("rollout_started", None), ("paused", "omar"),
    ]  # fmt: skip
    assert (await store.verify("rollout", wid)).ok


def two_stage_registry(sor_url: str, *, required: bool = True) -> Registry:
    """support-triage with two stages: shadow, then full (100% live) by omar's promotion."""
    text = (EXAMPLES / "support-triage.yaml").read_text()
    text = text[: text.index("rollout:")] + (
        f"rollout:\n  required: {str(required).lower()}\n  stages:\n"
        "    - {name: shadow, live_fraction: 0.0}\n"
        "    - {name: full, live_fraction: 1.0, gate: approval, promoters: [omar]}\n"
        + text[text.index("stop_rules:") :]
    )
    return example_registry(sor_url, policy=parse_policy(text))


async def _live_run(env: WorkflowEnvironment, task_queue: str, rollout_id: str, ticket: str) -> Any:
    inp = RunInput(
        task="support-triage", item_key=ticket, item={"ticket_id": ticket}, requester="priya",
        mode="live", stage="full", rollout_id=rollout_id,
    )  # fmt: skip
    return await env.client.start_workflow(
        GovernedRunWorkflow.run, inp, id=f"run-{uuid.uuid4()}", task_queue=task_queue
    )


@pytest.mark.devserver
async def test_rollback_with_data_restores_before_images_and_flags_conflicts(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str
) -> None:
    # The dev server: on the time-skipping server an Update that arrives while a workflow task is in
    # flight is sometimes dropped ("update ... not found"), and live runs lease by Update.
    env = dev_server_env
    registry = two_stage_registry(sor_url)
    async with worker(env.client, task_queue, store, registry):
        rollout = await start_rollout(env, task_queue)
        await rollout.execute_update(RolloutWorkflow.promote_update, Control(operator="omar"))
        for ticket in ("T0001", "T0002"):
            handle = await _live_run(env, task_queue, rollout.id, ticket)
            status = await wait_for(handle, lambda s: bool(s.pending))
            await handle.signal(
                GovernedRunWorkflow.approve, Review(reviewer="alice", action_digest=status.pending[0].digest)
            )
            assert (await handle.result()).outcome == "published"
        # Each run's publish nudged the rollout once, as run_finished committed: both counted, none refused.
        counted = await until(rollout, lambda s: s.runs_in_stage == 2)
        assert (counted.reports_refused, counted.runs_in_flight) == (0, 0)
        written = await sor_fetch(sor_url, "SELECT id, reply_body FROM ticket WHERE reply_body IS NOT NULL ORDER BY id")
        assert [r["id"] for r in written] == ["T0001", "T0002"]
        conn = await asyncpg.connect(sor_url)
        await conn.execute("UPDATE ticket SET reply_body = 'edited by a human' WHERE id = 'T0002'")
        await conn.close()
        # Anyone may roll the stage back; undoing the live writes takes the policy's authority (its promoters).
        refused = await rollout.execute_update(
            RolloutWorkflow.rollback_update,
            RollbackRequest(operator="priya", reason="bad replies", to="shadow", data=True),
        )
        assert (refused.accepted, refused.stage) == (False, "shadow")
        assert refused.reason.endswith("undoing its live writes is refused: priya may not undo live writes (may: omar)")
        untouched = await sor_fetch(sor_url, "SELECT id FROM ticket WHERE reply_body IS NOT NULL ORDER BY id")
        assert [r["id"] for r in untouched] == ["T0001", "T0002"]
        answer = await rollout.execute_update(
            RolloutWorkflow.rollback_update,
            RollbackRequest(operator="omar", reason="bad replies", to="shadow", data=True),
        )
        await registry.aclose()
    assert answer.accepted
    assert (
        answer.reason
        == "rolled back to shadow; 1 records back as before (1 restored, 0 already were), 1 conflicts for review"
    )
    rows = {r["id"]: r for r in await sor_fetch(sor_url, "SELECT id, reply_body, category FROM ticket")}
    assert (rows["T0001"]["reply_body"], rows["T0001"]["category"]) == (None, None)
    assert rows["T0002"]["reply_body"] == "edited by a human"
    asked = [(e["payload"]["operator"], e["payload"]["accepted"]) for e in await store.events("rollout", rollout.id)
             if e["kind"] == "restore_requested"]  # fmt: skip
    assert asked == [("priya", False), ("omar", True)]
    events = {e["kind"]: e["payload"] for e in await store.events("rollout", rollout.id)}
    assert events["data_restored"]["record_id"] == "T0001"
    assert events["data_conflict"]["record_id"] == "T0002"
    assert events["data_conflict"]["detail"] == "changed since the write: reply_body; left for review"
    assert (await store.verify("rollout", rollout.id)).ok


@pytest.mark.devserver
async def test_no_live_write_starts_after_the_pause_is_recorded(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str
) -> None:
    # The dev server: on the time-skipping server an Update that arrives while a workflow task is in
    # flight is sometimes dropped ("update ... not found"), and live runs lease by Update.
    env = dev_server_env
    registry = two_stage_registry(sor_url)
    async with worker(env.client, task_queue, store, registry):
        rollout = await start_rollout(env, task_queue)
        await rollout.execute_update(RolloutWorkflow.promote_update, Control(operator="omar"))
        assert (await rollout.query(RolloutWorkflow.admit, "T0001")).mode == "live"
        runs = [await _live_run(env, task_queue, rollout.id, ticket) for ticket in ("T0001", "T0002", "T0003")]
        statuses = [await wait_for(h, lambda s: bool(s.pending)) for h in runs]
        await rollout.execute_update(RolloutWorkflow.pause_update, Control(operator="priya", reason="stop"))
        for handle, status in zip(runs, statuses, strict=True):
            for pending in status.pending:
                for reviewer in ("alice", "bob"):
                    await handle.signal(
                        GovernedRunWorkflow.approve, Review(reviewer=reviewer, action_digest=pending.digest)
                    )
        results = [await h.result() for h in runs]
        status = await rollout_status(rollout)
        await registry.aclose()
    assert [r.outcome for r in results] == ["refused"] * 3
    assert all(r.reason.startswith("rollout is paused: paused by priya") for r in results)
    assert await sor_fetch(sor_url, "SELECT key FROM govflow_idempotency") == []
    assert status.leases_granted == 0
    assert status.leases_refused == 3
    refusals = await store.pool.fetch("SELECT count(*) AS n FROM run_events WHERE kind = 'lease_refused'")
    assert refusals[0]["n"] == 3


def test_the_live_share_follows_the_stage_fraction_and_is_stable() -> None:
    keys = [f"ticket-{i}" for i in range(10_000)]
    live = sum(bucket(k) < 0.1 for k in keys) / len(keys)
    assert 0.09 < live < 0.11
    assert [bucket(k) for k in keys[:50]] == [bucket(k) for k in keys[:50]]


async def _canonical_rollout_at_full(env: WorkflowEnvironment, task_queue: str) -> Any:
    """The task version's own rollout (its canonical id), promoted to full: 100% live."""
    rollout = await env.client.start_workflow(
        RolloutWorkflow.run, RolloutInput(task="support-triage"), id="rollout-support-triage-v1", task_queue=task_queue
    )
    STARTED.append(rollout)
    await rollout.execute_update(RolloutWorkflow.promote_update, Control(operator="omar"))
    return rollout


@pytest.mark.devserver
@pytest.mark.parametrize("required", [False, True], ids=["rollout-optional", "rollout-required"])
async def test_a_run_started_around_the_rollout_writes_nothing_while_it_is_paused(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str, required: bool
) -> None:
    # Started as the Temporal UI's "Start Workflow" would: mode live, stage and rollout as the caller
    # pleases. The version's own rollout (its canonical id) is paused: nothing may be written.
    env = dev_server_env
    registry = two_stage_registry(sor_url, required=required)
    async with worker(env.client, task_queue, store, registry):
        rollout = await _canonical_rollout_at_full(env, task_queue)
        await rollout.execute_update(RolloutWorkflow.pause_update, Control(operator="priya", reason="hold"))
        runs = []
        for ticket, claimed_rollout in (("T0001", None), ("T0002", "rollout-that-does-not-exist")):
            inp = RunInput(
                task="support-triage", item_key=ticket, item={"ticket_id": ticket}, requester="priya",
                mode="live", stage="full", rollout_id=claimed_rollout,
            )  # fmt: skip
            runs.append(
                await env.client.start_workflow(
                    GovernedRunWorkflow.run, inp, id=f"run-{uuid.uuid4()}", task_queue=task_queue
                )
            )
        # The first asked the paused rollout and was admitted as shadow: nothing to approve, nothing written.
        shadowed = await runs[0].result()
        if required:
            # The second named a rollout that does not exist: with rollouts required, it is refused at once.
            refused = await runs[1].result()
        else:
            # Rollouts optional: it runs live, but its write needs the lease of the version's own
            # rollout, which refuses.
            status = await wait_for(runs[1], lambda s: bool(s.pending))
            for reviewer in ("alice", "bob"):
                await runs[1].signal(
                    GovernedRunWorkflow.approve, Review(reviewer=reviewer, action_digest=status.pending[0].digest)
                )
            refused = await runs[1].result()
        await rollout.terminate("test over")
        await registry.aclose()
    assert (shadowed.mode, shadowed.outcome) == ("shadow", "shadowed")
    assert await sor_fetch(sor_url, "SELECT key FROM govflow_idempotency") == []
    kinds = await event_kinds(store, "run", refused.run_id)
    assert refused.outcome == "refused"
    if required:
        assert "requires a rollout for live runs" in refused.reason
        assert kinds == ["run_started", "run_finished"]
    else:
        assert refused.mode == "live"
        assert "rollout is paused: paused by priya: hold" in refused.reason
        assert "lease_refused" in kinds


@pytest.mark.devserver
@pytest.mark.parametrize("rollout_starts", [False, True], ids=["no-rollout", "rollout-starts-meanwhile"])
async def test_a_run_admitted_while_no_rollout_ran_asks_the_rollout_that_started_since(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str, rollout_starts: bool
) -> None:
    # Admitted while its version had no rollout, the run skips asking one at its write only while the
    # fence's generation has not moved; a rollout that starts meanwhile moves it and is asked (and refuses
    # a run it did not admit, though it is at a 100%-live stage and not paused).
    env = dev_server_env
    registry = two_stage_registry(sor_url, required=False)
    async with worker(env.client, task_queue, store, registry):
        inp = RunInput(task="support-triage", item_key="T0001", item={"ticket_id": "T0001"}, requester="priya",
                       mode="live")  # fmt: skip
        run = await env.client.start_workflow(GovernedRunWorkflow.run, inp, id=f"run-{uuid.uuid4()}",
                                              task_queue=task_queue)  # fmt: skip
        status = await wait_for(run, lambda s: bool(s.pending))
        if rollout_starts:
            await _canonical_rollout_at_full(env, task_queue)
        for pending in status.pending:
            for reviewer in ("alice", "bob"):
                await run.signal(GovernedRunWorkflow.approve, Review(reviewer=reviewer, action_digest=pending.digest))
        result = await run.result()
        await registry.aclose()
    written = await sor_fetch(sor_url, "SELECT key FROM govflow_idempotency")
    if rollout_starts:
        assert result.outcome == "refused"
        assert result.reason == "the run was admitted to stage manual, the rollout is now at full"
        assert written == []
    else:
        assert result.outcome == "published"
        assert len(written) == len(result.actions)


@pytest.mark.devserver
async def test_a_worker_that_found_no_rollout_asks_again_once_one_has_started(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str
) -> None:
    # The worker remembers that the version's rollout was not found at the fence's generation, and does
    # not ask again while the generation stays; a rollout that starts moves it, and the next run is
    # admitted by the rollout (its stage), not as a run with no rollout.
    env = dev_server_env
    registry = two_stage_registry(sor_url, required=False)
    async with worker(env.client, task_queue, store, registry):
        stages = []
        for ticket in ("T0001", "T0002"):
            if ticket == "T0002":
                await _canonical_rollout_at_full(env, task_queue)
            inp = RunInput(task="support-triage", item_key=ticket, item={"ticket_id": ticket}, requester="priya",
                           mode="live")  # fmt: skip
            run = await env.client.start_workflow(GovernedRunWorkflow.run, inp, id=f"run-{uuid.uuid4()}",
                                                  task_queue=task_queue)  # fmt: skip
            stages.append((await wait_for(run, lambda s: bool(s.pending))).stage)
            await run.terminate("done")
        await registry.aclose()
    assert stages == ["manual", "full"]


async def test_a_retried_publish_whose_write_committed_records_it_even_if_the_rollout_paused(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, sor_url: str, task_queue: str
) -> None:
    """The crash window: the first attempt wrote (its key is in the system of record) and died before
    its evidence; the rollout paused since. The retry records the write as written, and asks no lease."""
    env = time_skipping_env
    reg = registry.get("support-triage", "1")
    action = Action(
        action_id="flag", system="crm", resource="contact", operation="update", record_id="C0001",
        fields={"status": "churn-risk"},
    )  # fmt: skip
    run_id = f"run-{uuid.uuid4()}"
    # What the first attempt did before the worker died: the write, under the publish's key.
    first = await reg.connectors["crm"].write(
        WriteRequest(resource="contact", record_id="C0001", operation="update", fields=action.fields,
                     idempotency_key=f"{run_id}:flag"),
        lambda _: None,
    )  # fmt: skip
    async with worker(env.client, task_queue, store, registry):
        rollout = await start_rollout(env, task_queue)
        await rollout.execute_update(RolloutWorkflow.promote_update, Control(operator="omar"))
        await rollout.execute_update(RolloutWorkflow.pause_update, Control(operator="priya", reason="hold"))
        start = StartRun(
            run_id=run_id, task="support-triage", task_version="1", item_key="C0001", requester="priya",
            stage="canary", mode="live", at=datetime.now(UTC), rollout_id=rollout.id,
        )  # fmt: skip
        opening = {**start.model_dump(mode="json", exclude={"at"}), "policy_digest": reg.digest}
        publish = PublishAll(
            run_id=run_id, task="support-triage", task_version="1", writes=[PlannedWrite(action=action)], seq=1,
            at=datetime.now(UTC),
            before=[EvidenceItem(kind="run_started", payload=opening, at=start.at)],
            start=start, rollout_id=rollout.id, stage="canary",
        )  # fmt: skip
        retry = ActivityEnvironment()
        retry.info = dataclasses.replace(retry.info, attempt=2)  # the attempt after the one that died
        published = await retry.run(RunActivities(registry, store, env.client).publish_all, publish)
        (result,) = published.written
        status = await rollout_status(rollout)
    assert (result.replayed, result.after) == (True, first.after)
    assert (status.paused, status.leases_granted, status.leases_refused) == (True, 0, 0)
    touched = await store.pool.fetch(
        "SELECT action_id, mode, after_image FROM touched_records WHERE run_id = $1", run_id
    )
    assert [(t["action_id"], t["mode"], t["after_image"]["status"]) for t in touched] == [
        ("flag", "live", "churn-risk")
    ]
    assert (await store.verify("run", run_id)).ok


async def test_a_sequential_gate_promotes_on_an_anytime_bound_and_pauses_on_cusum_evidence(
    own_time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, task_queue: str
) -> None:
    """The example's rules, method cusum (the default): promotion waits for an anytime-valid bound on
    the whole stage; a run of failures pauses exactly when the CUSUM reaches its stated limit.

    On a time-skipping server of its own: it skips 11 minutes, and once in six full runs of the suite
    it waited instead (a workflow another test left behind can hold a shared server's clock)."""
    env = own_time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        handle = await start_rollout(env, task_queue)
        await report_runs(handle, store, 30, 0)
        status = await until(handle, lambda s: s.runs_in_stage == 30)
        # 30 clean runs: the pass-rate bound (0.765) has not cleared 0.8 yet; a window would say "pass".
        assert [(v.method, v.status) for v in status.verdicts] == [("cusum", "inconclusive")] * 3
        await report_runs(handle, store, 10, 0)
        status = await until(handle, lambda s: s.runs_in_stage == 40)
        assert [v.status for v in status.verdicts] == ["pass", "pass", "inconclusive"]  # errors at 5 %: ~190 runs
        await env.sleep(timedelta(minutes=11))
        await report_runs(handle, store, 160, 0)
        status = await until(handle, lambda s: s.stage == "canary")
        assert [v.n for v in status.verdicts] == [0, 0, 0]  # a new stage is judged on its own runs

        await report_runs(handle, store, 0, 25)
        status = await until(handle, lambda s: s.paused)
        assert status.last_breach is not None
        (verdict,) = status.last_breach.verdicts
        assert verdict.limit is not None
        assert verdict.statistic is not None
        # Each failure adds log(0.30 / 0.15): the 17th takes the evidence past the limit (11.73), and it
        # stays there (latched) while the rest of the batch is counted.
        assert (verdict.rule, verdict.method) == ("pass-rate", "cusum")
        assert verdict.n >= 17
        assert verdict.statistic == pytest.approx(17 * math.log(2))
        assert verdict.statistic >= verdict.limit > verdict.statistic - math.log(2)
        assert verdict.reason.startswith(f"evidence of a drop: {verdict.statistic:.1f} of the {verdict.limit:.1f}")
        await until(handle, lambda s: s.runs_in_stage == 25)  # the rest of the batch, counted while paused
        await keep_history(handle, "rollout-sequential")
        resumed = await handle.execute_update(RolloutWorkflow.resume_update, Control(operator="omar"))
        assert resumed.accepted
        status = await rollout_status(handle)
        assert [(v.n, v.statistic) for v in status.verdicts] == [(0, 0.0)] * 3  # the evidence starts afresh
    breach = [e for e in await store.events("rollout", handle.id) if e["kind"] == "breach"]
    assert breach[0]["payload"]["verdicts"][0]["statistic"] == verdict.statistic
