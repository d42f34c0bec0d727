"""Passkey-signed votes, checked by the run (not by the console): a software authenticator enrolled in the
reviewer's evidence chain signs acts the way a browser's does; the run accepts what holds and refuses,
and records, everything else. ``evidence verify`` re-checks each accepted signature offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from webauthn.helpers import base64url_to_bytes

from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence.chain import event_hash
from govflow.console.accounts import Accounts
from govflow.examples.support_triage import EXAMPLES, example_registry
from govflow.policies import AttemptOutcome, Policy, parse_policy, signing_message
from govflow.policies.passkeys import PasskeyProof
from govflow.workers.worker import build_worker
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.run_api import ReviewRequest, RunInput
from tests.helpers import keep_history, wait_for
from tests.soft_passkey import SoftPasskey

ORIGIN = "http://localhost:8280"


def passkey_policy() -> Policy:
    """Support triage, every vote signed, by a passkey only (identity.passkey_only)."""
    text = (EXAMPLES / "support-triage.yaml").read_text()
    return parse_policy(text + "\nidentity:\n  signed: [vote]\n  passkey: [vote]\n  passkey_only: [vote]\n")


async def enroll(store: EvidenceStore, key: SoftPasskey) -> None:
    """``key`` enrolled for its reviewer as the console enrolls a passkey: through a one-time link."""
    accounts = Accounts(store)
    token, _ = await accounts.issue_enrollment(key.reviewer, "omar", timedelta(minutes=5))
    await accounts.enroll(token, key.credential_id, base64url_to_bytes(key.public_key), 0, ORIGIN)


async def start(
    env: WorkflowEnvironment, task_queue: str, ticket: str
) -> tuple[WorkflowHandle[Any, Any], dict[str, str]]:
    handle = await env.client.start_workflow(
        GovernedRunWorkflow.run,
        RunInput(task="support-triage", item_key=ticket, item={"ticket_id": ticket}, requester="priya", mode="live"),
        id=f"run-{uuid.uuid4()}",
        task_queue=task_queue,
    )
    status = await wait_for(handle, lambda s: bool(s.pending))
    return handle, {p.action_id: p.digest for p in status.pending}


async def vote(handle: WorkflowHandle[Any, Any], reviewer: str, action: str, digest: str,
               proof: PasskeyProof | None, verdict: str = "approve") -> AttemptOutcome:  # fmt: skip
    sent = ReviewRequest(reviewer=reviewer, action_id=action, action_digest=digest, verdict=verdict,  # type: ignore[arg-type]
                         passkey=proof, session="console-session-1")  # fmt: skip
    outcome: AttemptOutcome = await handle.execute_update(GovernedRunWorkflow.review, sent)
    return outcome


def act(handle: WorkflowHandle[Any, Any], digest: str, verdict: str = "approve") -> bytes:
    return signing_message(handle.id, digest, verdict)


async def test_a_passkey_signed_vote_publishes_and_every_forgery_is_refused_and_recorded(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    bob = SoftPasskey("bob", origin=ORIGIN, counter=1)
    alice = SoftPasskey("alice", origin=ORIGIN)
    await enroll(store, bob)
    await enroll(store, alice)
    registry = example_registry(sor_url, policy=passkey_policy())
    worker = build_worker(env.client, task_queue, store, registry, console=ORIGIN,
                          workflow_failure_exception_types=[Exception])  # fmt: skip
    async with worker:
        one, one_digests = await start(env, task_queue, "T0001")
        two, two_digests = await start(env, task_queue, "T0002")
        churn, churn_digests = await start(env, task_queue, "T0003")  # a reply, and a churn flag needing two leads
        d1, d2 = one_digests["reply"], two_digests["reply"]
        early = bob.sign([act(one, d1)])  # signed now, sent after a later one: its counter goes back
        refused: dict[str, tuple[AttemptOutcome, str]] = {}

        # What the console, a Temporal administrator or anyone else can send without bob's device.
        refused["no assertion"] = (
            await vote(one, "bob", "reply", d1, None),
            "sign it with your passkey in the reviewer console",
        )
        forged = bob.sign([act(one, d1)])
        response = dict(
            forged.assertion["response"], signature=alice.sign([act(one, d1)]).assertion["response"]["signature"]
        )
        forged = forged.model_copy(update={"assertion": {**forged.assertion, "response": response}})
        refused["forged signature"] = (await vote(one, "bob", "reply", d1, forged), "Could not verify")
        refused["another run"] = (await vote(one, "bob", "reply", d1, bob.sign([act(two, d2)])), "signed other acts")
        refused["another verdict"] = (
            await vote(one, "bob", "reply", d1, bob.sign([act(one, d1, "reject")])),
            "signed other acts",
        )
        refused["another action"] = (
            await vote(churn, "bob", "flag-churn", churn_digests["flag-churn"],
                       bob.sign([act(churn, churn_digests["reply"])])), "signed other acts",
        )  # fmt: skip
        refused["another origin"] = (
            await vote(one, "bob", "reply", d1, bob.sign([act(one, d1)], origin="http://localhost:9999")),
            "Unexpected client data origin",
        )
        refused["no user verification"] = (
            await vote(one, "bob", "reply", d1, bob.sign([act(one, d1)], verified=False)),
            "User verification",
        )
        refused["someone else's passkey"] = (
            await vote(one, "bob", "reply", d1, alice.sign([act(one, d1)])),
            "not a passkey enrolled for bob",
        )
        bulk = bob.sign([act(two, d2), act(churn, churn_digests["reply"])])
        refused["a bulk list without the act"] = (await vote(one, "bob", "reply", d1, bulk), "signed other acts")

        # bob's own, signed now: accepted, and the run publishes.
        latest = bob.sign([act(two, d2)])
        assert (await vote(two, "bob", "reply", d2, latest)).accepted
        assert (await two.result()).outcome == "published"
        refused["a counter that goes back"] = (await vote(one, "bob", "reply", d1, early), "counter went back")

        # One touch signing two acts of a two-lead rule: the first use counts, sending it again does not.
        both = bob.sign([act(churn, churn_digests["flag-churn"]), act(churn, churn_digests["reply"])])
        assert (await vote(churn, "bob", "flag-churn", churn_digests["flag-churn"], both)).accepted
        refused["the same assertion again"] = (
            await vote(churn, "bob", "flag-churn", churn_digests["flag-churn"], both),
            "used already in this run",
        )
        assert (await vote(churn, "bob", "reply", churn_digests["reply"], both)).accepted  # its other act

        # A revoked passkey signs nothing.
        await Accounts(store).revoke("alice", "omar", "left the team")
        refused["a revoked passkey"] = (
            await vote(one, "alice", "reply", d1, alice.sign([act(one, d1)])),
            "revoked by omar (left the team)",
        )
        for name, (outcome, says) in refused.items():
            assert not outcome.accepted, name
            assert says in outcome.reason, (name, outcome.reason)
        for handle in (one, churn):
            await handle.terminate("test over")
        await keep_history(churn, "passkey-votes")  # every refusal above on `one`; the bulk touch on this one
        await keep_history(one, "passkey-refusals")

    rows = await store.pool.fetch("SELECT run_id, accepted, reason, via, passkey FROM approval_attempts")
    assert len([r for r in rows if not r["accepted"]]) == len(refused)  # every refusal recorded
    accepted = [r for r in rows if r["accepted"]]
    assert len(accepted) == 3
    assert all(r["via"] == "console" and r["passkey"]["credential"]["reviewer"] == "bob" for r in accepted)
    for run_id in {r["run_id"] for r in rows}:
        assert (await store.verify("run", run_id)).ok, run_id


async def test_evidence_verify_catches_an_edited_assertion_even_after_a_consistent_rehash(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str, database_url: str
) -> None:
    env = time_skipping_env
    bob = SoftPasskey("bob", origin=ORIGIN)
    await enroll(store, bob)
    registry = example_registry(sor_url, policy=passkey_policy())
    async with build_worker(env.client, task_queue, store, registry, console=ORIGIN):
        handle, digests = await start(env, task_queue, "T0001")
        assert (
            await vote(handle, "bob", "reply", digests["reply"], bob.sign([act(handle, digests["reply"])]))
        ).accepted
        await handle.result()
    assert (await store.verify("run", handle.id)).ok
    # A superuser swaps the assertion for one signed for another act and rehashes the chain from there on.
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            rows = await conn.fetch(
                "SELECT * FROM evidence_events WHERE stream = 'run' AND stream_id = $1 ORDER BY seq", handle.id
            )
            target = next(r for r in rows if r["kind"] == "approval_attempt")
            prev = target["prev_hash"]
            for row in rows[rows.index(target) :]:
                payload = json.loads(row["payload"]) if isinstance(row["payload"], str) else dict(row["payload"])
                if row["seq"] == target["seq"]:
                    other = bob.sign([signing_message(handle.id, "b" * 64, "approve")])
                    payload["passkey"]["proof"] = other.model_dump(mode="json")
                    await conn.execute("UPDATE approval_attempts SET passkey = $1 WHERE run_id = $2 AND seq = $3",
                                       json.dumps(payload["passkey"]), handle.id, row["seq"])  # fmt: skip
                new = event_hash("run", handle.id, row["seq"], row["kind"], row["occurred_at"], payload, prev)
                await conn.execute(
                    "UPDATE evidence_events SET payload = $1, prev_hash = $2, hash = $3 WHERE stream = 'run' "
                    "AND stream_id = $4 AND seq = $5", json.dumps(payload), prev, new, handle.id, row["seq"],
                )  # fmt: skip
                prev = new
            await conn.execute(
                "UPDATE chain_heads SET hash = $1 WHERE stream = 'run' AND stream_id = $2", prev, handle.id
            )
    finally:
        await conn.close()
    report = await store.verify("run", handle.id)
    assert not report.ok
    (problem,) = report.problems
    assert problem.seq == target["seq"]
    assert f"approval_attempt {target['seq']}: bob's passkey signature does not verify" in problem.problem
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GOVFLOW_")}
    done = subprocess.run([sys.executable, "-m", "govflow", "evidence", "verify", handle.id], capture_output=True,
                          text=True, timeout=60, env={**environ, "GOVFLOW_DATABASE_URL": database_url})  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"approval_attempt {target['seq']}: bob's passkey signature does not verify" in done.stdout + done.stderr
