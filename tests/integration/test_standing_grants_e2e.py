"""Bounded standing approvals, end to end on the Temporal dev server and real Postgres."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry
from govflow.activities.run_activities import RunActivities
from govflow.activities.run_messages import GrantClaim, PlannedWrite, PublishAll
from govflow.client import grant_act, grant_status, propose_grant, revoke_grant
from govflow.export.bundle import bundle, markdown, show
from govflow.policies import Action
from govflow.policies.standing import GrantTerms
from govflow.workflows.run_api import RunResult
from govflow.workflows.standing_grant import GrantAct
from tests.helpers import eventually, keep_history, result_on_a_new_worker, start_run, wait_for, worker, worker_process
from tests.integration.test_governed_run_e2e import cli_env, govflow

pytestmark = pytest.mark.devserver

BUG_TICKETS = [f"T{i:04d}" for i in range(1, 31, 5)]  # "App crash": category bug, no churn signal


@pytest.fixture
async def triage(thirty_tickets: str) -> Any:
    from govflow.examples.support_triage import example_registry

    registry = example_registry(thirty_tickets)
    yield registry
    await registry.aclose()


def terms(**over: Any) -> GrantTerms:
    base: dict[str, Any] = {
        "task": "support-triage", "task_version": "1", "rule": "reply-to-ticket", "match": {"category": "bug"},
        "max_uses": 10, "expires_at": datetime.now(UTC) + timedelta(hours=1), "reason": "crash replies are routine",
    }  # fmt: skip
    return GrantTerms(**{**base, **over})


async def granted(client: Client, task_queue: str, t: GrantTerms, *by: str) -> str:
    grant_id = await propose_grant(client, task_queue, t, by[0])
    for person in by:
        outcome = await grant_act(client, grant_id, GrantAct(person=person))
        assert outcome.accepted, outcome
    return grant_id


async def test_fifty_runs_racing_for_a_cap_of_ten(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, triage: Registry, task_queue: str
) -> None:
    client = dev_server_env.client
    async with worker(client, task_queue, store, triage):
        grant_id = await granted(client, task_queue, terms(max_uses=10), "alice")
        assert (await grant_status(client, grant_id)).status == "active"
        handles = await asyncio.gather(*(start_run(client, task_queue, BUG_TICKETS[i % 6]) for i in range(50)))

        async def settled(h: Any) -> str:
            status = await wait_for(h, lambda s: s.outcome is not None or bool(s.pending))
            return status.outcome or "waiting"

        outcomes = await asyncio.gather(*(settled(h) for h in handles))
        # Approvals that come later do not change the count: the runs still waiting need a person.
        await asyncio.sleep(1.0)
        outcomes = await asyncio.gather(*(settled(h) for h in handles))
        published = [h.id for h, o in zip(handles, outcomes, strict=True) if o == "published"]
        waiting = [h.id for h, o in zip(handles, outcomes, strict=True) if o == "waiting"]
        assert (len(published), len(waiting)) == (10, 40)
        for h in handles:
            if h.id in waiting:
                await h.terminate("test over")
    (row,) = await store.grants("support-triage")
    assert (row["uses"], row["status"]) == (10, "active")
    attempt = next(e["payload"] for e in await store.events("run", published[0]) if e["kind"] == "approval_attempt")
    assert (attempt["reviewer"], attempt["via"], attempt["accepted"]) == (f"grant:{grant_id}", "grant", True)
    assert (await store.verify("grant", grant_id)).ok
    # What-if replays each standing approval by the grant's terms: the same policy changes nothing; one
    # that forbids grants on the rule names exactly the ten runs the grant approved.
    from govflow.examples.support_triage import EXAMPLES
    from govflow.policies import parse_policy
    from govflow.whatif import collect, whatif

    evidence = await collect(store, "support-triage", None, None, 1_000_000)
    assert whatif(triage.get("support-triage", "1").policy, evidence, "support-triage", None).changes == []
    text = (EXAMPLES / "support-triage.yaml").read_text()
    forbids = parse_policy(text.replace("      on_expiry: {to_role: support-manager, expires_after: 4h}\n",
                                        "      on_expiry: {to_role: support-manager, expires_after: 4h}\n"
                                        "      standing: false\n"))  # fmt: skip
    changes = whatif(forbids, evidence, "support-triage", None).changes
    assert sorted(c.run_id for c in changes) == sorted(published)
    assert {c.group for c in changes} == {"standing approval no longer holds"}


async def test_a_revoked_grant_approves_nothing_more_and_its_requester_never_benefits(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, triage: Registry, task_queue: str
) -> None:
    client = dev_server_env.client
    async with worker(client, task_queue, store, triage):
        grant_id = await granted(client, task_queue, terms(max_uses=5), "alice")
        first = await start_run(client, task_queue, "T0001")
        assert (await client.get_workflow_handle(first.id, result_type=RunResult).result()).outcome == "published"
        await keep_history(first, "standing-approved")
        # Separation of duties: alice's own request is not approved by alice's grant.
        own = await start_run(client, task_queue, "T0006", requester="alice")
        assert (await wait_for(own, lambda s: bool(s.pending))).pending[0].action_id == "reply"

        refused = await revoke_grant(client, grant_id, GrantAct(person="omar", note="not his to revoke"))
        assert (refused.accepted, refused.code) == (False, "no_authority")
        outcome = await revoke_grant(client, grant_id, GrantAct(person="bob", note="replies went wrong"))
        assert outcome.accepted, outcome
        after = await start_run(client, task_queue, "T0011")
        assert (await wait_for(after, lambda s: bool(s.pending))).pending[0].action_id == "reply"
        again = await grant_act(client, grant_id, GrantAct(person="chen"))
        assert (again.accepted, again.code) == (False, "closed")
        assert again.reason.startswith(f"{grant_id} has ended")
        for h in (own, after):
            await h.terminate("test over")
        await eventually(lambda: grant_status(client, grant_id), lambda s: s.status == "revoked")
    (row,) = await store.grants("support-triage")
    assert (row["status"], row["uses"], row["ended_by"], row["end_reason"]) == (
        "revoked",
        1,
        "bob",
        "replies went wrong",
    )
    kinds = [e["kind"] for e in await store.events("grant", grant_id)]
    assert kinds == ["grant_proposed", "grant_act", "grant_activated", "grant_act", "grant_act", "grant_ended"]
    # What `evidence show` / `export` give an auditor: every act, the refused one too, and the chain verified.
    shown = "\n".join(await show(store, "grant", grant_id))
    assert "alice grant: accepted (alice granted" in shown
    assert "omar revoke: REFUSED (omar may not approve rule reply-to-ticket" in shown
    assert "ended: revoked by bob: replies went wrong" in shown
    exported = await bundle(store, "grant", grant_id)
    assert exported["verified"]
    assert "chain: **verifies** (6 events)" in markdown(exported)
    run_attempts = [
        e["payload"]["reviewer"] for e in await store.events("run", first.id) if e["kind"] == "approval_attempt"
    ]
    assert run_attempts == [f"grant:{grant_id}"]


async def test_a_publish_that_starts_after_the_revocation_does_not_write(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, triage: Registry, task_queue: str, thirty_tickets: str
) -> None:
    client = dev_server_env.client
    async with worker(client, task_queue, store, triage):
        grant_id = await granted(client, task_queue, terms(max_uses=3), "alice")
        activities = RunActivities(triage, store)
        env = ActivityEnvironment()
        claim = GrantClaim(task="support-triage", task_version="1", rule="reply-to-ticket",
                           fields={"category": "bug", "reply_body": "x"}, requester="priya", run_id="r-claimed",
                           action_id="reply", at=datetime.now(UTC))  # fmt: skip
        # Claimed twice (a retried activity, a worker killed after the claim): one use, the same grant.
        assert await env.run(activities.claim_grant, claim) == grant_id
        assert await env.run(activities.claim_grant, claim) == grant_id
        assert (await store.grants())[0]["uses"] == 1
        assert (await revoke_grant(client, grant_id, GrantAct(person="alice"))).accepted
        await eventually(lambda: store.grants(), lambda rows: rows[0]["status"] == "revoked")
        fields = {"reply_body": "claimed before, written after", "category": "bug"}
        action = Action(action_id="reply", system="ticketing", resource="ticket", operation="reply",
                        record_id="T0001", fields=fields)  # fmt: skip
        write = PublishAll(run_id="r-claimed", task="support-triage", task_version="1", seq=1, at=datetime.now(UTC),
                           writes=[PlannedWrite(action=action, grant=grant_id)])  # fmt: skip
        refused = (await env.run(activities.publish_all, write)).refused
        assert refused is not None
        assert f"standing approval {grant_id} is no longer active" in refused.reason
    conn = await asyncpg.connect(thirty_tickets)
    try:
        assert await conn.fetchval("SELECT reply_body FROM ticket WHERE id = 'T0001'") is None
    finally:
        await conn.close()


async def test_grants_outside_the_rules_are_refused_naming_what_is_wrong(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, triage: Registry, task_queue: str, database_url: str
) -> None:
    client = dev_server_env.client
    async with worker(client, task_queue, store, triage):
        cases = {
            "rule flag-churn-risk forbids standing approvals (high-risk rules do": terms(rule="flag-churn-risk"),
            "max uses must be at least 1, not 0": terms(max_uses=0),
            "max uses must be at least 1, not -3": terms(max_uses=-3),
            "a standing approval needs a match on at least one field": terms(match={}),
            "which has passed": terms(expires_at=datetime.now(UTC) - timedelta(minutes=1)),
            "longer than 30 days": terms(expires_at=datetime.now(UTC) + timedelta(days=31)),
            "has no action rule 'nope'": terms(rule="nope"),
        }
        for expected, t in cases.items():
            grant_id = await propose_grant(client, task_queue, t, "alice")
            status = await eventually(lambda: grant_status(client, grant_id), lambda s: s.status != "proposed",  # noqa: B023
                                      tolerate=(Exception,))  # fmt: skip
            assert status.status == "refused", status
            assert expected in status.reason, (expected, status.reason)
        # Wider than the granter's authority: priya may not approve replies, so may not grant them.
        grant_id = await propose_grant(client, task_queue, terms(), "priya")
        outcome = await grant_act(client, grant_id, GrantAct(person="priya"))
        assert (outcome.accepted, outcome.code) == (False, "no_authority")
        assert "priya may not approve rule reply-to-ticket" in outcome.reason

        environ = cli_env(dev_server_env, database_url, task_queue)
        code, out, err = await govflow(
            environ, "approvals", "grant", "--task", "support-triage", "--rule", "reply-to-ticket",
            "--match", "category=bug", "--max-uses", "2", "--expires", "2h", "--as", "bob",
        )  # fmt: skip
        assert code == 0, err
        assert "accepted: bob granted" in out
        assert "active (1 of 1 granted: bob)" in out
        code, out, err = await govflow(environ, "approvals", "grant", "--task", "support-triage", "--as", "bob")
        assert code == 1
        assert "a new standing approval needs --rule, --max-uses, --expires, --match field=value" in err
        code, out, _ = await govflow(environ, "approvals", "grants", "--task", "support-triage")
        assert code == 0
        (line,) = [x for x in out.splitlines() if "granted by bob" in x]
        assert "active" in line
        assert 'match {"category": "bug"}: 0/2 used' in line
    refused = [g for g in await store.grants() if g["status"] == "proposed"]
    assert len(refused) == 1  # priya's: proposed, never granted (it expires unused); refused terms write no row


async def test_a_worker_killed_mid_publish_never_spends_a_use_twice(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, database_url: str, tmp_path: Path
) -> None:
    # The crash test's worker (tests/integration/crash_app.py): it SIGKILLs itself right after the write
    # commits, before its evidence; a second worker finishes the run.
    env = dev_server_env
    task_queue = f"tq-{tmp_path.name}"
    environ = cli_env(env, database_url, task_queue, CRASH_MARKER=str(tmp_path / "crashed"), SOR_URL=sor_url,
                      GOVFLOW_APP="tests.integration.crash_app:build")  # fmt: skip

    first = await worker_process(environ)
    try:
        grant_id = await granted(env.client, task_queue, terms(max_uses=2), "alice")
        handle = await start_run(env.client, task_queue, "T0001")  # approved by the grant: nobody votes
        await asyncio.wait_for(first.wait(), timeout=60)
        assert first.returncode == -9, "the worker should have killed itself after the write"
    finally:
        if first.returncode is None:
            first.kill()
    result = await result_on_a_new_worker(env.client, environ, handle.id)
    assert result.outcome == "published"
    (row,) = await store.grants("support-triage")
    assert (row["grant_id"], row["uses"]) == (grant_id, 1)
    attempts = [e["payload"] for e in await store.events("run", handle.id) if e["kind"] == "approval_attempt"]
    assert [a["reviewer"] for a in attempts] == [f"grant:{grant_id}"]
    assert len([e for e in await store.events("run", handle.id) if e["kind"] == "touched_record"]) == 1


async def test_an_expired_grant_approves_nothing_and_takes_no_more_acts(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, triage: Registry, task_queue: str
) -> None:
    client = dev_server_env.client
    async with worker(client, task_queue, store, triage):
        # Four seconds: room for a slow machine to grant it before it expires.
        grant_id = await granted(
            client, task_queue, terms(expires_at=datetime.now(UTC) + timedelta(seconds=4)), "alice"
        )
        await eventually(lambda: grant_status(client, grant_id), lambda s: s.status == "expired", tries=150, every=0.1)
        run = await start_run(client, task_queue, "T0001")
        assert (await wait_for(run, lambda s: bool(s.pending))).pending[0].action_id == "reply"  # a person decides
        late = await grant_act(client, grant_id, GrantAct(person="bob"))
        assert (late.accepted, late.code) == (False, "closed")
        await run.terminate("test over")
    (row,) = await store.grants("support-triage")
    assert (row["status"], row["uses"]) == ("expired", 0)
    assert [e["kind"] for e in await store.events("grant", grant_id)][-1] == "grant_ended"
