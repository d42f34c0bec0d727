"""A policy can require every human act signed: submit, vote, exception decision, resume, promote.

Separation of duties then holds against someone typing another person's name: the act must carry
that person's Ed25519 signature, bound to this run or rollout and this moment of it.
"""

from __future__ import annotations

import uuid

import asyncpg
from temporalio.testing import WorkflowEnvironment

from govflow.activities.evidence import EvidenceStore
from govflow.examples.support_triage import EXAMPLES, example_registry
from govflow.policies import Policy, parse_policy, signing_message
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.rollout import RolloutWorkflow
from govflow.workflows.rollout_api import Control, control_message
from govflow.workflows.run_api import ExceptionDecision, ReviewRequest, RunInput, exception_message, submit_message
from tests.helpers import event_kinds, fixture_signature, wait_for, worker
from tests.workflows.rollout_helpers import start_rollout, until

# priya signs with erik's fixture key, bob with dana's, omar with farah's.
PUBLIC = {
    "priya": "pcMVwsZVksep5pXLFFmatyH/AAkFY3D8wyYQoJXuDpQ=",
    "bob": "3wM5aGd1T1LvakZDK+nlDE48zna6qlyT2Y593xp5qH8=",
    "omar": "WyU2jZffmeWiUF5c1i3zyAcMiV3MfAmKXCKbazTt7eA=",
}
PRIVATE = {"priya": "erik", "bob": "dana", "omar": "farah"}


def signed_policy() -> Policy:
    text = (EXAMPLES / "support-triage.yaml").read_text()
    for person, key in PUBLIC.items():
        text = text.replace(f"{{id: {person}, ", f"{{id: {person}, public_key: {key}, ")
    text += "\nidentity:\n  signed: [submit, vote, exception, resume, promote]\n"
    return parse_policy(text)


def sign(person: str, message: bytes) -> str:
    return fixture_signature(PRIVATE[person], message)


async def _start_run(env: WorkflowEnvironment, task_queue: str, ticket: str, *, signed: bool, mode: str = "live"):  # type: ignore[no-untyped-def]
    run_id = f"run-{uuid.uuid4()}"
    inp = RunInput(
        task="support-triage",
        item_key=ticket,
        item={"ticket_id": ticket},
        requester="priya",
        mode=mode,  # type: ignore[arg-type]
    )
    if signed:
        inp = inp.model_copy(update={"signature": sign("priya", submit_message(run_id, inp))})
    return await env.client.start_workflow(GovernedRunWorkflow.run, inp, id=run_id, task_queue=task_queue)


async def test_an_unsigned_submit_is_refused_and_an_unsigned_vote_does_not_count(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, example_registry(sor_url, policy=signed_policy())):
        unsigned = await _start_run(env, task_queue, "T0001", signed=False)
        refused = await unsigned.result()
        assert refused.outcome == "refused"
        assert refused.reason.startswith("submit refused: the policy requires a signed submit")

        handle = await _start_run(env, task_queue, "T0001", signed=True)
        status = await wait_for(handle, lambda s: bool(s.pending))
        digest = status.pending[0].digest
        assert status.pending[0].gates[0].signature_required  # identity.signed covers every gate

        async def vote(signature: str | None):  # type: ignore[no-untyped-def]
            return await handle.execute_update(
                GovernedRunWorkflow.review,
                ReviewRequest(reviewer="bob", action_digest=digest, verdict="approve", signature=signature),
            )

        assert (await vote(None)).code == "signature_missing"
        forged = sign("priya", signing_message(handle.id, digest, "approve"))  # priya typing bob's name
        assert (await vote(forged)).code == "signature_invalid"
        assert (await vote(sign("bob", signing_message(handle.id, digest, "approve")))).accepted
        result = await handle.result()
    assert result.outcome == "published"
    finished = (await store.events("run", unsigned.id))[-1]
    assert finished["kind"] == "run_finished"
    assert finished["payload"]["outcome"] == "refused"
    # An unsigned submit took no admission and wrote nothing.
    assert await event_kinds(store, "run", unsigned.id) == ["run_started", "run_finished"]


