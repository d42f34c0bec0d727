"""The real Temporal UI: an operator pauses a rollout with "Send a Signal", in headless Chromium.

Chromium comes from Debian's `chromium` package (.ci/run installs it); Playwright drives it
through `executable_path`, never `playwright install`.
"""

from __future__ import annotations

import re
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry
from govflow.workflows import search_attributes
from govflow.workflows.payloads import data_converter
from govflow.workflows.rollout import RolloutWorkflow
from govflow.workflows.rollout_api import RolloutInput
from tests.conftest import free_port
from tests.helpers import eventually, worker

pytestmark = pytest.mark.devserver

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
async def ui_env() -> AsyncIterator[tuple[WorkflowEnvironment, int]]:
    port = free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        data_converter=data_converter,
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
        ui=True,
        ui_port=port,
    )
    yield env, port
    await env.shutdown()


async def test_pause_a_rollout_from_the_temporal_ui(
    ui_env: tuple[WorkflowEnvironment, int], store: EvidenceStore, registry: Registry
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed here (apt-get install chromium); CI installs it and runs this test")
    playwright_api = pytest.importorskip("playwright.async_api")
    env, ui_port = ui_env
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env.client, task_queue, store, registry):
        rollout = await env.client.start_workflow(
            RolloutWorkflow.run,
            RolloutInput(task="support-triage"),
            id=f"rollout-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        # Until it has loaded its policy.
        await eventually(lambda: rollout.query(RolloutWorkflow.status), lambda _: True, every=0.1,
                         tolerate=(RPCError, WorkflowQueryFailedError))  # fmt: skip
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            await page.goto(f"http://127.0.0.1:{ui_port}/namespaces/default/workflows/{rollout.id}")
            await page.get_by_role("button", name="More Actions").click()
            await page.get_by_role("menuitem", name="Send a Signal").click()
            await page.get_by_test_id("signal-select-button").locator("visible=true").first.click()
            await page.get_by_role("option", name="pause").wait_for()
            options = await page.get_by_role("option").all_inner_texts()
            assert any(o.startswith("pause\nPause: live writes stop at once.") for o in options), options
            await page.get_by_role("option", name="pause").click()
            await page.locator(".cm-content").locator("visible=true").first.click()
            await page.keyboard.type('{"operator": "ui-operator", "reason": "seen in the UI"}')
            await page.get_by_test_id("confirm-modal-button").locator("visible=true").first.click()

            status = await eventually(lambda: rollout.query(RolloutWorkflow.status), lambda s: s.paused, every=0.1)
            assert status.pause_reason == "paused by ui-operator: seen in the UI"

            # What the operator reads in the UI: the rollout's current details, each gate on a line of its own
            # (they were a Markdown table, whose cells the UI ran together: "breach200.600").
            await page.reload()
            await page.get_by_role("tab", name="User Metadata").click()
            details = await eventually(lambda: _text_of_frames(page), lambda t: "Quality gates:" in t, every=0.2)
            assert "PAUSED: paused by ui-operator: seen in the UI" in details
            for rule, threshold in (("pass-rate", "0.8"), ("override-rate", "0.2"), ("error-rate", "0.05")):
                line = next(x for x in details.splitlines() if x.startswith(f"• {rule}:"))
                pattern = rf"• {rule}: \w+ · 0 runs · threshold {threshold} · evidence of a drop 0\.0 of the [\d.]+"
                assert re.fullmatch(pattern + " that pauses", line), line

            # What the operator sees in the UI: the run's GovflowPaused search attribute set.
            await page.reload()
            await page.get_by_role("tab", name="Search Attributes").click()
            await page.get_by_text("GovflowPaused").first.wait_for()
            attrs = await page.locator("main").inner_text()
            assert "GovflowPaused" in attrs
            assert "true" in attrs.split("GovflowPaused", 1)[1][:40].lower()
            await browser.close()
        paused = [wf.id async for wf in env.client.list_workflows("GovflowPaused = true")]
        assert rollout.id in paused


async def _text_of_frames(page: Any) -> str:
    """The page's text, with what its frames show (the UI renders a workflow's details in a frame)."""
    texts = []
    for frame in page.frames:
        try:
            texts.append(await frame.locator("body").inner_text())
        except Exception:
            continue
    return "\n".join(texts)
