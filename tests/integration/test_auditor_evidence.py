"""Evidence an auditor can take away (#32), over a finance run on the dev server: the policy that decided
is retrievable by the digest the run records, the requester's submit signature is in run_started and
verifies offline, and the exported bundle, copied to a folder with no database and no Temporal, verifies
with its own verify.py, and fails on an edit to any field."""

from __future__ import annotations

import ast
import asyncio
import base64
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from temporalio.testing import WorkflowEnvironment

from govflow import Registry
from govflow.activities.evidence import EvidenceStore
from govflow.policies import policy_digest
from govflow.reports import coverage_report, writes_report
from govflow.workflows.run_api import RunResult
from tests.helpers import sor_fetch, wait_for, worker
from tests.integration.test_finance_e2e import finance, payment_pending, start, vote  # noqa: F401 (a fixture)
from tests.integration.test_governed_run_e2e import cli_env, govflow

pytestmark = pytest.mark.devserver

KEYS = Path(__file__).parent.parent / "fixtures" / "keys"


async def verify_py(folder: Path, *args: str) -> tuple[int, str]:
    """The bundle's own verify.py, run as an auditor would: in its folder, isolated from this project."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "verify.py", *args, cwd=folder, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_an_auditor_re_performs_a_payment_s_evidence_offline(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, finance: Registry,  # noqa: F811
    finance_url: str, task_queue: str, database_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    client = dev_server_env.client
    async with worker(client, task_queue, store, finance):
        run_id = await start(client, task_queue, "INV-0001")
        handle = client.get_workflow_handle(run_id, result_type=RunResult)
        pending = payment_pending(await wait_for(handle, lambda s: bool(s.pending)))
        assert (await vote(client, run_id, "dana", pending.digest)).accepted
        assert (await handle.result()).outcome == "published"
    environ = cli_env(dev_server_env, database_url, task_queue)

    # The policy that decided, by the digest in the run's evidence.
    started = next(e["payload"] for e in await store.events("run", run_id) if e["kind"] == "run_started")
    digest = started["policy_digest"]
    assert digest == policy_digest(next(iter(finance)).policy)
    code, out, err = await govflow(environ, "policy", "show", digest[:12])
    assert code == 0, err
    assert f"# policy invoice-matching v1, digest {digest}" in out
    assert "verifies" in out
    assert "# first used by invoice-matching v1 at " in out
    assert "- purchase_order.requested_by" in out
    code, text, _ = await govflow(environ, "policy", "show", digest, "--json")
    assert hashlib.sha256(text.rstrip("\n").encode()).hexdigest() == digest  # the bytes the digest covers
    code, out, err = await govflow(environ, "policy", "show", "0123456789ab")
    assert code == 1
    assert "no policy 0123456789ab in the evidence" in err
    code, out, err = await govflow(environ, "policy", "history", "--task", "invoice-matching")
    assert code == 0, err
    assert f"v1        policy invoice-matching v1  {digest[:12]}" in out

    # The submit's signature is in run_started and verifies with the requester's key, nothing of govflow.
    gus = Ed25519PublicKey.from_public_bytes(
        base64.b64decode(next(p for p in json.loads(text)["reviewers"]["people"] if p["id"] == "gus")["public_key"])
    )
    gus.verify(base64.b64decode(started["submit_signature"]), started["submit_message"].encode())
    assert json.loads(started["submit_message"])["purpose"] == "govflow-submit-v1"

    # The export: sealed with the checkpoint key, verified offline by its own verify.py.
    out_dir = tmp_path / "export"
    code, out, err = await govflow(environ, "evidence", "export", run_id, "--out", str(out_dir),
                                   "--key", str(KEYS / "farah.key"))  # fmt: skip
    assert code == 0, err
    assert "sealed" in out
    copy = tmp_path / "auditor"  # a copy with no database, no Temporal, no govflow beside it
    shutil.copytree(out_dir, copy)
    tree = list(ast.walk(ast.parse((copy / "verify.py").read_text())))
    imported = {a.name.split(".")[0] for n in tree if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in tree if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names) | {"cryptography", "__future__"}, imported
    code, out = await verify_py(copy)
    assert code == 0, out
    assert "signed as a whole by key" in out
    assert "1 policies: each text hashes to its digest" in out
    assert "2 signed acts verify with the keys of the policy in force" in out  # gus's submit, dana's vote
    assert "The bundle verifies." in out

    # The README's worked offline check, as written.
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    snippet = re.search(r"A worked offline check.*?```python\n(.*?)```", readme, re.S)
    assert snippet is not None, "README: the worked offline verification"
    (copy / "check.py").write_text(snippet.group(1))
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "check.py", f"{run_id}.json", cwd=copy, stdout=pipe, stderr=pipe
    )
    said, errors = await proc.communicate()
    assert proc.returncode == 0, errors.decode()
    assert said.decode().splitlines() == ["submit signed by gus govflow-submit-v1", "dana approve signed (accepted)"]

    bundle_path = copy / f"{run_id}.json"
    pristine = bundle_path.read_bytes()
    assert json.loads(pristine)["verified"] is True  # the run's chain and its row, as exported

    def edited(change: Any) -> None:
        data = json.loads(pristine)
        change(data)
        bundle_path.write_text(json.dumps(data, indent=2) + "\n")

    edits = {
        "the run header": lambda b: b["run"].update(requester="dana"),
        "a summary": lambda b: b["events"][0].update(summary="started by nobody"),
        "recorded_at": lambda b: b["events"][1].update(recorded_at="2020-01-01T00:00:00.000000+00:00"),
        "the verification result": lambda b: b.update(verified=False),
        "a payload": lambda b: b["events"][-1]["payload"].update(outcome="refused"),
        "the policy text": lambda b: b["policy_chains"][0]["events"][0]["payload"].update(text="{}"),
    }
    for what, change in edits.items():
        edited(change)
        code, out = await verify_py(copy)
        assert code == 1, (what, out)
        assert "the bundle was edited" in out, (what, out)
    # Re-signed by whoever edited it: the fingerprint differs from the key the auditor trusts.
    bundle_path.write_bytes(pristine)
    farah = json.loads((copy / f"{run_id}.sig.json").read_text())["public_key"]
    code, out = await verify_py(copy, "--public-key", farah)
    assert code == 0, out
    gus_key = base64.b64encode(gus.public_bytes_raw()).decode()
    code, out = await verify_py(copy, "--public-key", gus_key)
    assert code == 1
    assert "not by the key you trust" in out
    # Without the seal, an edit the chains do not cover still fails: unsigned bundles do not verify.
    (copy / f"{run_id}.sig.json").unlink()
    code, out = await verify_py(copy)
    assert (code, "the bundle is not signed" in out) == (1, True), out


async def test_the_population_reports_list_every_decision_and_reconcile_every_write(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, finance: Registry,  # noqa: F811
    finance_url: str, task_queue: str, database_url: str,
) -> None:  # fmt: skip
    client = dev_server_env.client
    async with worker(client, task_queue, store, finance):
        runs = []
        for invoice, approver in (("INV-0001", "dana"), ("INV-0002", "dana"), ("INV-0003", "erik")):
            run_id = await start(client, task_queue, invoice)
            handle = client.get_workflow_handle(run_id, result_type=RunResult)
            pending = payment_pending(await wait_for(handle, lambda s: bool(s.pending)))
            assert not (await vote(client, run_id, "gus", pending.digest)).accepted  # no authority: recorded
            assert (await vote(client, run_id, approver, pending.digest)).accepted
            assert (await handle.result()).outcome == "published"
            runs.append(run_id)

    # Every decision, from the evidence: the CLI's JSON and the totals agree with the chains.
    environ = cli_env(dev_server_env, database_url, task_queue)
    code, out, err = await govflow(environ, "report", "approvals", "--task", "invoice-matching", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    attempts = [e["payload"] for r in runs for e in await store.events("run", r) if e["kind"] == "approval_attempt"]
    assert len(report["decisions"]) == len(attempts) == 6
    totals = {t["reviewer"]: (t["approved"], t["refused"]) for t in report["approvers"]}
    assert totals == {"dana": (2, 0), "erik": (1, 0), "gus": (0, 3)}
    amounts = {d["run_id"]: d["amount"] for d in report["decisions"] if d["accepted"]}
    paid = {r["invoice_id"]: str(r["amount"]) for r in await sor_fetch(finance_url, "SELECT * FROM payment")}
    assert sorted(amounts.values()) == sorted(paid.values())
    code, out, _ = await govflow(environ, "report", "approvals", "--task", "invoice-matching")
    assert "rule payment: 3 approvals, dana gave 2 (67%)" in out
    code, out, _ = await govflow(environ, "report", "approvals", "--task", "invoice-matching", "--format", "csv")
    assert out.splitlines()[0].startswith("at,run_id,task,task_version,item_key,requester,action_id,rule,reviewer")
    assert len(out.splitlines()) == 7

    # Reconciled with the finance system of record: all there; then a payment keyed in by hand, and a
    # run's payment deleted behind govflow's back.
    clean = await writes_report(store, finance, "invoice-matching")
    assert (len(clean.writes), clean.missing, clean.without_a_run) == (6, [], [])  # 3 invoices + 3 payments
    conn = await asyncpg.connect(finance_url)
    try:
        await conn.execute(
            "INSERT INTO payment (id, invoice_id, vendor_id, amount, currency, pay_on, status) "
            "VALUES ('PAY-BYHAND', 'INV-0004', 'V004', 999.00, 'EUR', current_date, 'scheduled')"
        )
        await conn.execute("DELETE FROM payment WHERE id = 'PAY-INV-0002'")
    finally:
        await conn.close()
    found = await writes_report(store, finance, "invoice-matching")
    assert [(w.record_id, w.run_id) for w in found.missing] == [("PAY-INV-0002", runs[1])]
    assert found.without_a_run == [{"system": "finance", "resource": "payment", "record_id": "PAY-BYHAND"}]
    assert "  records in the system of record without a run: 1" in found.lines()

    # Coverage: the ledger's invoices against the runs (the task says its items are the invoices).
    covered = await coverage_report(store, finance, "invoice-matching")
    held = await sor_fetch(finance_url, "SELECT id FROM invoice ORDER BY id")
    assert [i.item_key for i in covered.items] == [r["id"] for r in held]
    assert covered.ran == 3
    assert {i.item_key: i.outcomes for i in covered.items if i.runs} == {
        "INV-0001": ["published"], "INV-0002": ["published"], "INV-0003": ["published"],
    }  # fmt: skip
    assert f"{len(held) - 3} never did" in covered.lines()[0]