async def test_an_exception_retry_needs_a_signature_for_that_exception_a_discard_does_not(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    conn = await asyncpg.connect(sor_url)
    await conn.execute("UPDATE ticket SET from_email = 'someone-else@example.com' WHERE id = 'T0002'")
    async with worker(env.client, task_queue, store, example_registry(sor_url, policy=signed_policy())):
        handle = await _start_run(env, task_queue, "T0002", signed=True, mode="shadow")
        status = await wait_for(handle, lambda s: s.exception is not None)
        assert status.exception_expires_at is not None

        async def decide(signature: str | None):  # type: ignore[no-untyped-def]
            return await handle.execute_update(
                GovernedRunWorkflow.resolve_exception_update,
                ExceptionDecision(reviewer="bob", decision="retry", signature=signature),
            )

        assert (await decide(None)).code == "signature_missing"
        other_run = sign("bob", exception_message("another-run", "retry", status.exception_expires_at))
        assert (await decide(other_run)).code == "signature_invalid"
        await conn.execute("UPDATE ticket SET from_email = NULL WHERE id = 'T0002'")
        ok = await decide(sign("bob", exception_message(handle.id, "retry", status.exception_expires_at)))
        assert ok.accepted, ok.reason
        assert (await handle.result()).outcome == "shadowed"

        # Discarding only ends a run: never refused for want of a signature.
        await conn.execute("UPDATE ticket SET from_email = 'someone-else@example.com' WHERE id = 'T0002'")
        second = await _start_run(env, task_queue, "T0002", signed=True, mode="shadow")
        await wait_for(second, lambda s: s.exception is not None)
        discard = await second.execute_update(
            GovernedRunWorkflow.resolve_exception_update, ExceptionDecision(reviewer="bob", decision="discard")
        )
        assert discard.accepted
        assert (await second.result()).outcome == "exception"
    await conn.close()
    decisions = [e["payload"] for e in await store.events("run", handle.id) if e["kind"] == "exception_decision"]
    assert [(d["accepted"], d["signature"] is not None) for d in decisions] == [
        (False, False),
        (False, True),
        (True, True),
    ]


async def test_resume_and_promote_need_a_signature_that_cannot_be_replayed(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, example_registry(sor_url, policy=signed_policy())):
        handle = await start_rollout(env, task_queue)
        # A pause only reduces exposure: no signature needed, from anyone.
        assert (await handle.execute_update(RolloutWorkflow.pause_update, Control(operator="priya"))).accepted
        unsigned = await handle.execute_update(RolloutWorkflow.resume_update, Control(operator="omar"))
        assert not unsigned.accepted
        assert unsigned.reason.startswith("the policy requires a signed resume")
        now = await until(handle, lambda s: s.paused)
        signature = sign("omar", control_message("resume", handle.id, now.stage, now.control_seq))
        resumed = await handle.execute_update(
            RolloutWorkflow.resume_update, Control(operator="omar", signature=signature)
        )
        assert resumed.accepted, resumed.reason
        # The same signature, replayed after the next pause, is refused: it named the earlier state.
        await handle.execute_update(RolloutWorkflow.pause_update, Control(operator="priya"))
        replayed = await handle.execute_update(
            RolloutWorkflow.resume_update, Control(operator="omar", signature=signature)
        )
        assert not replayed.accepted
        assert "does not verify with omar's public key for this resume" in replayed.reason
        now = await until(handle, lambda s: s.paused)
        fresh = sign("omar", control_message("resume", handle.id, now.stage, now.control_seq))
        assert (
            await handle.execute_update(RolloutWorkflow.resume_update, Control(operator="omar", signature=fresh))
        ).accepted
        promote = await handle.execute_update(RolloutWorkflow.promote_update, Control(operator="omar"))
        assert not promote.accepted
        assert promote.reason.startswith("the policy requires a signed promote")
    kinds = await event_kinds(store, "rollout", handle.id)
    assert kinds.count("resumed") == 4  # two refused, two accepted, each recorded
