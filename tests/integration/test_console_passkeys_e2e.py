"""Passkey-signed acts in real Chromium (the DevTools virtual authenticator), against the dev server: the
console asks the device to sign the act itself, the run checks the assertion. A signed approval publishes;
one touch signs a bulk decision of 20 actions, 20 acts in 20 runs' evidence, each verifying alone; an
assertion made at another origin, or without user verification, is refused by the run and recorded. Real
assertions held back from the browser's forms and sent by hand, as whoever got hold of them would, are
refused wherever they do not belong: another run, verdict or bulk list, forged, replayed, an older
counter, a revoked passkey; and an act sent with no assertion at all."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from govflow.activities.evidence import EvidenceStore
from govflow.client import review
from govflow.examples.support_triage import example_registry, seed
from govflow.policies import AttemptOutcome
from govflow.policies.passkeys import PasskeyProof
from govflow.workflows.run_api import ReviewRequest
from tests.helpers import ending, eventually, start_run, wait_for
from tests.integration.console_kit import Served, console_worker, enrolled, serving
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
    worker = console_worker(client, task_queue, store, registry, live_console)
    tickets = iter(ONE_REPLY)
    async with worker, ending() as started, playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        bob, cdp, authenticator_id = await enrolled(browser, live_console, "bob")

        # One signed approval: the page says what the passkey signs; the run checks it and publishes.
        single = await start_run(client, task_queue, next(tickets))
        started.append(single)
        (pending,) = (await wait_for(single, lambda s: bool(s.pending))).pending
        await decided(store, single.id)
        await bob.goto(f"{origin}/runs/{single.id}/actions/{pending.action_id}")
        await bob.get_by_text("Your passkey signs exactly this").wait_for()
        await bob.get_by_role("button", name="Sign and approve").click()
        await bob.get_by_text("Accepted by the run").wait_for()
        assert (await single.result()).outcome == "published"

        # Twenty actions of one rule, one touch: twenty acts, each its own run's.
        bulk = [await start_run(client, task_queue, next(tickets)) for _ in range(20)]
        started += bulk
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
        started.append(elsewhere)
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


async def captured(page: Any, path: str, click: Any) -> dict[str, str]:
    """The form the page posts to ``path`` when ``click`` runs, held back (never sent): an assertion the
    browser made, to send by hand as an attacker with it would."""
    seen: dict[str, str] = {}

    async def hold(route: Any) -> None:
        if route.request.method == "POST" and route.request.url.endswith(path):
            seen.update((k, v[-1]) for k, v in parse_qs(route.request.post_data or "").items())
            await route.abort()
        else:
            await route.continue_()

    await page.route("**/*", hold)
    await click()
    await eventually(lambda: asyncio.sleep(0, seen), lambda s: "passkey" in s)
    await page.unroute("**/*", hold)
    return seen


async def test_a_real_assertion_is_refused_wherever_it_does_not_belong(
    live_console: Served,
    dev_server_env: WorkflowEnvironment,
    store: EvidenceStore,
    sor_url: str,
    task_queue: str,
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    client, origin = dev_server_env.client, live_console.origin
    registry = example_registry(sor_url, policy=passkey_policy())
    worker = console_worker(client, task_queue, store, registry, live_console)
    async with worker, ending() as started, playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        bob, _, _ = await enrolled(browser, live_console, "bob")
        alice, _, _ = await enrolled(browser, live_console, "alice")
        runs = {t: await start_run(client, task_queue, t) for t in ("T0001", "T0002", "T0005", "T0006", "T0007")}
        churn = await start_run(client, task_queue, "T0003")  # its churn flag needs two leads
        started += [*runs.values(), churn]
        digests = {}
        for ticket, handle in [*runs.items(), ("T0003", churn)]:
            status = await wait_for(handle, lambda s: bool(s.pending))
            digests[ticket] = {p.action_id: p.digest for p in status.pending}
            await decided(store, handle.id)

        async def proof_for(page: Any, ticket: str, action: str = "reply", button: str = "Sign and approve") -> str:
            handle = churn if ticket == "T0003" else runs[ticket]
            path = f"/runs/{handle.id}/actions/{action}"
            await page.goto(origin + path)
            return (await captured(page, path, page.get_by_role("button", name=button).click))["passkey"]

        async def send(ticket: str, passkey: str | None, reviewer: str = "bob", verdict: str = "approve",
                       action: str = "reply") -> AttemptOutcome:  # fmt: skip
            handle = churn if ticket == "T0003" else runs[ticket]
            proof = PasskeyProof.model_validate_json(passkey) if passkey else None
            vote = ReviewRequest(reviewer=reviewer, action_id=action, action_digest=digests[ticket][action],
                                 verdict=verdict, passkey=proof)  # type: ignore[arg-type]  # fmt: skip
            return await review(client, handle.id, vote)

        early = await proof_for(bob, "T0001")  # made first: a lower counter than what follows
        for_two = await proof_for(bob, "T0002")
        rejecting = await proof_for(bob, "T0005", button="Sign and reject")
        alices = await proof_for(alice, "T0006")
        await bob.goto(origin + "/")
        await bob.get_by_label("select T0006 reply").check()
        await bob.get_by_label("select T0007 reply").check()
        two_acts = (await captured(bob, "/act", bob.get_by_role("button", name="Approve selected").click))["passkey"]

        refused = {
            "another run": (await send("T0001", for_two), "signed other acts"),
            "another verdict": (await send("T0005", rejecting), "signed other acts"),
            "a bulk list without the act": (await send("T0005", two_acts), "signed other acts"),
            "no assertion, from the console's own code": (await send("T0005", None), "with your passkey"),
        }
        forged = json.loads(for_two)
        forged["assertion"]["response"]["signature"] = json.loads(alices)["assertion"]["response"]["signature"]
        refused["a forged assertion"] = (await send("T0002", json.dumps(forged)), "does not")
        assert (await send("T0002", for_two)).accepted  # bob's own, for this act: accepted
        refused["a counter that goes back"] = (await send("T0001", early), "counter went back")

        # The same assertion twice into one run (a two-lead rule, so the action stays open after the first).
        flag = await proof_for(bob, "T0003", action="flag-churn")
        assert (await send("T0003", flag, action="flag-churn")).accepted
        refused["the same assertion again"] = (await send("T0003", flag, action="flag-churn"), "used already")

        # alice's passkey, revoked after she signed.
        revoked = live_console.govflow("reviewers", "revoke", "alice", "--as", "omar", "--reason", "left")
        assert revoked.returncode == 0, revoked.stderr
        refused["a revoked passkey"] = (await send("T0006", alices, reviewer="alice"), "revoked by omar (left)")
        for name, (outcome, says) in refused.items():
            assert not outcome.accepted, name
            assert says in outcome.reason, (name, outcome.reason)
        await browser.close()
        assert (await runs["T0002"].result()).outcome == "published"
        for ticket in ("T0001", "T0005", "T0006", "T0007"):
            await runs[ticket].terminate("test over")
        await churn.terminate("test over")
    recorded = await store.pool.fetchval("SELECT count(*) FROM approval_attempts WHERE NOT accepted")
    assert recorded == len(refused)
