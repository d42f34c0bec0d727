"""GovernedRunWorkflow on the time-skipping server, real Postgres for evidence and the SoR."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.api.workflowservice.v1 import SignalWorkflowExecutionRequest
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from govflow.activities.connectors import SharedPool
from govflow.activities.evidence import EvidenceStore
from govflow.activities.models import LocalBaselineModel, ModelError, ModelRequest, parse_output
from govflow.activities.models.chat import Message
from govflow.activities.registry import Registry
from govflow.client import submit
from govflow.examples import support_triage
from govflow.examples.support_triage import EXAMPLES, example_registry
from govflow.policies import parse_policy, signing_message
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.run_api import ExceptionDecision, Review, ReviewRequest, RunInput, RunResult
from tests.helpers import (
    event_kinds,
    fixture_signature,
    keep_history,
    sor_fetch,
    start_run,
    wait_for,
    worker,
)


async def test_an_action_waits_for_approval_and_is_written_once(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        handle = await start_run(env.client, task_queue, "T0001")
        status = await wait_for(handle, lambda s: bool(s.pending))
        (pending,) = status.pending
        assert pending.target == "ticketing.ticket.reply"
        assert pending.gates[0].eligible == ["alice", "bob", "chen"]
        await handle.signal(GovernedRunWorkflow.approve, Review(reviewer="alice", action_digest=pending.digest))
        result = await handle.result()
    assert result.outcome == "published"
    rows = await sor_fetch(sor_url, "SELECT reply_body, category FROM ticket WHERE id = 'T0001'")
    assert rows[0]["category"] == "bug"
    assert rows[0]["reply_body"].startswith("Thanks for writing")
    keys = await sor_fetch(sor_url, "SELECT key FROM govflow_idempotency")
    assert [k["key"] for k in keys] == [f"{result.run_id}:reply"]
    report = await store.verify("run", result.run_id)
    assert report.ok, report.problems
    kinds = await event_kinds(store, "run", result.run_id)
    assert kinds == [
        "run_started",
        "context_read",
        "model_call",
        "proposal",
        "quality_score",
        "quality_score",
        "policy_decision",
        "approval_attempt",
        "touched_record",
        "run_finished",
    ]


async def _attempts(store: EvidenceStore, run_id: str) -> list[tuple[str, bool, str]]:
    rows = await store.pool.fetch(
        "SELECT reviewer, accepted, reason FROM approval_attempts WHERE run_id = $1 ORDER BY seq", run_id
    )
    return [(r["reviewer"], r["accepted"], r["reason"]) for r in rows]


async def test_refused_attempts_are_recorded_with_the_reason(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        # T0003 is an unhappy customer: a reply (1 lead) and a churn-risk flag (2 leads).
        handle = await start_run(env.client, task_queue, "T0003", requester="alice")
        status = await wait_for(handle, lambda s: len(s.pending) == 2)
        reply, churn = sorted(status.pending, key=lambda p: p.action_id != "reply")
        assert churn.target == "crm.contact.update"
        assert churn.gates[0].quorum == 2

        async def vote(reviewer: str, digest: str, verdict: str = "approve", **kw: str):  # type: ignore[no-untyped-def]
            return await handle.execute_update(
                GovernedRunWorkflow.review,
                ReviewRequest(reviewer=reviewer, action_digest=digest, verdict=verdict, **kw),  # type: ignore[arg-type]
            )

        omar = await vote("omar", churn.digest)
        assert (omar.accepted, omar.code) == (False, "no_authority")
        requester = await vote("alice", churn.digest)
        assert (requester.accepted, requester.code) == (False, "separation_of_duties")
        stale = await vote("bob", "f" * 64, action_id="flag-churn")
        assert (stale.accepted, stale.code) == (False, "stale_digest")
        first = await vote("bob", churn.digest)
        assert first.accepted
        twice = await vote("bob", churn.digest)
        assert (twice.accepted, twice.code) == (False, "duplicate")
        still = await handle.query(GovernedRunWorkflow.status)
        assert [p.action_id for p in still.pending] == ["reply", "flag-churn"]  # quorum 2: one is not enough
        second = await vote("chen", churn.digest)
        assert second.accepted
        assert (await vote("bob", reply.digest)).accepted
        result = await handle.result()
        await keep_history(handle, "approved-with-refusals")
    assert result.outcome == "published"
    assert [a.status for a in result.actions] == ["written", "written"]
    contact = await sor_fetch(sor_url, "SELECT status FROM contact WHERE id = 'C0003'")
    assert contact[0]["status"] == "churn-risk"
    attempts = await _attempts(store, result.run_id)
    assert [(who, ok) for who, ok, _ in attempts] == [
        ("omar", False),
        ("alice", False),
        ("bob", False),
        ("bob", True),
        ("bob", False),
        ("chen", True),
        ("bob", True),
    ]
    assert attempts[1][2].startswith("separation_of_duties: alice requested this run")
    assert (await store.verify("run", result.run_id)).ok


async def test_expiry_escalates_then_fails_closed_and_a_late_vote_is_refused(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        handle = await start_run(env.client, task_queue, "T0001")
        status = await wait_for(handle, lambda s: bool(s.pending))
        digest = status.pending[0].digest
        await env.sleep(timedelta(hours=8, minutes=1))  # the reply gate escalates to support-manager
        escalated = await wait_for(handle, lambda s: s.pending[0].gates[0].eligible == ["chen"])
        assert escalated.pending[0].digest == digest
        late_lead = await handle.execute_update(
            GovernedRunWorkflow.review, ReviewRequest(reviewer="alice", action_digest=digest, verdict="approve")
        )
        assert (late_lead.accepted, late_lead.code) == (False, "no_authority")
        await env.sleep(timedelta(hours=4, minutes=1))
        result = await handle.result()
        await keep_history(handle, "expired-after-escalation")
        late = await handle.query(GovernedRunWorkflow.status)
    assert result.outcome == "rejected"
    assert result.actions[0].status == "expired"
    assert late.phase == "finished"
    kinds = await event_kinds(store, "run", result.run_id)
    assert "gate_escalated" in kinds
    assert "gate_expired" in kinds
    rows = await sor_fetch(sor_url, "SELECT reply_body FROM ticket WHERE id = 'T0001'")
    assert rows[0]["reply_body"] is None


@pytest.mark.parametrize("submitted", [False, True], ids=["started", "submitted"])
async def test_every_run_takes_one_path_and_records_no_patch_marker(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, task_queue: str, submitted: bool
) -> None:
    # One generation: a run started as the Temporal UI or the raw API starts one, and a run submitted by
    # govflow.client.submit, take the same path: the opening activity sets up, admits, gathers and
    # proposes; no patch marker (so no TemporalChangeVersion upsert, a visibility write per run).
    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        if submitted:
            run_id = await submit(env.client, task_queue, _submitted("T0003"))
            handle = env.client.get_workflow_handle(run_id, result_type=RunResult)
        else:
            handle = await start_run(env.client, task_queue, "T0003", mode="shadow")
        result = await handle.result()
        await keep_history(handle, "submitted-shadow" if submitted else "started-shadow")
        history = await handle.fetch_history()
    kinds = [e.WhichOneof("attributes") for e in history.events]
    assert result.outcome == "shadowed"
    assert {a.status for a in result.actions} == {"would_write"}
    assert "marker_recorded_event_attributes" not in kinds
    assert _activities(history) == ["govflow.open_run", "govflow.append_run_evidence"]
    assert (await event_kinds(store, "run", result.run_id))[:4] == [
        "run_started",
        "context_read",
        "model_call",
        "proposal",
    ]
    # Task, stage and mode to filter by, set by the submit or else by the run; GovflowAwaitingApproval only
    # once a run waits.
    started = history.events[0].workflow_execution_started_event_attributes
    upserts = [e for e in history.events if e.HasField("upsert_workflow_search_attributes_event_attributes")]
    attributes = {"GovflowTask", "GovflowStage", "GovflowMode"}
    if submitted:
        assert set(started.search_attributes.indexed_fields) == attributes
        assert upserts == []
    else:
        (upsert,) = upserts
        assert set(upsert.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields) == (
            attributes
        )


def _activities(history: WorkflowHistory) -> list[str]:
    """The activity types a run scheduled, in order."""
    return [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")]  # fmt: skip


def _submitted(ticket: str, mode: str = "shadow") -> RunInput:
    return RunInput(task="support-triage", item_key=ticket, item={"ticket_id": ticket}, requester="priya",
                    mode=mode)  # type: ignore[arg-type]  # fmt: skip


def _registry(sor_url: str, responder: Callable[[ModelRequest], str], task: Any = None) -> Registry:
    """The support-triage example (or ``task``) with its model answering ``responder``."""
    registry = Registry()
    registry.register(
        task or support_triage.SupportTriage(),
        policy=EXAMPLES / "support-triage.yaml",
        connectors=support_triage.connectors(SharedPool(sor_url)),
        model=LocalBaselineModel(responder),
    )
    return registry


async def test_a_model_that_fails_while_the_run_opens_is_asked_again_by_the_propose_activity(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str
) -> None:
    # The opening activity does not retry the model with its admission and reads: the run's propose
    # activity asks again, with its own retries, and the run goes on from there.
    env = time_skipping_env
    answer, calls = support_triage.triage_responder(), []

    def flaky(request: ModelRequest) -> str:
        calls.append(request)
        if len(calls) == 1:
            raise ModelError("the model answered 503", retryable=True)
        return str(answer(request))

    registry = _registry(sor_url, flaky)
    async with worker(env.client, task_queue, store, registry):
        run_id = await submit(env.client, task_queue, _submitted("T0003"))
        handle = env.client.get_workflow_handle(run_id, result_type=RunResult)
        result = await handle.result()
        history = await handle.fetch_history()
    assert result.outcome == "shadowed"
    assert len(calls) == 2
    assert _activities(history) == ["govflow.open_run", "govflow.propose", "govflow.append_run_evidence"]
    kinds = await event_kinds(store, "run", run_id)
    assert (kinds.count("context_read"), kinds.count("model_call"), kinds.count("proposal")) == (1, 1, 1)
    assert (await store.verify("run", run_id)).ok


async def test_shadow_mode_writes_nothing_and_records_what_it_would_write(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        handle = await start_run(env.client, task_queue, "T0003", mode="shadow")
        result = await handle.result()
        await keep_history(handle, "shadow")
        # What the Temporal UI shows as the run's details: what it is, where it stands, where its evidence is.
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert result.outcome == "shadowed"
    assert "item `T0003` · mode **shadow**" in metadata.current_details
    assert "outcome **shadowed**" in metadata.current_details
    assert f"Evidence: `govflow evidence show {handle.id}`" in metadata.current_details
    assert {a.status for a in result.actions} == {"would_write"}
    assert await sor_fetch(sor_url, "SELECT key FROM govflow_idempotency") == []
    contact = await sor_fetch(sor_url, "SELECT status FROM contact WHERE id = 'C0003'")
    assert contact[0]["status"] == "active"
    touched = await store.pool.fetch(
        "SELECT mode, after_image FROM touched_records WHERE run_id = $1 ORDER BY seq", result.run_id
    )
    assert [t["mode"] for t in touched] == ["shadow", "shadow"]
    assert touched[1]["after_image"]["status"] == "churn-risk"
    assert touched[1]["after_image"]["phone"] == "[redacted]"  # the policy redacts phone numbers


async def test_a_read_outside_the_grants_is_refused_and_recorded(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        # T0004's contact lives in apac; the crm grant covers eu and us only.
        result = await (await start_run(env.client, task_queue, "T0004")).result()
    assert result.outcome == "refused"
    assert "its region is 'apac'" in result.reason
    refusal = [e for e in await store.events("run", result.run_id) if e["kind"] == "scope_refusal"]
    assert refusal[0]["payload"]["operation"] == "read"
    assert await sor_fetch(sor_url, "SELECT key FROM govflow_idempotency") == []


async def test_a_proposal_outside_the_grants_writes_nothing(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    evil = json.dumps(
        {
            "category": "question",
            "actions": [
                {"action_id": "reply", "system": "ticketing", "resource": "ticket", "operation": "reply",
                 "record_id": "T0001", "fields": {"reply_body": "hi"}},
                {"action_id": "steal", "system": "crm", "resource": "contact", "operation": "update",
                 "record_id": "C0001", "fields": {"email": "attacker@example.com"}},
            ],
            "scores": {"confidence": 0.99, "relevance": 0.99},
        }
    )  # fmt: skip
    registry = _registry(sor_url, lambda _request: evil, ModelDrivenTriage())
    async with worker(env.client, task_queue, store, registry):
        handle = await start_run(env.client, task_queue, "T0001")
        result = await handle.result()
        await keep_history(handle, "refused-by-scope")
    assert result.outcome == "refused"
    assert "field 'email' is outside grant crm-contacts" in result.reason
    rows = await sor_fetch(sor_url, "SELECT email FROM contact WHERE id = 'C0001'")
    assert rows[0]["email"] == "customer1@example.com"
    assert await sor_fetch(sor_url, "SELECT key FROM govflow_idempotency") == []
    decisions = await store.pool.fetch(
        "SELECT action_id, decision, rule FROM policy_decisions WHERE run_id = $1 ORDER BY seq", result.run_id
    )
    assert [(d["action_id"], d["decision"], d["rule"]) for d in decisions] == [
        ("reply", "needs_approval", "reply-to-ticket"),
        ("steal", "deny", "scope"),
    ]


@pytest.mark.parametrize("submitted", [False, True], ids=["started", "submitted"])
async def test_invalid_model_output_goes_to_the_exception_route(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str, submitted: bool
) -> None:
    # Started as the UI starts a run, or submitted: the same path (the opening activity proposes).
    env = time_skipping_env
    registry = _registry(sor_url, lambda _request: '{"category": "nonsense", "reply": ""}')
    async with worker(env.client, task_queue, store, registry):
        if submitted:
            run_id = await submit(env.client, task_queue, _submitted("T0001", mode="live"))
            handle = env.client.get_workflow_handle_for(GovernedRunWorkflow.run, run_id)
        else:
            handle = await start_run(env.client, task_queue, "T0001")
        status = await wait_for(handle, lambda s: s.exception is not None)
        assert status.exception is not None
        assert status.exception.startswith("invalid_model_output: model output is not a valid TriageOutput")
        refused = await handle.execute_update(
            GovernedRunWorkflow.resolve_exception_update, ExceptionDecision(reviewer="priya", decision="discard")
        )
        assert (refused.accepted, refused.code) == (False, "no_authority")
        await handle.signal(
            GovernedRunWorkflow.resolve_exception,
            ExceptionDecision(reviewer="bob", decision="discard", reason="model is broken"),
        )
        result = await handle.result()
        await keep_history(handle, "submitted-exception-discarded" if submitted else "exception-discarded")
        history = await handle.fetch_history()
    assert result.outcome == "exception"
    assert "discarded by bob" in result.reason
    assert "govflow.propose" not in _activities(history)
    kinds = await event_kinds(store, "run", result.run_id)
    assert kinds.count("exception_decision") == 2
    assert kinds.count("model_call") == 1
    assert "proposal" not in kinds
    assert await sor_fetch(sor_url, "SELECT key FROM govflow_idempotency") == []


async def test_contradictory_input_waits_for_a_human_then_retries(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    conn = await asyncpg.connect(sor_url)
    await conn.execute("UPDATE ticket SET from_email = 'someone-else@example.com' WHERE id = 'T0002'")
    async with worker(env.client, task_queue, store, registry):
        handle = await start_run(env.client, task_queue, "T0002", mode="shadow")
        status = await wait_for(handle, lambda s: s.exception is not None)
        assert status.exception is not None
        assert status.exception.startswith("contradictory_input: ticket T0002 came from someone-else@example.com")
        await conn.execute("UPDATE ticket SET from_email = NULL WHERE id = 'T0002'")  # a human fixed the data
        await handle.signal(
            GovernedRunWorkflow.resolve_exception, ExceptionDecision(reviewer="alice", decision="retry")
        )
        result = await handle.result()
    await conn.close()
    assert result.outcome == "shadowed"
    assert (await store.verify("run", result.run_id)).ok


async def test_a_signal_shaped_as_the_temporal_ui_sends_it_is_accepted(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        handle = await start_run(env.client, task_queue, "T0001")
        status = await wait_for(handle, lambda s: bool(s.pending))
        # The UI's "Send a Signal" form sends its text box as one json/plain payload.
        typed = f'{{"reviewer": "bob", "action_digest": "{status.pending[0].digest}"}}'
        await env.client.workflow_service.signal_workflow_execution(
            SignalWorkflowExecutionRequest(
                namespace=env.client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=handle.id),
                signal_name="approve",
                input=Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=typed.encode())]),
                identity="temporal-ui",
            )
        )
        result = await handle.result()
    assert result.outcome == "published"
    assert await _attempts(store, result.run_id) == [("bob", True, "bob approved under rule reply-to-ticket")]


async def test_a_malformed_ui_signal_is_recorded_without_failing_the_run(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        handle = await start_run(env.client, task_queue, "T0001")
        status = await wait_for(handle, lambda s: bool(s.pending))
        for typed in ('{"reviewr": "bob"}', "not json at all", "[1, 2]"):
            await env.client.workflow_service.signal_workflow_execution(
                SignalWorkflowExecutionRequest(
                    namespace=env.client.namespace,
                    workflow_execution=WorkflowExecution(workflow_id=handle.id),
                    signal_name="approve",
                    input=Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=typed.encode())]),
                )
            )
        await handle.signal(GovernedRunWorkflow.approve, Review(reviewer="bob", action_digest=status.pending[0].digest))
        result = await handle.result()
        await keep_history(handle, "ui-signals")
    assert result.outcome == "published"
    # JSON that is not a vote is refused and recorded; so are bytes that are not JSON (the SDK used to
    # drop them with a log line: workflows/payloads.py hands them over).
    attempts = await _attempts(store, result.run_id)
    assert [(who, ok) for who, ok, _ in attempts] == [("(unreadable)", False)] * 3 + [("bob", True)]
    assert "reviewer: Field required" in attempts[0][2]
    assert "the payload is not JSON" in attempts[1][2]
    assert "not json at all" in attempts[1][2]
    assert "the payload is a list" in attempts[2][2]


async def test_signed_approvals_are_checked(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    text = (EXAMPLES / "support-triage.yaml").read_text()
    text = text.replace(
        "      on_expiry: {to_role: support-manager, expires_after: 4h}\n",
        "      on_expiry: {to_role: support-manager, expires_after: 4h}\n      signature_required: true\n",
    ).replace(
        "{id: bob, name: Bob Okafor, roles: [support-lead]}",
        "{id: bob, name: Bob Okafor, roles: [support-lead], public_key: 3wM5aGd1T1LvakZDK+nlDE48zna6qlyT2Y593xp5qH8=}",
    )
    registry = example_registry(sor_url, policy=parse_policy(text))
    async with worker(env.client, task_queue, store, registry):
        handle = await start_run(env.client, task_queue, "T0001")
        status = await wait_for(handle, lambda s: bool(s.pending))
        digest = status.pending[0].digest

        async def vote(signature: str | None):  # type: ignore[no-untyped-def]
            return await handle.execute_update(
                GovernedRunWorkflow.review,
                ReviewRequest(reviewer="bob", action_digest=digest, verdict="approve", signature=signature),
            )

        assert (await vote(None)).code == "signature_missing"
        assert (await vote(sign_with("erik", handle.id, digest))).code == "signature_invalid"
        assert (await vote(sign_with("dana", "another-run", digest))).code == "signature_invalid"
        assert (await vote(sign_with("dana", handle.id, digest))).accepted  # bob's key is dana's fixture key
        result = await handle.result()
        await keep_history(handle, "signed-approval")
    assert result.outcome == "published"
    signed = await store.pool.fetch("SELECT signed, accepted FROM approval_attempts WHERE run_id = $1", result.run_id)
    assert [(r["signed"], r["accepted"]) for r in signed] == [
        (False, False),
        (True, False),
        (True, False),
        (True, True),
    ]


def sign_with(key_name: str, run_id: str, digest: str) -> str:
    return fixture_signature(key_name, signing_message(run_id, digest, "approve"))


class ModelDrivenTriage(support_triage.SupportTriage):
    """A task that passes the model's actions straight through: the worst case for scope."""

    async def propose(self, context, model):  # type: ignore[no-untyped-def, override]
        response = await model.complete(ModelRequest(messages=[Message(role="user", content="go")]))
        return parse_output(support_triage.TriageProposal, response.text)


