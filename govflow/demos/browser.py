"""A demo reviewer at the reviewer console, in a headless Chromium with a virtual authenticator (the
DevTools one the browser tests use): a passkey enrolled through a one-time link, then acts signed on
action pages, each an assertion over the act that the run checks. Used where the machine has Chromium
and Playwright (``make`` installs Playwright; `.ci/run` installs Debian's Chromium); elsewhere the demo
says so and its people sign with their key files."""

from __future__ import annotations

import shutil
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from govflow.activities.escaping import console_url
from govflow.activities.evidence import EvidenceStore
from govflow.console.accounts import Accounts
from govflow.workers.settings import Settings

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def why_not(settings: Settings) -> str:
    """Why the demo cannot drive the console here ("" when it can)."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright is not installed"
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return "no Chromium on this machine"
    try:
        with urllib.request.urlopen(f"{settings.console_url}/healthz", timeout=2):
            pass
    except OSError:
        return f"no reviewer console answers at {settings.console_url}"
    return ""


class ConsoleReviewer:
    """One reviewer signed in to the console with a passkey of a virtual authenticator."""

    def __init__(self, settings: Settings, page: Any) -> None:
        self.settings, self.page = settings, page

    async def approve(self, run_id: str, action_id: str) -> str:
        """Sign and approve ``action_id`` of ``run_id`` on its page; the run's verdict as the page shows it."""
        await self.page.goto(console_url(self.settings.console_url, run_id, action_id))
        await self.page.get_by_role("button", name="Sign and approve").click()
        verdict = self.page.locator("p.verdict")
        await verdict.wait_for(timeout=30_000)
        return str(await verdict.inner_text()).strip()


@asynccontextmanager
async def console_reviewer(settings: Settings, store: EvidenceStore, reviewer: str) -> AsyncIterator[ConsoleReviewer]:
    """``reviewer`` enrolled (a one-time link the demo issues) and signed in, in a headless Chromium."""
    from playwright.async_api import async_playwright

    token, _ = await Accounts(store).issue_enrollment(reviewer, "govflow demo", timedelta(minutes=10))
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            page = await (await browser.new_context()).new_page()
            cdp = await page.context.new_cdp_session(page)
            await cdp.send("WebAuthn.enable")
            await cdp.send(
                "WebAuthn.addVirtualAuthenticator",
                {"options": {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                             "hasUserVerification": True, "isUserVerified": True,
                             "automaticPresenceSimulation": True}},
            )  # fmt: skip
            await page.goto(f"{settings.console_url}/enroll/{token}")
            await page.get_by_role("button", name="Create my passkey").click()
            await page.get_by_role("heading", name="Waiting for you").wait_for(timeout=30_000)
            yield ConsoleReviewer(settings, page)
        finally:
            await browser.close()
