"""Invoice matching end to end, on the Temporal dev server and a real finance system of record.

The example task (govflow.examples.invoice_matching) under the shipped policy: signed two-person
approval of large payments, the exception route for duplicates, contradictions and missing receipts,
the payments grant's vendor filter, and rollback --data voiding what a rollout paid.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from govflow import (
    InvalidModelOutput,
    OpenAIChatClient,
    Registry,
    ScopedConnectors,
    ScopeViolation,
    SharedPool,
    WriteRequest,
    parse_policy,
)
from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence.checkpoint import public_text
from govflow.client import admit, control, resolve, review, rollout_status, run_status, start_rollout, submit
from govflow.examples import invoice_matching as im
from govflow.policies import signing_message
from govflow.whatif import collect, whatif
from govflow.workflows.rollout_api import Control, control_message
from govflow.workflows.run_api import (
    ExceptionDecision,
    ReviewRequest,
    RunInput,
    RunResult,
    RunStatus,
    submit_message,
)
from tests.helpers import (
    FIXTURE_KEYS,
    event_kinds,
    eventually,
    fixture_key,
    fixture_signature,
    sor_fetch,
    wait_for,
    worker,
)
from tests.integration.test_governed_run_e2e import cli_env, govflow
from tests.local_servers import ChatCompletionsApi, serve

pytestmark = pytest.mark.devserver

TASK = "invoice-matching"


def shipped(**rollout: Any) -> Any:
    """The shipped policy; ``rollout`` replaces its rollout section (the rest is as shipped)."""
    doc = yaml.safe_load(im.POLICY.read_text())
    doc["rollout"] = rollout or {"required": False, "stages": doc["rollout"]["stages"]}
    return parse_policy(yaml.safe_dump(doc, sort_keys=False), source="invoice-matching.yaml (test)")


@pytest.fixture
async def finance(finance_url: str) -> AsyncIterator[Registry]:
    """Version 1 under the shipped policy, except that live runs by hand need no rollout."""
    registry = Registry()
    im.register(registry, finance_url, policy=shipped())
    yield registry
    await registry.aclose()


async def start(client: Client, task_queue: str, invoice: str, requester: str = "gus", **fields: Any) -> str:
    """A live run of ``invoice``, its submit signed by the requester as the policy requires."""
    run_id = f"run-{TASK}-{invoice}-{uuid.uuid4().hex[:6]}"
    inp = RunInput(task=TASK, item_key=invoice, item={"invoice_id": invoice}, requester=requester, mode="live",
                   **fields)  # fmt: skip
    signed = inp.model_copy(update={"signature": fixture_signature(requester, submit_message(run_id, inp))})
    return await submit(client, task_queue, signed, run_id=run_id)


async def vote(client: Client, run_id: str, reviewer: str, digest: str, *, signed_by: str | None = "self") -> Any:
    signer = reviewer if signed_by == "self" else signed_by
    signature = fixture_signature(signer, signing_message(run_id, digest, "approve")) if signer else None
    request = ReviewRequest(reviewer=reviewer, action_digest=digest, verdict="approve", signature=signature)
    return await review(client, run_id, request)


def payment_pending(status: RunStatus) -> Any:
    return next(p for p in status.pending if p.action_id == "schedule-payment")


async def test_a_large_payment_publishes_only_on_two_signed_distinct_finance_approvals(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, finance: Registry, finance_url: str, task_queue: str
) -> None:
    client = dev_server_env.client
    async with worker(client, task_queue, store, finance):
        # Dana keyed this one in herself: she may approve others' payments, never her own run's.
        run_id = await start(client, task_queue, im.LARGE, requester="dana")
        handle = client.get_workflow_handle(run_id, result_type=RunResult)
        status = await wait_for(handle, lambda s: bool(s.pending))
        pending = payment_pending(status)
        assert [p.action_id for p in status.pending] == ["schedule-payment"]  # recording the match needs nobody
        assert pending.fields["amount"] == "48250.00"
        (gate,) = pending.gates
        assert (gate.rule, gate.quorum, gate.signature_required) == ("large-payment", 2, True)
        assert gate.eligible == ["dana", "erik", "farah"]

        refusals = [
            ("dana", "self", "separation_of_duties"),
            ("erik", None, "signature_missing"),
            ("erik", "farah", "signature_invalid"),
            ("gus", "self", "no_authority"),
        ]
        for reviewer, signer, code in refusals:
            outcome = await vote(client, run_id, reviewer, pending.digest, signed_by=signer)
            assert (outcome.accepted, outcome.code) == (False, code), outcome
        outcome = await vote(client, run_id, "erik", pending.digest)
        assert outcome.accepted, outcome
        again = await vote(client, run_id, "erik", pending.digest)
        assert not again.accepted
        assert "already" in again.reason
        # One approval of two: nothing is paid, and the run still waits.
        await asyncio.sleep(0.5)
        assert (await handle.describe()).status.name == "RUNNING"
        assert await sor_fetch(finance_url, "SELECT id FROM payment") == []
        assert payment_pending(await run_status(client, run_id)).gates[0].approved_by == ["erik"]

        outcome = await vote(client, run_id, "farah", pending.digest)
        assert outcome.accepted, outcome
        result = await handle.result()

        # A payment of 10,000 or less takes one signed approver.
        small = await start(client, task_queue, "INV-0001")
        small_handle = client.get_workflow_handle(small, result_type=RunResult)
        status = await wait_for(small_handle, lambda s: bool(s.pending))
        (gate,) = payment_pending(status).gates
        assert (gate.rule, gate.quorum) == ("payment", 1)
        assert (await vote(client, small, "dana", payment_pending(status).digest)).accepted
        small_result = await small_handle.result()

    assert result.outcome == "published"
    assert small_result.outcome == "published"
    paid = {r["id"]: r for r in await sor_fetch(finance_url, "SELECT * FROM payment ORDER BY id")}
    assert set(paid) == {"PAY-INV-0001", f"PAY-{im.LARGE}"}
    assert (str(paid[f"PAY-{im.LARGE}"]["amount"]), paid[f"PAY-{im.LARGE}"]["status"]) == ("48250.00", "scheduled")
    (invoice,) = await sor_fetch(finance_url, "SELECT match_status, matched_po FROM invoice WHERE id = $1", im.LARGE)
    assert (invoice["match_status"], invoice["matched_po"]) == ("matched", "PO-L001")
    attempts = [e["payload"] for e in await store.events("run", run_id) if e["kind"] == "approval_attempt"]
    assert [(a["reviewer"], a["accepted"]) for a in attempts] == [
        ("dana", False), ("erik", False), ("erik", False), ("gus", False), ("erik", True), ("erik", False),
        ("farah", True),
    ]  # fmt: skip
    assert "separation of duties" in attempts[0]["reason"]
    assert attempts[4]["signed"]
    assert (await store.verify("run", run_id)).ok


async def test_duplicates_contradictions_and_missing_receipts_wait_for_a_person(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, finance: Registry, finance_url: str, task_queue: str
) -> None:
    client = dev_server_env.client
    async with worker(client, task_queue, store, finance):
        runs = {inv: await start(client, task_queue, inv) for inv in (im.DUPLICATE, im.OVER_BILLED, im.NOT_RECEIVED)}
        handles = {inv: client.get_workflow_handle(r, result_type=RunResult) for inv, r in runs.items()}
        waiting = {inv: await wait_for(h, lambda s: s.exception is not None) for inv, h in handles.items()}
        assert "already received as INV-0003: a duplicate" in (waiting[im.DUPLICATE].exception or "")
        assert "+20.0%, beyond the 2% tolerance" in (waiting[im.OVER_BILLED].exception or "")
        assert "no goods receipt" in (waiting[im.NOT_RECEIVED].exception or "")

        async def decide(invoice: str, who: str, decision: str, *, signed: bool = True) -> Any:
            status = waiting[invoice]
            message = exception_message_for(runs[invoice], decision, status)
            signature = fixture_signature(who, message) if signed else None
            return await resolve(
                client,
                runs[invoice],
                ExceptionDecision(reviewer=who, decision=decision, signature=signature),  # type: ignore[arg-type]
            )

        # The duplicate is thrown away; a retry of it unsigned, or by the clerk, would be refused.
        assert (await decide(im.DUPLICATE, "gus", "retry")).code == "no_authority"
        assert (await decide(im.DUPLICATE, "farah", "retry", signed=False)).code == "signature_missing"
        assert (await decide(im.DUPLICATE, "farah", "discard")).accepted
        # Purchasing amends the order to what was billed, and the warehouse posts the missing receipt.
        conn = await asyncpg.connect(finance_url)
        await conn.execute("UPDATE purchase_order SET amount = 9600 WHERE id = 'PO-X001'")
        await im.receive(conn, im.NOT_RECEIVED)
        await conn.close()
        for invoice in (im.OVER_BILLED, im.NOT_RECEIVED):
            assert (await decide(invoice, "farah", "retry")).accepted
        # The received one goes on to its payment's approval; the amended one is held: only 8,000 of the
        # 9,600 billed has been received.
        status = await wait_for(handles[im.NOT_RECEIVED], lambda s: bool(s.pending))
        assert (await vote(client, runs[im.NOT_RECEIVED], "erik", payment_pending(status).digest)).accepted
        results = {inv: await h.result() for inv, h in handles.items()}

    assert results[im.DUPLICATE].outcome == "exception"
    assert results[im.OVER_BILLED].outcome == results[im.NOT_RECEIVED].outcome == "published"
    assert [a.action_id for a in results[im.OVER_BILLED].actions] == ["record-match"]
    paid = [r["id"] for r in await sor_fetch(finance_url, "SELECT id FROM payment ORDER BY id")]
    assert paid == [f"PAY-{im.NOT_RECEIVED}"]
    held = await sor_fetch(finance_url, "SELECT match_status, hold_reason FROM invoice WHERE id = $1", im.OVER_BILLED)
    assert (held[0]["match_status"], held[0]["hold_reason"]) == ("hold", "received 8,000.00 of 9,600.00 EUR invoiced")
    kinds = await event_kinds(store, "run", runs[im.DUPLICATE])
    assert kinds.count("exception_raised") == 1
    assert kinds.count("exception_decision") == 3
    assert kinds[-1] == "run_finished"


def exception_message_for(run_id: str, decision: str, status: RunStatus) -> bytes:
    from govflow.workflows.run_api import exception_message

    return exception_message(run_id, decision, status.exception_expires_at)


async def test_a_payment_to_a_vendor_outside_the_grant_is_refused_and_recorded(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, finance: Registry, finance_url: str, task_queue: str
) -> None:
    client = dev_server_env.client
    async with worker(client, task_queue, store, finance):
        run_id = await start(client, task_queue, im.OUTSIDE_PILOT)
        result = await client.get_workflow_handle(run_id, result_type=RunResult).result()
    # A proposal with a refused action publishes none of it: the match is not recorded either.
    assert result.outcome == "refused"
    assert result.reason.startswith("schedule-payment: record is outside grant payments: its vendor_id is 'V011'")
    (invoice,) = await sor_fetch(finance_url, "SELECT match_status FROM invoice WHERE id = $1", im.OUTSIDE_PILOT)
    assert invoice["match_status"] == "new"
    decisions = {e["payload"]["action_id"]: e["payload"] for e in await store.events("run", run_id)
                 if e["kind"] == "policy_decision"}  # fmt: skip
    assert (decisions["schedule-payment"]["decision"], decisions["schedule-payment"]["rule"]) == ("deny", "scope")
    assert await sor_fetch(finance_url, "SELECT id FROM payment") == []

    # The boundary itself, whatever decided before it: the connector guard refuses such a write, and a
    # write that would move a pilot payment to that vendor.
    io = ScopedConnectors(finance.get(TASK, "1").policy, finance.get(TASK, "1").connectors)
    with pytest.raises(ScopeViolation, match="its vendor_id is 'V011'"):
        await io.write("finance", WriteRequest(
            resource="payment", record_id="PAY-X", operation="create", idempotency_key="t1",
            fields={"invoice_id": im.OUTSIDE_PILOT, "vendor_id": "V011", "amount": "3100.00", "currency": "EUR",
                    "pay_on": "2026-12-01", "status": "scheduled"},
        ))  # fmt: skip
    await io.write("finance", WriteRequest(
        resource="payment", record_id="PAY-OK", operation="create", idempotency_key="t2",
        fields={"invoice_id": "INV-0001", "vendor_id": "V001", "amount": "10.00", "currency": "EUR",
                "pay_on": "2026-12-01", "status": "scheduled"},
    ))  # fmt: skip
    with pytest.raises(ScopeViolation, match="its vendor_id is 'V011'"):
        await io.write("finance", WriteRequest(
            resource="payment", record_id="PAY-OK", operation="update", idempotency_key="t3",
            fields={"vendor_id": "V011"},
        ))  # fmt: skip
    rows = await sor_fetch(finance_url, "SELECT id, vendor_id FROM payment")
    assert [(r["id"], r["vendor_id"]) for r in rows] == [("PAY-OK", "V001")]


async def test_rollback_with_data_voids_the_payments_and_restores_the_invoices(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, finance_url: str, database_url: str, task_queue: str
) -> None:
    client = dev_server_env.client
    version = f"t{uuid.uuid4().hex[:6]}"

    class Versioned(im.InvoiceMatching):
        pass

    Versioned.version = version
    registry = Registry()
    policy = shipped(stages=[{"name": "shadow", "live_fraction": 0.0, "min_runs": 100, "promoters": ["farah"]},
                             {"name": "full", "live_fraction": 1.0}], restore_by=["controller"])  # fmt: skip
    im.register(registry, finance_url, task=Versioned(), policy=policy)
    invoices = ["INV-0001", "INV-0002"]
    async with worker(client, task_queue, store, registry):
        rollout = await start_rollout(client, task_queue, TASK, version)
        status = await eventually(lambda: rollout_status(client, rollout), lambda s: bool(s.stage),
                                  tolerate=(RPCError, WorkflowQueryFailedError))  # fmt: skip
        signature = fixture_signature("farah", control_message("promote", rollout, "shadow", status.control_seq))
        answer = await control(client, rollout, "promote", Control(operator="farah", signature=signature))
        assert answer.accepted, answer
        for invoice in invoices:
            admission = await admit(client, rollout, invoice)
            run_id = await start(client, task_queue, invoice, task_version=version, rollout_id=rollout,
                                 stage=admission.stage)  # fmt: skip
            handle = client.get_workflow_handle(run_id, result_type=RunResult)
            pending = payment_pending(await wait_for(handle, lambda s: bool(s.pending)))
            assert (await vote(client, run_id, "erik", pending.digest)).accepted
            assert (await handle.result()).outcome == "published"
        before = await sor_fetch(finance_url, "SELECT id, status FROM payment ORDER BY id")
        assert [(r["id"], r["status"]) for r in before] == [
            ("PAY-INV-0001", "scheduled"),
            ("PAY-INV-0002", "scheduled"),
        ]

        environ = cli_env(dev_server_env, database_url, task_queue)
        # Undoing payments writes to the ledger: dana, a finance approver, may roll the stage back (anyone
        # may) but not undo the payments; that is refused and recorded, and nothing is voided.
        code, out, err = await govflow(
            environ, "rollout", "rollback", "--task", TASK, "--version", version, "--as", "dana", "--to", "shadow",
            "--data", "--reason", "looks wrong",
        )  # fmt: skip
        assert code != 0, out
        assert "undoing its live writes is refused: dana may not undo live writes (may: farah, hana)" in err
        after_dana = await sor_fetch(finance_url, "SELECT id, status FROM payment ORDER BY id")
        assert [r["status"] for r in after_dana] == ["scheduled", "scheduled"]
        # farah, a controller, unsigned: the policy asks for restore signed.
        code, out, err = await govflow(
            environ, "rollout", "rollback", "--task", TASK, "--version", version, "--as", "farah", "--to", "shadow",
            "--data",
        )  # fmt: skip
        assert code != 0, out
        assert "the policy requires a signed restore" in err
        code, out, err = await govflow(
            environ, "rollout", "rollback", "--task", TASK, "--version", version, "--as", "farah", "--to", "shadow",
            "--data", "--reason", "matched the wrong receipts", "--key", str(FIXTURE_KEYS / "farah.key"),
        )  # fmt: skip
        assert code == 0, err
        said = re.search(r"(\d+) records back as before \((\d+) restored, (\d+) already were\), 0 conflicts", out)
        assert said is not None, out
        await client.get_workflow_handle(rollout).terminate("test over")
        await registry.aclose()

    payments = await sor_fetch(finance_url, "SELECT id, status, amount FROM payment ORDER BY id")
    assert [(r["id"], r["status"]) for r in payments] == [("PAY-INV-0001", "cancelled"), ("PAY-INV-0002", "cancelled")]
    rows = await sor_fetch(finance_url, "SELECT match_status, matched_po FROM invoice WHERE id = ANY($1)", invoices)
    assert {(r["match_status"], r["matched_po"]) for r in rows} == {("new", None)}
    restored = [e["payload"] for e in await store.events("rollout", rollout) if e["kind"] == "data_restored"]
    assert sorted((r["resource"], r["record_id"]) for r in restored) == [
        ("invoice", "INV-0001"), ("invoice", "INV-0002"), ("payment", "PAY-INV-0001"), ("payment", "PAY-INV-0002"),
    ]  # fmt: skip
    # What the CLI said is what the evidence holds: a row per record, restored or already as before.
    assert int(said.group(1)) == len(restored) == int(said.group(2)) + int(said.group(3))
    assert int(said.group(2)) == sum(r["outcome"] == "restored" for r in restored)
    asked = [(e["payload"]["operator"], e["payload"]["accepted"], e["payload"]["signed"])
             for e in await store.events("rollout", rollout) if e["kind"] == "restore_requested"]  # fmt: skip
    assert asked == [("dana", False, False), ("farah", False, False), ("farah", True, True)]
    assert (await store.verify("rollout", rollout)).ok


def test_the_demo_policy_takes_the_demo_peoples_keys(tmp_path: Path) -> None:
    for person in im.DEMO_PEOPLE:
        (tmp_path / f"{person}.pub").write_text(public_text(fixture_key(person).public_key()))
    policy = im.demo_policy(tmp_path)
    assert [s.name for s in policy.rollout.stages] == ["shadow", "pilot", "full"]
    assert {r.action for r in policy.stop_rules} == {"pause"}
    assert [a.name for a in policy.actions] == [a.name for a in shipped().actions]


async def test_the_task_proposes_through_an_openai_compatible_model(finance_url: str) -> None:
    answer = {"decision": "pay", "reason": "all three agree", "amount_match": 1.0, "confidence": 0.93}
    api = ChatCompletionsApi([
        (200, ChatCompletionsApi.completion(json.dumps(answer)), {}),
        (200, ChatCompletionsApi.completion('{"decision": "maybe"}'), {}),
    ])  # fmt: skip
    pool = SharedPool(finance_url)
    io = ScopedConnectors(shipped(), {c.system: c for c in im.connectors(pool)})
    task = im.InvoiceMatching()
    context = await task.gather(im.InvoiceItem(invoice_id="INV-0003"), io)  # delivered in two parts
    assert len(context.receipts) == 2
    with serve(api) as base:
        model = OpenAIChatClient(f"{base}/v1", "gpt-test")
        proposal = await task.propose(context, model)
        with pytest.raises(InvalidModelOutput, match="decision"):
            await task.propose(context, model)
        await model.aclose()
    await pool.close()
    assert [a.action_id for a in proposal.actions] == ["record-match", "schedule-payment"]
    assert proposal.scores == {"amount_match": 1.0, "confidence": 0.93}
    facts = json.loads(api.requests[0]["body"]["messages"][-1]["content"])
    invoice = context.invoice
    assert (facts["invoice_amount"], facts["received_amount"]) == (invoice["amount"], invoice["amount"])


async def the_orderer_is_refused(
    client: Client, task_queue: str, store: EvidenceStore, registry: Registry, finance_url: str
) -> str:
    """erik placed the large invoice's purchase order: his approval of its payment is refused, naming the
    field, and recorded; dana and farah pay it. The run's id."""
    conn = await asyncpg.connect(finance_url)
    try:
        await conn.execute(
            "UPDATE purchase_order SET requested_by = 'erik' WHERE id = (SELECT po_id FROM invoice WHERE id = $1)",
            im.LARGE,
        )
    finally:
        await conn.close()
    async with worker(client, task_queue, store, registry):
        run_id = await start(client, task_queue, im.LARGE)
        handle = client.get_workflow_handle(run_id, result_type=RunResult)
        pending = payment_pending(await wait_for(handle, lambda s: bool(s.pending)))
        refused = await vote(client, run_id, "erik", pending.digest)
        assert (refused.accepted, refused.code) == (False, "separation_of_duties")
        assert "purchase_order.requested_by is erik" in refused.reason
        for reviewer in ("dana", "farah"):
            assert (await vote(client, run_id, reviewer, pending.digest)).accepted
        assert (await handle.result()).outcome == "published"
    decision = await store.pool.fetchrow(
        "SELECT reason, gate FROM policy_decisions WHERE run_id = $1 AND action_id = 'schedule-payment'", run_id
    )
    assert decision["gate"]["gates"][0]["excluded"] == {"erik": "purchase_order.requested_by is erik"}
    assert "not erik: purchase_order.requested_by is erik" in decision["reason"]
    attempts = await store.pool.fetch(
        "SELECT reviewer, accepted, reason FROM approval_attempts WHERE run_id = $1 ORDER BY seq", run_id
    )
    assert [(a["reviewer"], a["accepted"]) for a in attempts] == [("erik", False), ("dana", True), ("farah", True)]
    assert "purchase_order.requested_by is erik" in attempts[0]["reason"]
    return run_id


