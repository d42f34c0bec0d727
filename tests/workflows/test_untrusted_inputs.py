"""Everything a workflow receives from the Temporal UI or API is untrusted (DESIGN.md, invariant 9).

Empty, malformed, hostile and early payloads on every handler of both workflows: the workflow
stays healthy (its worker turns any workflow-task failure into a failed workflow, so a wedge
would show), and every refused attempt is in the evidence. Forged outcome reports move no gate.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.evidence import EvidenceStore
from activities.registry import Registry
from tests.helpers import event_kinds, eventually, sor_fetch, start_run, wait_for, worker
from tests.workflows.rollouts import admit_runs, finish_runs, rollout_status, start_rollout, until
from workflows.governed_run import GovernedRunWorkflow
from workflows.rollout import RolloutWorkflow
from workflows.rollout_models import Control, ReportPoke
from workflows.run_models import Review, RunInput

# What the Temporal UI's "Send a Signal" box and a careless script can send.
HOSTILE: list[tuple[str, list[Any]]] = [
    ("nothing", []),
    ("null", [None]),
    ("a string", ["approve it"]),
    ("a number", [42]),
    ("a list", [[1, 2]]),
    ("an empty object", [{}]),
    ("a misspelt field", [{"reviewr": "bob"}]),
    ("a wrong type", [{"reviewer": 7, "operator": ["x"]}]),
    ("a NUL byte", [{"reviewer": "bo\x00b", "operator": "al\x00ice"}]),
    ("an escape sequence", [{"reviewer": "\x1b[32mbob", "operator": "\x1b[2Jomar"}]),
    ("an overlong name", [{"reviewer": "b" * 5000, "operator": "o" * 5000}]),
    ("two payloads", [{"reviewer": "bob"}, {"reviewer": "alice"}]),
]


async def _running(handle: WorkflowHandle[Any, Any]) -> None:
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING


async def test_hostile_votes_and_decisions_are_recorded_and_the_run_goes_on(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        handle = await start_run(env.client, task_queue, "T0001")
        status = await wait_for(handle, lambda s: bool(s.pending))
        for _, args in HOSTILE:
            for signal in ("approve", "reject", "resolve_exception"):
                await handle.signal(signal, args=args)
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await handle.execute_update("review", args=[])
        assert "review refused: the payload is empty" in str(caught.value.cause)
        await _running(handle)
        # Recorded: one refused attempt per hostile approve and reject, in order, nothing accepted.
        await _until_rows(store, handle.id, "approval_attempt", 2 * len(HOSTILE))
        await handle.signal(GovernedRunWorkflow.approve, Review(reviewer="bob", action_digest=status.pending[0].digest))
        result = await handle.result()
    assert result.outcome == "published"
    rows = await store.pool.fetch(
        "SELECT reviewer, verdict, accepted, reason FROM approval_attempts WHERE run_id = $1 ORDER BY seq", handle.id
    )
    refused = rows[:-1]
    assert len(refused) == 2 * len(HOSTILE)
    assert not any(r["accepted"] for r in refused)
    assert all(r["reason"].startswith("unreadable: ") for r in refused)
    reasons = [r["reason"] for r in refused]
    assert "the payload is empty" in reasons[0]
    assert "holds the control character U+0000" in " ".join(reasons)
    assert "String should have at most 120 characters" in " ".join(reasons)
    assert "2 payloads were sent" in reasons[-1]
    # A name is printable in the evidence, whatever was sent.
    assert all(r["reviewer"].isprintable() for r in refused)
    assert (rows[-1]["reviewer"], rows[-1]["accepted"]) == ("bob", True)
    decisions = [e for e in await store.events("run", handle.id) if e["kind"] == "exception_decision"]
    assert len(decisions) == len(HOSTILE)
    assert not any(d["payload"]["accepted"] for d in decisions)
    assert (await store.verify("run", handle.id)).ok


async def _until_rows(store: EvidenceStore, run_id: str, kind: str, n: int) -> None:
    sql = "SELECT count(*) FROM run_events WHERE run_id = $1 AND kind = $2"
    await eventually(lambda: store.pool.fetchval(sql, run_id, kind), lambda count: count >= n, tries=400)


async def test_a_vote_that_arrives_before_the_run_is_ready_is_kept_and_recorded(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        handle = await env.client.start_workflow(
            GovernedRunWorkflow.run,
            RunInput(
                task="support-triage", item_key="T0002", item={"ticket_id": "T0002"}, requester="priya", mode="live"
            ),
            id=f"run-{uuid.uuid4()}",
            task_queue=task_queue,
            start_signal="approve",
            start_signal_args=[{"reviewer": "bob", "action_digest": "0" * 64}],
        )
        status = await wait_for(handle, lambda s: bool(s.pending))
        await _running(handle)
        await handle.signal(GovernedRunWorkflow.approve, Review(reviewer="bob", action_digest=status.pending[0].digest))
        assert (await handle.result()).outcome == "published"
    rows = await store.pool.fetch(
        "SELECT reviewer, accepted, reason FROM approval_attempts WHERE run_id = $1", handle.id
    )
    assert rows[0]["reason"].startswith("stale_digest: no action of this run matches")
    assert rows[-1]["accepted"]


async def test_hostile_operator_signals_fail_toward_safety(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        handle = await start_rollout(env, task_queue)
        # An unreadable resume or promote is refused; the rollout stays where it is.
        for _, args in HOSTILE:
            for signal in ("resume", "promote", "report"):
                await handle.signal(signal, args=args)
        status = await until(handle, lambda s: s.reports_refused == len(HOSTILE))
        assert (status.stage, status.paused) == ("shadow", False)
        # An unreadable pause still pauses, and so does an unreadable rollback.
        await handle.signal("pause", args=[])
        status = await until(handle, lambda s: s.paused)
        assert status.pause_reason.startswith(
            "paused by (unknown) (unverified): unreadable pause: the payload is empty"
        )
        answer = await handle.execute_update(RolloutWorkflow.resume_update, Control(operator="omar"))
        assert answer.accepted
        await handle.signal("rollback", args=[{"operator": "priya", "to": "sideways"}])
        status = await until(handle, lambda s: s.paused)
        assert status.pause_reason.startswith("paused by priya (unverified): unreadable rollback: to:")
        await _running(handle)
        # The second pause's row commits after its fence is taken.
        kinds = await eventually(lambda: event_kinds(store, "rollout", handle.id), lambda k: k.count("paused") == 2)
    assert kinds.count("resumed") == len(HOSTILE) + 1  # every refused resume, then omar's
    assert kinds.count("promotion_refused") == len(HOSTILE)
    assert kinds.count("report_refused") == len(HOSTILE)
    assert kinds.count("paused") == 2
    unreadable_pause = next(e for e in await store.events("rollout", handle.id) if e["kind"] == "paused")
    assert unreadable_pause["payload"]["payload"] == "[]"
    assert (await store.verify("rollout", handle.id)).ok


async def test_a_thousand_forged_reports_move_no_gate(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        handle = await start_rollout(env, task_queue)
        # Forged: made-up run ids, a real RunReport body claiming success, and a real admitted run
        # whose report arrives before it has finished (its evidence says nothing yet).
        (early,) = await admit_runs(handle, 1)
        for i in range(1000):
            body = {"run_id": f"forged-{i}", "stage": "shadow", "mode": "shadow", "checks_passed": True}
            await handle.signal("report", body)
        await handle.signal(RolloutWorkflow.report, ReportPoke(run_id=early.reason))
        status = await until(handle, lambda s: s.reports_refused == 1001)
        assert (status.stage, status.runs_in_stage, [v.n for v in status.verdicts]) == ("shadow", 0, [0, 0, 0])
        # The same admitted run, once finished, counts once; a replayed report of it is refused.
        await finish_runs(handle, store, [early], 1)
        status = await until(handle, lambda s: s.runs_in_stage == 1)
        await handle.signal(RolloutWorkflow.report, ReportPoke(run_id=early.reason))
        status = await until(handle, lambda s: s.reports_refused == 1002)
        assert status.runs_in_stage == 1
    refused = await store.pool.fetch(
        "SELECT payload FROM rollout_events WHERE rollout_id = $1 AND kind = 'report_refused' ORDER BY seq", handle.id
    )
    assert len(refused) == 1002
    reasons = [r["payload"]["reason"] for r in refused]
    assert reasons.count("this rollout did not admit the run, or has counted it already") == 1001
    assert f"no evidence of a run {early.reason}" in reasons
    assert (await store.verify("rollout", handle.id)).ok


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_KEYED = st.fixed_dictionaries(
    {},
    optional={
        k: _JSON | st.text(max_size=40)
        for k in ("reviewer", "operator", "action_digest", "action_id", "decision", "verdict", "run_id", "to", "reason")
    },
)


def _fuzz_payloads(n: int) -> list[list[Any]]:
    """Arbitrary JSON argument lists (0-2 payloads; objects with the handlers' own keys too), from hypothesis."""
    out: list[list[Any]] = []

    @settings(max_examples=n, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.lists(_KEYED | _JSON, max_size=2))
    def collect(args: list[Any]) -> None:
        out.append(args)

    collect()
    return out


async def test_fuzz_every_handler_of_both_workflows_never_fails_a_workflow_task(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    payloads = _fuzz_payloads(60)
    async with worker(env.client, task_queue, store, registry):
        run = await start_run(env.client, task_queue, "T0001")
        status = await wait_for(run, lambda s: bool(s.pending))
        rollout = await start_rollout(env, task_queue)
        for args in payloads:
            for name in ("approve", "reject", "resolve_exception"):
                await run.signal(name, args=args)
            for name in ("pause", "resume", "promote", "rollback", "report"):
                await rollout.signal(name, args=args)
            for handle, update in [
                (run, "review"), (run, "resolve_exception_update"), (rollout, "pause_update"),
                (rollout, "resume_update"), (rollout, "promote_update"), (rollout, "rollback_update"),
                (rollout, "lease"), (rollout, "admit_run"),
            ]:  # fmt: skip
                # Refused with a reason (or lost by the time-skipping server) is fine; a wedge is not.
                with contextlib.suppress(WorkflowUpdateFailedError, RPCError):
                    await handle.execute_update(update, args=args, rpc_timeout=timedelta(seconds=5))
        # Both still answer and act.
        await _running(run)
        await _running(rollout)
        assert (await rollout_status(rollout)).stage in ("shadow", "canary")
        await run.signal(GovernedRunWorkflow.approve, Review(reviewer="bob", action_digest=status.pending[0].digest))
        assert (await run.result()).outcome == "published"
        await _running(rollout)
    assert (await store.verify("run", run.id)).ok
    assert (await store.verify("rollout", rollout.id)).ok
    assert len(await sor_fetch(sor_url, "SELECT key FROM govflow_idempotency")) == 1