async def test_a_vote_after_its_gate_expired_is_refused_and_recorded(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, sor_url: str, task_queue: str
) -> None:
    env = time_skipping_env
    async with worker(env.client, task_queue, store, registry):
        # T0003: the reply gate expires after 8h + 4h of escalation; the churn gate is open for 24h.
        handle = await start_run(env.client, task_queue, "T0003")
        status = await wait_for(handle, lambda s: len(s.pending) == 2)
        reply = next(p for p in status.pending if p.action_id == "reply")
        await env.sleep(timedelta(hours=12, minutes=5))
        await wait_for(handle, lambda s: [p.action_id for p in s.pending] == ["flag-churn"])
        late = await handle.execute_update(
            GovernedRunWorkflow.review, ReviewRequest(reviewer="chen", action_digest=reply.digest, verdict="approve")
        )
        assert (late.accepted, late.code) == (False, "expired")
        assert "the approval window for reply closed" in late.reason
        await handle.signal(GovernedRunWorkflow.reject, Review(reviewer="bob", action_id="flag-churn", reason="no"))
        result = await handle.result()
    assert result.outcome == "rejected"
    assert {a.action_id: a.status for a in result.actions} == {"reply": "expired", "flag-churn": "rejected"}
    attempts = await _attempts(store, result.run_id)
    assert attempts[0][:2] == ("chen", False)
    assert attempts[0][2].startswith("expired: the approval window for reply closed")
    assert await sor_fetch(sor_url, "SELECT key FROM govflow_idempotency") == []
