"""`govflow demo --task invoice-matching`: money under control, in one command, on the local stack.

Invoices stream through a rollout of the invoice-matching example's ``demo`` version: shadow until the
gate passes, then a pilot where half the invoices are paid for real, each payment held for signed
approval (two finance approvers above 10,000; never the person who asked). A payment to a vendor
outside the pilot is refused at the boundary; an invoice with nothing received waits for a person, who
has the receipt posted and retries; a duplicate is discarded. Then the model goes bad on purpose and
the rollout pauses itself.

The demo plays the people: gus (accounts payable) submits, dana and erik (or ``--auto-approve-as``)
approve routine payments, farah decides the exceptions, farah and hana (the controllers) approve a
payment above the finance approvers' limit. Their keys are made once, in
``.govflow/demo-keys``; sign as them with ``GOVFLOW_KEYS_DIR=.govflow/demo-keys``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.client import Client

from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence.checkpoint import public_text
from govflow.activities.registry import Registry
from govflow.client import admit, resolve, review, run_status, running_rollout, start_rollout
from govflow.demos.browser import console_reviewer, why_not
from govflow.demos.triage import Driver, ui_link
from govflow.examples import invoice_matching
from govflow.examples.support_triage import Knob
from govflow.policies import signing_message
from govflow.reports import ApprovalsReport, approvals_report
from govflow.signing import load_signing_key, new_key
from govflow.workers.settings import Settings
from govflow.workflows.rollout_api import RolloutStatus
from govflow.workflows.run_api import ExceptionDecision, ReviewRequest, RunResult, RunStatus, exception_message

TASK = "invoice-matching"
REQUESTER = "gus"
DECIDER = "farah"
SHADOW_ITEMS = 110
PILOT_ITEMS = 16
DEGRADED_ITEMS = 40
AFTER_PAUSE_ITEMS = 6
DEGRADED_SHARE = 0.8


def ensure_demo_keys(keys: Path, people: tuple[str, ...]) -> None:
    """A key per demo person in ``keys`` (``<person>.pem``, mode 0600) and its public key (``.pub``)."""
    keys.mkdir(parents=True, exist_ok=True)
    for person in people:
        pem, pub = keys / f"{person}.pem", keys / f"{person}.pub"
        if not pem.exists():
            new_key(pem)
        if not pub.exists():
            pub.write_text(public_text(load_signing_key(str(pem)).public_key()) + "\n")


async def run_finance_demo(client: Client, settings: Settings, database_url: str, reviewers: list[str]) -> int:
    from govflow.workers.deployments import set_current, worker_version
    from govflow.workers.worker import build_worker

    logging.getLogger("temporalio").setLevel(logging.ERROR)
    example = invoice_matching
    keys = example.demo_keys_dir(settings)
    ensure_demo_keys(keys, example.DEMO_PEOPLE)

    @cache
    def key_of(person: str) -> Ed25519PrivateKey | None:
        path = keys / f"{person}.pem"
        return load_signing_key(str(path)) if path.is_file() else None

    sor = await example.ensure_sor(database_url, fresh=True)  # the demo's story starts from a new ledger
    knob = Knob()
    registry = Registry()
    version = example.DEMO_VERSION
    example.register(registry, sor, task=example.InvoiceMatchingDemo(), policy=example.demo_policy(keys),
                     model=example.baseline_model(knob))  # fmt: skip
    reviewers = reviewers or []
    began = time.monotonic()
    deployment, make_current = worker_version(settings)
    async with (
        EvidenceStore.open(database_url) as store,
        build_worker(
            client, settings.task_queue, store, registry, deployment=deployment, console=settings.console_url
        ),  # fmt: skip,
    ):
        if deployment is not None and make_current:  # the local stack's: runs start on this build
            await set_current(client, deployment.deployment_name, deployment.build_id)
        running = await running_rollout(client, TASK, version)
        if running is not None:
            await client.get_workflow_handle(running).terminate("govflow demo started again")
        await start_rollout(client, settings.task_queue, TASK, version)
        drive = Driver(
            client, settings, reviewers, task=TASK, version=version, requester=REQUESTER,
            item=lambda key: {"invoice_id": key}, signer=key_of,
        )  # fmt: skip
        show = Showcase(client, drive, sor, example)
        await drive.wait_for(lambda s: s.stage == "shadow", "its first stage")
        print(f"Rollout {drive.rollout}: shadow first (proposes, never pays), then a pilot (50% paid for real).")
        approvers = ", ".join(reviewers) or "nobody"
        print(f"  the demo plays the people: {REQUESTER} submits (signed), {approvers} approve routine payments, "
              f"{DECIDER} decides exceptions")  # fmt: skip
        invoices = await show.routine()
        cursor = 0

        def take(n: int) -> list[str]:
            nonlocal cursor
            cursor += n
            return invoices[cursor - n : cursor]

        async def promoted() -> bool:
            return (await drive.status()).stage != "shadow"

        await drive.stream(take(SHADOW_ITEMS), "1. shadow", stop=promoted)
        await drive.wait_for(lambda s: s.stage == "pilot", "pilot (its shadow gate)", seconds=90)
        print("  gate passed: promoted to pilot (50% live); every payment waits for signed approval")
        await show.two_person_approval(invoices, cursor, settings, store)
        await show.above_the_limit(invoices, cursor)
        await show.outside_the_pilot()
        await show.exceptions()
        await drive.stream(take(PILOT_ITEMS), "2. pilot")
        knob.degraded = DEGRADED_SHARE
        print(f"  now the model goes bad on purpose: {DEGRADED_SHARE:.0%} of answers unsure, amounts misjudged")

        async def paused() -> bool:
            return (await drive.status()).paused

        await drive.stream(take(DEGRADED_ITEMS), "3. pilot, degraded", stop=paused)
        status = await drive.wait_for(lambda s: s.paused, "a pause", seconds=60)
        leases_at_pause = status.leases_granted
        await drive.stream(take(AFTER_PAUSE_ITEMS), "4. after the pause")
        after = await drive.status()
        show.paid = await show.ledger()
        show.approvals = await approvals_report(store, TASK, since=show.began)
    await registry.aclose()
    summary(settings, drive, show, status, after.leases_granted - leases_at_pause, time.monotonic() - began)
    return 0


class Showcase:
    """The moments the demo stops to show, one run each."""

    def __init__(self, client: Client, drive: Driver, sor: str, example: Any) -> None:
        self.client, self.drive, self.sor, self.example = client, drive, sor, example
        self.runs: dict[str, str] = {}
        self.paid: tuple[int, Decimal] = (0, Decimal(0))
        self.began = datetime.now(UTC)
        self.approvals: ApprovalsReport | None = None

    async def routine(self) -> list[str]:
        """The routine invoices not yet matched (a demo run again picks up where the last one stopped)."""
        import asyncpg

        conn = await asyncpg.connect(self.sor)
        try:
            rows = await conn.fetch(
                "SELECT id FROM invoice WHERE id ~ '^INV-[0-9]+$' AND match_status = 'new' ORDER BY id"
            )
        finally:
            await conn.close()
        return [r["id"] for r in rows]

    async def ledger(self) -> tuple[int, Decimal]:
        """The payments scheduled in the finance system: how many, and their total."""
        import asyncpg

        conn = await asyncpg.connect(self.sor)
        try:
            row = await conn.fetchrow(
                "SELECT count(*) AS n, coalesce(sum(amount), 0) AS total FROM payment WHERE status = 'scheduled'"
            )
        finally:
            await conn.close()
        assert row is not None
        return int(row["n"]), Decimal(row["total"])

    async def _result(self, run_id: str) -> RunResult:
        result: RunResult = await self.client.get_workflow_handle(run_id, result_type=RunResult).result()
        return result

    async def _waiting(self, run_id: str, what: str, predicate: Any) -> RunStatus:
        for _ in range(200):
            status = await run_status(self.client, run_id)
            if predicate(status):
                return status
            await asyncio.sleep(0.1)
        raise RuntimeError(f"run {run_id} never came to {what}")

    async def _vote(self, run_id: str, reviewer: str, digest: str) -> str:
        request = ReviewRequest(
            reviewer=reviewer, action_digest=digest, verdict="approve", reason="govflow demo",
            signature=self.drive.sign(reviewer, signing_message(run_id, digest, "approve")),
        )  # fmt: skip
        outcome = await review(self.client, run_id, request)
        return f"{'accepted' if outcome.accepted else 'refused'} ({outcome.reason})"

    async def _ordered_by(self, invoice: str, person: str) -> str:
        """Record ``person`` as who placed the invoice's purchase order (the story's data); its id."""
        import asyncpg

        conn = await asyncpg.connect(self.sor)
        try:
            order: str = await conn.fetchval(
                "UPDATE purchase_order SET requested_by = $2 WHERE id = (SELECT po_id FROM invoice WHERE id = $1) "
                "RETURNING id",
                invoice, person,
            )  # fmt: skip
        finally:
            await conn.close()
        return order

    async def two_person_approval(
        self, invoices: list[str], start: int, settings: Settings, store: EvidenceStore
    ) -> None:
        """A large invoice the pilot pays for real, its goods ordered by dana: the purchase order keeps her
        from approving the payment (approval.not_by: purchase_order.requested_by).
        It is taken out of ``invoices`` (those from ``start`` on are not yet streamed). erik signs his
        approval with a passkey in the reviewer console (where the machine has a browser to drive), farah
        with her Ed25519 key file, as the CLI does."""
        key = await self._live_large(invoices, start, "the two-person approval")
        if key is None:
            return
        order = await self._ordered_by(key, "dana")  # dana ordered the goods: the data keeps her out
        run_id = await self.drive.submit(key)
        self.runs["two-person approval"] = run_id
        status = await self._waiting(run_id, "an approval", lambda s: bool(s.pending))
        pending = next(p for p in status.pending if p.action_id == "schedule-payment")
        gate = pending.gates[0]
        amount = Decimal(pending.fields["amount"])
        print(f"  {key}: a payment of {amount:,} {pending.fields['currency']} to {pending.fields['vendor_id']}, "
              f"its purchase order {order} placed by dana, needs {gate.quorum} signed approvals from "
              f"{', '.join(gate.eligible)}, not by whoever ordered the goods")  # fmt: skip
        print(f"    dana signs an approval: {await self._vote(run_id, 'dana', pending.digest)}")
        cannot = why_not(settings)
        if cannot:
            print(f"    ({cannot}: erik signs with his key file, not his passkey in the console)")
            print(f"    erik signs an approval: {await self._vote(run_id, 'erik', pending.digest)}")
        else:
            async with console_reviewer(settings, store, "erik") as erik:
                shown = await erik.approve(run_id, pending.action_id)
            print(f"    erik signs an approval with his passkey, in the reviewer console: {shown}")
        print(f"    farah signs an approval with her key file: {await self._vote(run_id, 'farah', pending.digest)}")
        result = await self._result(run_id)
        if result.outcome == "published":
            print(f"    -> published: PAY-{key} scheduled only after the second signed approval")
            print(f"    evidence: .venv/bin/govflow evidence show {run_id}  (verify re-checks the passkey)")
        else:
            print(f"    -> {result.outcome}: {result.reason}")

    async def above_the_limit(self, invoices: list[str], start: int) -> None:
        """A payment above a finance approver's 50,000 limit (approval.limits): the gate goes to the
        controllers, erik's approval is refused naming his limit, and farah's and hana's pay it."""
        key = await self._live_large(invoices, start, "the escalation by limit")
        if key is None:
            return
        amount = await self._priced(key, Decimal("64800.00"))
        run_id = await self.drive.submit(key)
        self.runs["escalation by limit"] = run_id
        status = await self._waiting(run_id, "an approval", lambda s: bool(s.pending))
        pending = next(p for p in status.pending if p.action_id == "schedule-payment")
        gate = pending.gates[0]
        print(f"  {key}: a payment of {amount:,} EUR, above a finance approver's 50,000 limit: it goes to "
              f"{', '.join(gate.eligible)} (controllers, {gate.quorum} signed approvals)")  # fmt: skip
        print(f"    erik signs an approval: {await self._vote(run_id, 'erik', pending.digest)}")
        for controller in ("farah", "hana"):
            print(f"    {controller} signs an approval: {await self._vote(run_id, controller, pending.digest)}")
        result = await self._result(run_id)
        print(f"    -> {result.outcome}" + (f": {result.reason}" if result.reason else f": PAY-{key} scheduled"))

    async def _live_large(self, invoices: list[str], start: int, what: str) -> str | None:
        """A not yet streamed invoice over 10,000 that the pilot runs live, taken out of ``invoices``."""
        for candidate in invoices[start:]:
            if Decimal(self.example.routine_amount(int(candidate[4:]))) <= 10_000:
                continue
            if (await admit(self.client, self.drive.rollout, candidate)).mode == "live":
                invoices.remove(candidate)
                return candidate
        print(f"  (no large invoice left that the pilot runs live: skipped {what})")
        return None

    async def _priced(self, invoice: str, amount: Decimal) -> Decimal:
        import asyncpg

        conn = await asyncpg.connect(self.sor)
        try:
            await self.example.reprice(conn, invoice, amount)
        finally:
            await conn.close()
        return amount

    async def outside_the_pilot(self) -> None:
        run_id = await self.drive.submit(self.example.OUTSIDE_PILOT)
        self.runs["vendor outside the pilot"] = run_id
        result = await self._result(run_id)
        print(f"  {self.example.OUTSIDE_PILOT} (vendor V011, outside the payments grant): {result.outcome}: "
              f"{result.reason.split(';')[0]}")  # fmt: skip

    async def exceptions(self) -> None:
        """An invoice with nothing received, and a duplicate: each waits for a person."""
        import asyncpg

        missing, duplicate = self.example.NOT_RECEIVED, self.example.DUPLICATE
        runs = {k: await self.drive.submit(k) for k in (missing, duplicate)}
        self.runs["exception, retried"], self.runs["exception, discarded"] = runs[missing], runs[duplicate]
        waiting = {
            k: await self._waiting(r, "its exception", lambda s: s.exception is not None) for k, r in runs.items()
        }
        for key, status in waiting.items():
            print(f"  {key} waits on the exception route: {status.exception}")
        conn = await asyncpg.connect(self.sor)
        try:
            receipt = await self.example.receive(conn, missing)
        finally:
            await conn.close()
        for key, decision, why in ((missing, "retry", f"warehouse posted {receipt}"),
                                   (duplicate, "discard", "duplicate of INV-0003")):  # fmt: skip
            status = waiting[key]
            signature = self.drive.sign(DECIDER, exception_message(runs[key], decision, status.exception_expires_at))
            outcome = await resolve(
                self.client, runs[key],
                ExceptionDecision(reviewer=DECIDER, decision=decision, reason=why, signature=signature),
            )  # fmt: skip
            print(f"    {DECIDER} signs '{decision}' ({why}): {'accepted' if outcome.accepted else outcome.reason}")
        # The retried one goes on like any other: a live payment waits for the scripted reviewers.
        retried = await self._waiting(runs[missing], "a decision", lambda s: bool(s.pending) or s.outcome is not None)
        if retried.pending and not self.drive.reviewers:
            print(f"    -> {missing} now waits for a finance approver (no --auto-approve-as)")
            return
        for pending in retried.pending:
            for reviewer in self.drive.reviewers[: pending.gates[0].quorum]:
                await self._vote(runs[missing], reviewer, pending.digest)
        results = {k: await self._result(r) for k, r in runs.items()}
        print(f"    -> {missing} {results[missing].mode} {results[missing].outcome}; "
              f"{duplicate} {results[duplicate].outcome} (discarded)")  # fmt: skip