async def test_whoever_ordered_it_may_not_approve_paying_for_it(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, finance: Registry, finance_url: str, task_queue: str
) -> None:
    """approval.not_by: purchase_order.requested_by (the shipped policy): erik ordered the goods, so his
    approval of the payment is refused, naming the field, and recorded; two others pay it."""
    run_id = await the_orderer_is_refused(dev_server_env.client, task_queue, store, finance, finance_url)

    # What-if, a tighter limit: finance approvers up to 20,000. The 48,250 payment dana approved is named.
    doc = yaml.safe_load(im.POLICY.read_text())
    doc["actions"][2]["approval"]["limits"]["up_to"]["finance-approver"] = 20000
    tighter = parse_policy(yaml.safe_dump(doc, sort_keys=False))
    report = whatif(tighter, await collect(store, TASK, None, None, 1000), TASK, None)
    (above,) = report.by_group()["approved above the approver's limit"]
    assert (above.run_id, above.action_id) == (run_id, "schedule-payment")
    assert above.detail == "dana may approve up to 20,000.00 EUR; this is 48,250.00 EUR"


async def the_controller_decides_above_the_limit(
    client: Client, task_queue: str, store: EvidenceStore, finance_url: str
) -> None:
    """approval.limits (the shipped policy: finance approvers up to 50,000, controllers up to 500,000;
    two approvals): a 120,000 payment goes to the controllers (farah alone is within her limit among the
    finance approvers, and two are needed); dana and erik are refused naming their limit, and the two
    controllers' approvals pay it."""
    doc = yaml.safe_load(im.POLICY.read_text())
    doc["rollout"] = {"required": False, "stages": doc["rollout"]["stages"]}
    registry = Registry()
    im.register(registry, finance_url, policy=parse_policy(yaml.safe_dump(doc, sort_keys=False)))
    conn = await asyncpg.connect(finance_url)
    try:  # the large invoice, its order and its receipt at 120,000
        po = await conn.fetchval("SELECT po_id FROM invoice WHERE id = $1", im.LARGE)
        await conn.execute("UPDATE invoice SET amount = 120000 WHERE id = $1", im.LARGE)
        await conn.execute("UPDATE purchase_order SET amount = 120000 WHERE id = $1", po)
        await conn.execute("UPDATE goods_receipt SET amount = 120000 WHERE po_id = $1", po)
    finally:
        await conn.close()
    try:
        async with worker(client, task_queue, store, registry):
            run_id = await start(client, task_queue, im.LARGE)
            handle = client.get_workflow_handle(run_id, result_type=RunResult)
            pending = payment_pending(await wait_for(handle, lambda s: bool(s.pending)))
            (gate,) = pending.gates
            assert (gate.rule, gate.eligible, gate.escalated) == ("large-payment", ["farah", "hana"], True)
            for reviewer in ("dana", "erik"):
                refused = await vote(client, run_id, reviewer, pending.digest)
                assert (refused.accepted, refused.code) == (False, "no_authority")
                assert "may approve up to 50,000.00 EUR; this is 120,000.00 EUR" in refused.reason
            for controller in ("farah", "hana"):
                assert (await vote(client, run_id, controller, pending.digest)).accepted
            assert (await handle.result()).outcome == "published"
    finally:
        await registry.aclose()
    decision = await store.pool.fetchrow(
        "SELECT reason, gate FROM policy_decisions WHERE run_id = $1 AND action_id = 'schedule-payment'", run_id
    )
    assert "it goes to controller" in decision["reason"]
    assert decision["gate"]["gates"][0]["escalated"] is True


async def test_an_approver_above_their_limit_is_refused_and_the_gate_goes_to_the_role_that_can(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, finance_url: str, task_queue: str
) -> None:
    await the_controller_decides_above_the_limit(dev_server_env.client, task_queue, store, finance_url)
