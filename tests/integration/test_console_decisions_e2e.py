"""The reviewer console's decisions in real Chromium, against the dev server: the inbox filtered by risk,
a bulk decision on the actions of one rule (each its own act, with its run's verdict; actions of two
rules refused in one gesture), an exception discarded from its page, earlier runs of the same item, the
Temporal UI's details linking to the console, and every act's evidence naming the console session."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import WorkflowEnvironment

from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry
from tests.helpers import ending, eventually, start_run, wait_for
from tests.integration.console_kit import Served, console_worker, screenshot, signed_in
from tests.integration.test_ui_e2e import ARGS, CHROMIUM

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Chromium (.ci/run installs it)"),
    pytest.mark.devserver,
]


async def test_bulk_decisions_an_exception_and_earlier_runs_in_the_console(
    live_console: Served,
    dev_server_env: WorkflowEnvironment,
    store: EvidenceStore,
    registry: Registry,
    task_queue: str,
    tmp_path: Path,
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    client, origin = dev_server_env.client, live_console.origin
    worker = console_worker(client, task_queue, store, registry, live_console)
    async with worker, ending() as runs:
        unhappy = await start_run(client, task_queue, "T0003")  # a reply (medium risk) and a churn flag (high)
        invoice = await start_run(client, task_queue, "T0005")  # a reply
        missing = await start_run(client, task_queue, "T9999")  # no such ticket: the exception route
        runs += [unhappy, invoice, missing]
        await wait_for(unhappy, lambda s: len(s.pending) == 2)
        await wait_for(invoice, lambda s: bool(s.pending))

        # The Temporal UI's details link each open action to its page in the console.
        # (The details follow the run's phase: the action shows as waiting a moment before they say so.)
        link = f"[review it in the console]({origin}/runs/{invoice.id}/actions/reply)"
        await eventually(
            lambda: invoice.query("__temporal_workflow_metadata", result_type=WorkflowMetadata),
            lambda metadata: link in metadata.current_details,
        )

        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            bob = await signed_in(browser, live_console, "bob")
            await bob.get_by_role("link", name="exception").wait_for(timeout=10_000)
            assert await bob.get_by_role("cell", name="T0005", exact=True).count() == 1
            await screenshot(bob, "console-inbox", tmp_path)

            # Filtered by risk: only the high-risk churn flag.
            await bob.goto(origin + "/?risk=high")
            await bob.get_by_role("link", name="flag-churn").wait_for()
            assert await bob.get_by_role("cell", name="T0005", exact=True).count() == 0

            # Actions of two rules in one gesture: refused, nothing sent.
            await bob.goto(origin + "/")
            await bob.get_by_label("select T0003 flag-churn").check()
            await bob.get_by_label("select T0005 reply").check()
            await bob.get_by_role("button", name="Approve selected").click()
            await bob.get_by_text(
                "not sent: a bulk decision takes the actions of one rule; these are of flag-churn-risk, reply-to-ticket"
            ).wait_for()
            assert await store.pool.fetchval("SELECT count(*) FROM approval_attempts") == 0

            # The replies of both runs, approved in one gesture: two acts, two verdicts, and T0005 publishes.
            await bob.goto(origin + "/")
            await bob.get_by_label("select T0003 reply").check()
            await bob.get_by_label("select T0005 reply").check()
            await bob.get_by_label("Reason for the selected").fill("both read well")
            await bob.get_by_role("button", name="Approve selected").click()
            await bob.get_by_role("heading", name="Your decisions").wait_for()
            verdicts = bob.locator("table.decided tbody tr")
            assert await verdicts.count() == 2
            for text in await verdicts.all_inner_texts():
                assert "Accepted by the run" in text, text
            assert (await invoice.result()).outcome == "published"

            # The exception: what the run could not decide, discarded from its page.
            await bob.goto(origin + "/")
            await bob.get_by_role("link", name="exception").click()
            await bob.get_by_role("heading", name="Exception: incomplete_input").wait_for()
            await bob.get_by_text("ticket T9999 does not exist").wait_for()
            await screenshot(bob, "console-exception", tmp_path)
            await bob.get_by_label("Reason").fill("no such ticket: a typo upstream")
            await bob.get_by_role("button", name="Discard").click()
            await bob.get_by_text("Accepted by the run").wait_for()
            assert "discarded by bob" in (await missing.result()).reason

            # A second run of T0005: its page lists the first, published, one record written.
            again = await start_run(client, task_queue, "T0005")
            runs.append(again)
            (pending,) = (await wait_for(again, lambda s: bool(s.pending))).pending
            await bob.goto(f"{origin}/runs/{again.id}/actions/{pending.action_id}")
            earlier = bob.locator("table.earlier tbody tr")
            await earlier.first.wait_for()
            assert await earlier.count() == 1
            assert f"{invoice.id}" in (row := await earlier.first.inner_text())
            assert "published" in row
            await screenshot(bob, "console-action", tmp_path)
            await browser.close()
        for handle in (unhappy, again):
            await handle.terminate("test over")

    # Each act is its own row of evidence, naming the console session bob signed in with.
    (signin,) = [e for e in await store.events("reviewer", "bob") if e["kind"] == "signed_in"]
    session = signin["payload"]["session"]
    attempts = await store.pool.fetch("SELECT run_id, reviewer, via, session, accepted FROM approval_attempts")
    assert sorted(a["run_id"] for a in attempts) == sorted([unhappy.id, invoice.id])
    assert {(a["reviewer"], a["via"], a["session"], a["accepted"]) for a in attempts} == {
        ("bob", "console", session, True)
    }
    (decided,) = [e for e in await store.events("run", missing.id) if e["kind"] == "exception_decision"]
    assert (decided["payload"]["decision"], decided["payload"]["session"]) == ("discard", session)
