"""Everything a workflow receives from the Temporal UI or API is untrusted (DESIGN.md, invariant 9).

Empty, malformed, hostile, non-JSON and early payloads on every handler of every workflow: the workflow
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
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from govflow.activities import names
from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry
from govflow.client import grant_act, grant_status, propose_grant, revoke_grant
from govflow.policies import AttemptOutcome
from govflow.policies.standing import GrantTerms
from govflow.workers.worker import WORKFLOWS, untrusted_handler_problems
from govflow.workflows import handlers
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.rollout import RolloutWorkflow
from govflow.workflows.rollout_api import Control, ReportPoke
from govflow.workflows.run_api import Review, RunInput
from govflow.workflows.standing_grant import GrantAct, StandingGrantWorkflow
from tests.helpers import event_kinds, eventually, sor_fetch, start_run, wait_for, worker
from tests.workflows.rollout_helpers import admit_runs, finish_runs, rollout_status, start_rollout, until

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


# Bytes that are not JSON, as the API and a careless client can send them: the SDK used to drop these
# before any handler ran (a signal's sender was told it succeeded).
NOT_JSON: list[tuple[str, Payload]] = [
    ("a truncated object", Payload(metadata={"encoding": b"json/plain"}, data=b'{"reviewer": "bob", "action_dig')),
    ("an invalid escape", Payload(metadata={"encoding": b"json/plain"}, data=b'{"reviewer": "b\\qob"}')),
    ("bytes that are not UTF-8", Payload(metadata={"encoding": b"json/plain"}, data=b"\xff\xfe\x00{")),
    ("an unknown encoding", Payload(metadata={"encoding": b"text/yaml"}, data=b"reviewer: bob")),
    ("no encoding at all", Payload(data=b"bob")),
]


def _handlers_of(cls: type) -> tuple[str, list[str], list[str]]:
    """A registered workflow's name, signals and updates, read from its definition (not a list kept here)."""
    defn = workflow._Definition.must_from_class(cls)
    return defn.name or cls.__name__, sorted(n for n in defn.signals if n), sorted(n for n in defn.updates if n)


def test_every_handler_of_every_registered_workflow_takes_raw_input() -> None:
    assert untrusted_handler_problems(WORKFLOWS) == []


