"""The reviewer console in real Chromium: a passkey enrolled through a one-time link and used to sign in,
through the DevTools virtual authenticator; sessions, CSRF and origins refused as they must be.

Served on ``localhost`` (a passkey's relying-party id cannot be an IP address), by uvicorn in the test's
own event loop, over a fresh evidence database. Chromium is Debian's (.ci/run installs it).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry
from govflow.console.accounts import Accounts
from tests.helpers import sor_fetch, start_run, wait_for, worker
from tests.integration.console_kit import Served, authenticator, signed_in
from tests.integration.test_ui_e2e import ARGS, CHROMIUM

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium (.ci/run installs it)")


async def test_enroll_sign_in_and_the_refusals_a_session_needs(console: Served) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    link = console.enroll("alice")
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await browser.new_page()
        await authenticator(page)

        # Enroll through the one-time link: the passkey is made, and alice is signed in.
        await page.goto(link)
        await page.get_by_role("heading", name="Enroll a passkey for alice").wait_for()
        await page.get_by_role("button", name="Create my passkey").click()
        await page.get_by_role("heading", name="Waiting for you").wait_for()
        headers = (await page.request.get(console.origin + "/")).headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"]
        cookie = next(c for c in await page.context.cookies() if c["name"] == "govflow_session")
        assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Lax")

        # The link was for one passkey, once.
        again = await browser.new_page()
        answer = await again.goto(link)
        assert answer is not None
        assert answer.status == 410
        assert "used already" in await again.content()

        # A state-changing request without the CSRF token, or from another origin, is refused.
        no_token = await page.request.post(console.origin + "/signout", headers={"Origin": console.origin},
                                           form={"csrf": "forged"})  # fmt: skip
        assert no_token.status == 403
        assert "CSRF token is missing or wrong" in await no_token.text()
        other_origin = await page.request.post(console.origin + "/signout", headers={"Origin": "https://evil.example"})
        assert other_origin.status == 403
        assert "another origin" in await other_origin.text()
        assert (await page.request.get(console.origin + "/", max_redirects=0)).status == 200  # still signed in

        # Sign out, sign in again with the passkey.
        await page.get_by_role("button", name="Sign out").click()
        await page.get_by_role("heading", name="Sign in").wait_for()
        await page.get_by_role("button", name="Sign in with a passkey").click()
        await page.get_by_role("heading", name="Waiting for you").wait_for()
        csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
        assert csrf

        # An expired session signs nobody in, and its CSRF token no longer opens anything.
        conn = await asyncpg.connect(console.database_url)
        try:
            await conn.execute("UPDATE console_sessions SET expires_at = now() - interval '1 second'")
        finally:
            await conn.close()
        expired = await page.request.get(console.origin + "/", max_redirects=0)
        assert (expired.status, expired.headers["location"]) == (303, "/signin")
        late = await page.request.post(console.origin + "/signout", headers={"Origin": console.origin},
                                       form={"csrf": csrf})  # fmt: skip
        assert late.status == 403
        assert "not signed in" in await late.text()

        # A revoked passkey cannot sign in.
        revoked = console.govflow("reviewers", "revoke", "alice", "--as", "omar", "--reason", "left the team")
        assert revoked.returncode == 0, revoked.stderr
        await page.goto(console.origin + "/signin")
        await page.get_by_role("button", name="Sign in with a passkey").click()
        await page.get_by_text(re.compile("this passkey was revoked")).wait_for()
        assert page.url.endswith("/signin")
        exposed = await (await page.request.get(console.origin + "/metrics")).text()
        for line in (
            'govflow_console_signins_total{ceremony="enroll",result="ok"} 1.0',
            'govflow_console_signins_total{ceremony="signin",result="ok"} 1.0',
            'govflow_console_signins_total{ceremony="signin",result="refused"} 1.0',
            'govflow_console_requests_total{page="signout",status="403"} 3.0',
        ):
            assert line in exposed, exposed
        await browser.close()

    # Every step of alice's passkey is evidence, in a chain that verifies.
    async with EvidenceStore.open(console.database_url) as store:
        kinds = [e["kind"] for e in await store.events("reviewer", "alice")]
        report = await store.verify("reviewer", "alice")
    assert kinds == ["enrollment_issued", "passkey_enrolled", "signed_in", "signed_in", "passkey_revoked"]
    assert report.ok


async def test_enrollment_refuses_an_unknown_reviewer_and_a_forged_link(console: Served) -> None:
    unknown = console.govflow("reviewers", "enroll", "mallory", "--as", "omar")
    assert unknown.returncode == 1
    assert "mallory is not a reviewer in any policy the workers serve" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await browser.new_page()
        answer = await page.goto(console.origin + "/enroll/not-a-real-token")
        assert answer is not None
        assert answer.status == 410
        assert "not one govflow issued" in await page.content()
        async with EvidenceStore.open(console.database_url) as store:  # a link already past its time
            token, _ = await Accounts(store).issue_enrollment("bob", "omar", timedelta(seconds=-1))
        answer = await page.goto(f"{console.origin}/enroll/{token}")
        assert answer is not None
        assert answer.status == 410
        assert "this enrollment link has expired" in await page.content()
        options = await page.request.post(
            f"{console.origin}/enroll/{token}/options", headers={"Origin": console.origin}
        )
        assert options.status == 400
        assert "expired" in (await options.json())["error"]
        await browser.close()
    async with EvidenceStore.open(console.database_url) as store:
        assert await store.events("reviewer", "mallory") == []


@pytest.mark.devserver
async def test_a_reviewer_sees_the_source_context_approves_and_the_run_publishes(
    live_console: Served,
    dev_server_env: WorkflowEnvironment,
    store: EvidenceStore,
    registry: Registry,
    sor_url: str,
    task_queue: str,
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    client = dev_server_env.client
    async with worker(client, task_queue, store, registry):
        handle = await start_run(client, task_queue, "T0001")  # requested by priya
        (pending,) = (await wait_for(handle, lambda s: bool(s.pending))).pending
        path = f"/runs/{handle.id}/actions/{pending.action_id}"
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)

            # priya requested the run and has no authority for its rule: nothing waits for her, and a
            # hand-made POST is refused by the run, and recorded.
            priya = await signed_in(browser, live_console, "priya")
            await priya.get_by_text("Nothing waits for you.").wait_for()
            csrf = await priya.locator("input[name=csrf]").first.get_attribute("value")
            forged = await priya.request.post(
                live_console.origin + path, headers={"Origin": live_console.origin},
                form={"csrf": csrf or "", "verdict": "approve", "action_digest": pending.digest, "reason": "mine"},
            )  # fmt: skip
            answer = await forged.text()
            assert "Refused by the run" in answer
            assert "not sent" not in answer  # it reached the run, which refused it

            # alice sees it in her inbox, opens it: the ticket as read, the record now and the reply proposed.
            alice = await signed_in(browser, live_console, "alice")
            # Her inbox in a tab of its own, never reloaded: a run that starts waiting shows within seconds.
            inbox_tab = await alice.context.new_page()
            await inbox_tab.goto(live_console.origin + "/")
            await inbox_tab.get_by_role("cell", name="T0001", exact=True).wait_for()
            second = await start_run(client, task_queue, "T0002")
            await inbox_tab.get_by_role("cell", name="T0002", exact=True).wait_for(timeout=10_000)
            await alice.get_by_role("link", name=pending.action_id).first.click()
            await alice.get_by_text("The app shows an error and crashes when I export.").first.wait_for()
            row = alice.locator("table.diff tr", has_text="reply_body")
            assert "(empty)" in await row.inner_text()
            assert "Thanks for writing" in await row.inner_text()
            # Bad input gets a clear message on the page, and nothing reaches the run.
            alice_csrf = await alice.locator("input[name=csrf]").first.get_attribute("value")
            for form, says in (
                ({"verdict": "approve", "reason": "x" * 5000}, "the reason is at most 2000 characters"),
                ({"verdict": "maybe", "reason": ""}, "choose approve or reject"),
            ):
                bad = await alice.request.post(
                    live_console.origin + path, headers={"Origin": live_console.origin},
                    form={"csrf": alice_csrf or "", "action_digest": pending.digest, **form},
                )  # fmt: skip
                assert bad.status == 400
                assert f"not sent: {says}" in await bad.text()
            await alice.get_by_label("Reason").fill("reads well")
            await alice.get_by_role("button", name="Approve").click()
            await alice.get_by_text("Accepted by the run").wait_for()
            result = await handle.result()
            # The decided action leaves the open inbox, the other stays.
            await inbox_tab.get_by_role("cell", name="T0001", exact=True).wait_for(state="detached", timeout=10_000)
            exposed = await (await alice.request.get(live_console.origin + "/metrics")).text()
            assert 'govflow_console_acts_total{outcome="accepted",verdict="approve"} 1.0' in exposed
            assert 'govflow_console_acts_total{outcome="refused",verdict="approve"} 1.0' in exposed
            assert await inbox_tab.get_by_role("cell", name="T0002", exact=True).count() == 1
            await browser.close()
        await second.terminate("test over")
    assert result.outcome == "published"
    rows = await sor_fetch(sor_url, "SELECT reply_body FROM ticket WHERE id = 'T0001'")
    assert rows[0]["reply_body"].startswith("Thanks for writing")
    attempts = await store.pool.fetch(
        "SELECT reviewer, accepted FROM approval_attempts WHERE run_id = $1 ORDER BY seq", handle.id
    )
    assert [(a["reviewer"], a["accepted"]) for a in attempts] == [("priya", False), ("alice", True)]
