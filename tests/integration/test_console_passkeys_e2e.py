"""Passkey-signed acts in real Chromium (the DevTools virtual authenticator), against the dev server: the
console asks the device to sign the act itself, the run checks the assertion. A signed approval publishes;
one touch signs a bulk decision of 20 actions, 20 acts in 20 runs' evidence, each verifying alone; an
assertion made at another origin, or without user verification, is refused by the run and recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from govflow.activities.evidence import EvidenceStore
from govflow.examples.support_triage import example_registry, seed
from govflow.workers.worker import build_worker
from tests.helpers import eventually, start_run, wait_for
from tests.integration.console_kit import Served, enrolled, serving
from tests.integration.test_ui_e2e import ARGS, CHROMIUM
from tests.workflows.test_passkey_votes import passkey_policy

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium (.ci/run installs it)"),
    pytest.mark.devserver,
]

# Tickets whose run proposes one reply and nothing else (no churn flag): one signed vote each.
ONE_REPLY = [f"T{i:04d}" for i in range(1, 60) if i % 5 in (0, 1, 2)]


async def decided(store: EvidenceStore, run_id: str) -> None:
    """Until the run's decisions are in its evidence (the run shows them waiting a moment before)."""
    await eventually(
        lambda: store.events("run", run_id), lambda rows: any(r["kind"] == "policy_decision" for r in rows)
    )


async def test_passkey_signed_acts_in_the_console(
    live_console: Served,
    dev_server_env: WorkflowEnvironment,
    store: EvidenceStore,
    sor_url: str,
    task_queue: str,
    database_url: str,
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    client, origin = dev_server_env.client, live_console.origin
    conn = await asyncpg.connect(sor_url)
    try:
        await seed(conn, tickets=60)  # the tests' system of record holds 20
    finally:
        await conn.close()
    registry = example_registry(sor_url, policy=passkey_policy())
    worker = build_worker(client, task_queue, store, registry, console=origin,
                          workflow_failure_exception_types=[Exception])  # fmt: skip
    tickets = iter(ONE_REPLY)
    async with worker, playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        bob, cdp, authenticator_id = await enrolled(browser, live_console, "bob")

        # One signed approval: the page says what the passkey signs; the run checks it and publishes.
        single = await start_run(client, task_queue, next(tickets))
        (pending,) = (await wait_for(single, lambda s: bool(s.pending))).pending
        await decided(store, single.id)
        await bob.goto(f"{origin}/runs/{single.id}/actions/{pending.action_id}")
        await bob.get_by_text("Your passkey signs exactly this").wait_for()
        await bob.get_by_role("button", name="Sign and approve").click()
        await bob.get_by_text("Accepted by the run").wait_for()
        assert (await single.result()).outcome == "published"

        # Twenty actions of one rule, one touch: twenty acts, each its own run's.
        bulk = [await start_run(client, task_queue, next(tickets)) for _ in range(20)]
        for handle in bulk:
            await wait_for(handle, lambda s: bool(s.pending))
        await bob.goto(origin + "/?rule=reply-to-ticket")
        await bob.get_by_text("20 action(s) and exception(s) wait for bob").wait_for()
        await bob.get_by_label("select every action shown").check()
        await bob.get_by_label("Reason for the selected").fill("read all twenty")
        await bob.get_by_role("button", name="Approve selected").click()
        await bob.get_by_role("heading", name="Your decisions").wait_for()
        verdicts = await bob.locator("table.decided tbody tr").all_inner_texts()
        assert len(verdicts) == 20
        assert all("Accepted by the run" in v for v in verdicts), verdicts
        for handle in bulk:
            assert (await handle.result()).outcome == "published"

        # Signed at another origin (a second console on the same database): the run refuses it.
        elsewhere = await start_run(client, task_queue, next(tickets))
        (pending,) = (await wait_for(elsewhere, lambda s: bool(s.pending))).pending
        await decided(store, elsewhere.id)
        async with serving(database_url, GOVFLOW_TEMPORAL_ADDRESS=client.service_client.config.target_host) as other:
            await bob.goto(f"{other.origin}/runs/{elsewhere.id}/actions/{pending.action_id}")
            await bob.get_by_role("button", name="Sign and approve").click()
            await bob.get_by_text("Refused by the run").wait_for()
            assert "Unexpected client data origin" in await bob.locator(".verdict").inner_text()

        # A page (or a console) that asks for no user verification, and a device that skips it: refused.
        async def discouraged(route: Any) -> None:
            answer = await route.fetch()
            body = await answer.json()
            body["options"]["userVerification"] = "discouraged"
            await route.fulfill(response=answer, body=json.dumps(body))

        await cdp.send("WebAuthn.setUserVerified", {"authenticatorId": authenticator_id, "isUserVerified": False})
        await bob.route("**/challenge", discouraged)
        await bob.goto(f"{origin}/runs/{elsewhere.id}/actions/{pending.action_id}")
        await bob.get_by_role("button", name="Sign and approve").click()
        await bob.get_by_text("Refused by the run").wait_for()
        assert "User verification is required" in await bob.locator(".verdict").inner_text()
        await browser.close()
        await elsewhere.terminate("test over")

    # The evidence: each accepted act carries the assertion and the credential, and verifies alone; the
    # twenty bulk acts carry one assertion whose challenge lists all twenty.
    rows = await store.pool.fetch("SELECT run_id, accepted, via, passkey FROM approval_attempts ORDER BY run_id")
    accepted = [r for r in rows if r["accepted"]]
    assert len(accepted) == 21
    bulk_rows = [r for r in accepted if r["run_id"] in {h.id for h in bulk}]
    assert len({json.dumps(r["passkey"]["proof"]["assertion"], sort_keys=True) for r in bulk_rows}) == 1
    assert all(len(r["passkey"]["proof"]["acts"]) == 20 for r in bulk_rows)
    for row in accepted:
        assert row["via"] == "console"
        assert (await store.verify("run", row["run_id"])).ok, row["run_id"]
    refused = [r for r in rows if not r["accepted"]]
    assert [r["run_id"] for r in refused] == [elsewhere.id, elsewhere.id]