@workflow.defn(name="TypedProbe")
class TypedProbe:
    """A workflow written the way the grant's handlers were (``act: GrantAct``): never registered."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name="poke")
    async def poke(self, review: Review) -> None:
        pass

    @workflow.update(name="ask")
    async def ask(self, first: Review, second: Review) -> str:
        return "never"


def test_a_handler_that_takes_a_typed_argument_is_refused() -> None:
    """What the check above catches, in the worker and in the test above."""
    problems = untrusted_handler_problems([*WORKFLOWS, TypedProbe])
    assert len(problems) == 2
    assert problems[0].startswith("TypedProbe signal 'poke': ")
    assert "must take (self, *args: Any)" in problems[0]
    assert problems[1].startswith("TypedProbe update 'ask': ")
    # Declared the govflow way, it is refused where it is written.
    with pytest.raises(TypeError, match="must take \\(self, \\*args: Any\\)"):

        @handlers.signal(name="poke", description="typed")
        async def typed(self: Any, review: Review) -> None:
            pass


async def _grant(env: WorkflowEnvironment, task_queue: str) -> str:
    # The shared time-skipping server's clock runs far ahead of ours: the expiry is on its clock.
    expires = await env.get_current_time() + timedelta(days=20)
    t = GrantTerms(task="support-triage", task_version="1", rule="reply-to-ticket", match={"category": "bug"},
                   max_uses=5, expires_at=expires, reason="fuzz")  # fmt: skip
    return await propose_grant(env.client, task_queue, t, "alice")


async def test_an_unreadable_act_on_a_grant_is_refused_recorded_and_blocks_nothing(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, task_queue: str
) -> None:
    env = time_skipping_env
    # A grant expires (days away): waiting on a result must not skip the shared server's clock there.
    with env.auto_time_skipping_disabled():
        await _unreadable_grant_acts(env, store, registry, task_queue)


async def _unreadable_grant_acts(
    env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, task_queue: str
) -> None:
    async with worker(env.client, task_queue, store, registry):
        grant_id = await _grant(env, task_queue)
        handle = env.client.get_workflow_handle(grant_id)
        empty = await handle.execute_update(StandingGrantWorkflow.grant, result_type=AttemptOutcome)
        two = await handle.execute_update("grant", args=[{"person": "bob"}, {"person": "chen"}],
                                          result_type=AttemptOutcome)  # fmt: skip
        garbled = await handle.execute_update("revoke", RawValue(NOT_JSON[0][1]), result_type=AttemptOutcome)
        assert [o.code for o in (empty, two, garbled)] == ["unreadable"] * 3
        assert "the payload is empty" in empty.reason
        assert "2 payloads were sent" in two.reason
        assert "the payload is not JSON" in garbled.reason
        # Nothing was blocked: alice grants, bob revokes.
        assert (await grant_act(env.client, grant_id, GrantAct(person="alice"))).accepted
        assert (await revoke_grant(env.client, grant_id, GrantAct(person="bob", note="done"))).accepted
        assert (await handle.result()).startswith("revoked")
    acts = [e["payload"] for e in await store.events("grant", grant_id) if e["kind"] == "grant_act"]
    assert [(a["person"], a["act"], a["accepted"]) for a in acts] == [
        ("(unreadable)", "grant", False), ("(unreadable)", "grant", False), ("(unreadable)", "revoke", False),
        ("alice", "grant", True), ("bob", "revoke", True),
    ]  # fmt: skip
    assert (await store.verify("grant", grant_id)).ok


async def test_bytes_that_are_not_json_reach_the_handler_and_are_recorded(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        handle = await start_run(env.client, task_queue, "T0001")
        status = await wait_for(handle, lambda s: bool(s.pending))
        for _, payload in NOT_JSON:
            await handle.signal("approve", RawValue(payload))
            await handle.signal("reject", RawValue(payload))
        await _until_rows(store, handle.id, "approval_attempt", 2 * len(NOT_JSON))
        await handle.signal(GovernedRunWorkflow.approve, Review(reviewer="bob", action_digest=status.pending[0].digest))
        assert (await handle.result()).outcome == "published"
    rows = await store.pool.fetch(
        "SELECT reviewer, accepted, reason FROM approval_attempts WHERE run_id = $1 ORDER BY seq", handle.id
    )
    refused = rows[: 2 * len(NOT_JSON)]
    assert not any(r["accepted"] for r in refused)
    assert all("the payload is not JSON" in r["reason"] for r in refused), [r["reason"] for r in refused]
    assert "action_dig" in refused[0]["reason"]  # the bytes as they came, escaped
    assert "Unknown payload encoding text/yaml" in refused[6]["reason"]
    assert all(r["reason"].isprintable() for r in refused)
    assert (await store.verify("run", handle.id)).ok


async def test_fuzz_every_handler_of_every_registered_workflow_never_fails_a_workflow_task(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    payloads: list[list[Any]] = [*_fuzz_payloads(40), *([RawValue(p)] for _, p in NOT_JSON)]
    payloads.append([RawValue(NOT_JSON[0][1]), {"reviewer": "bob"}])
    payloads.append(["x" * 200_000])
    # The grant expires days away: waiting on the run's result must not skip the clock there.
    with env.auto_time_skipping_disabled():
        await _fuzz(env, store, registry, sor_url, task_queue, payloads)


async def _fuzz(
    env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, sor_url: str, task_queue: str,
    payloads: list[list[Any]],
) -> None:  # fmt: skip
    async with worker(env.client, task_queue, store, registry):
        run = await start_run(env.client, task_queue, "T0001")
        status = await wait_for(run, lambda s: bool(s.pending))
        rollout = await start_rollout(env, task_queue)
        grant = env.client.get_workflow_handle(await _grant(env, task_queue))
        instances: dict[str, WorkflowHandle[Any, Any]] = {
            names.GOVERNED_RUN: run, names.ROLLOUT: rollout, names.STANDING_GRANT: grant,
        }  # fmt: skip
        fuzzed: list[str] = []
        for cls in WORKFLOWS:
            name, signals, updates = _handlers_of(cls)
            if not signals and not updates:
                continue
            # A workflow with handlers and no instance here is a test to extend, not one to skip.
            handle = instances[name]
            for args in payloads:
                for signal in signals:
                    await handle.signal(signal, args=args)
                for update in updates:
                    # Refused with a reason (or lost by the time-skipping server) is fine; a wedge is not.
                    with contextlib.suppress(WorkflowUpdateFailedError, RPCError):
                        await handle.execute_update(update, args=args, rpc_timeout=timedelta(seconds=5))
            fuzzed += [f"{name}.{h}" for h in signals + updates]
        assert len(fuzzed) == 18, fuzzed
        # All of them still answer and act.
        for handle in instances.values():
            await _running(handle)
        assert (await rollout_status(rollout)).stage in ("shadow", "canary")
        assert (await grant_status(env.client, grant.id)).status == "proposed"
        assert (await grant_act(env.client, grant.id, GrantAct(person="alice"))).accepted
        await run.signal(GovernedRunWorkflow.approve, Review(reviewer="bob", action_digest=status.pending[0].digest))
        assert (await run.result()).outcome == "published"
        await _running(rollout)
    assert (await store.verify("run", run.id)).ok
    assert (await store.verify("rollout", rollout.id)).ok
    assert (await store.verify("grant", grant.id)).ok
    assert len(await sor_fetch(sor_url, "SELECT key FROM govflow_idempotency")) == 1