def summary(settings: Settings, drive: Driver, show: Showcase, status: RolloutStatus, leases_after: int,
            took: float) -> None:  # fmt: skip
    t = drive.tally
    by = Counter((r.mode, r.outcome) for r in t.results)
    print(f"\nSummary ({took:.0f} s)")
    print(
        f"  streamed runs: {len(t.results)} finished"
        + (f", {len(t.waiting)} waiting for a reviewer" if t.waiting else "")
    )
    for (mode, outcome), n in sorted(by.items()):
        print(f"    {mode:<6} {outcome:<10} {n}")
    caught = by.get(("live", "refused"), 0)
    if caught:
        print(f"    ({caught} live refused: admitted live, then stopped by the pause before it paid)")
    paid, total = show.paid
    print(f"  payments scheduled in the finance ledger: {paid}, {total:,} EUR, each after signed approval")
    if show.approvals is not None:  # from the evidence, as `govflow report approvals` reads it
        since = show.began.isoformat(timespec="seconds")
        print(f"  approval decisions in the evidence (govflow report approvals --task {TASK} --since {since}):")
        for line in show.approvals.lines()[1:]:
            print(f"  {line}")
    if status.last_breach is not None:
        print(f"  PAUSED at stage {status.last_breach.stage}: {status.pause_reason}")
    print(f"  live payments leased after the pause: {leases_after} (every later invoice ran in shadow)")
    print("\nThe runs the demo stopped at:")
    for label, run_id in show.runs.items():
        print(f"  {label:<26} .venv/bin/govflow evidence show {run_id}")
    print("\nSign as the demo people (their keys are in .govflow/demo-keys):")
    print("  GOVFLOW_KEYS_DIR=.govflow/demo-keys .venv/bin/govflow approvals list --as erik")
    print("  GOVFLOW_KEYS_DIR=.govflow/demo-keys .venv/bin/govflow approve RUN_ID --as erik --action schedule-payment")
    query = f'GovflowTask = "{TASK}" AND GovflowPaused = true'
    print(f"\nIn the Temporal UI: the paused rollout\n  {query}\n  {ui_link(settings, query)}")
    print(f"  resume (signed by {DECIDER}): GOVFLOW_KEYS_DIR=.govflow/demo-keys "
          f".venv/bin/govflow rollout resume --task {TASK} --version demo --as {DECIDER}")  # fmt: skip
    print(f"  undo the pilot's payments (a controller, signed): GOVFLOW_KEYS_DIR=.govflow/demo-keys "
          f".venv/bin/govflow rollout rollback --task {TASK} --version demo --as {DECIDER} --to shadow "
          "--data")  # fmt: skip
    print("\nEverything keeps running (a background worker serves the runs) until `make stack-down`.")
