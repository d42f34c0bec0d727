"""What the console's browser tests share: the console served by uvicorn in the test's own event loop on
``localhost`` (a passkey's relying-party id cannot be an IP address), the DevTools virtual authenticator,
and a reviewer enrolled and signed in. Chromium is Debian's (.ci/run installs it)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn

from govflow.console import create_app
from govflow.workers.settings import load_settings
from tests.conftest import free_port


class Served:
    def __init__(self, origin: str, environ: dict[str, str], database_url: str) -> None:
        self.origin, self.environ, self.database_url = origin, environ, database_url

    def govflow(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "govflow", *args], env=self.environ, capture_output=True,
                              text=True, timeout=60)  # fmt: skip

    def enroll(self, reviewer: str) -> str:
        done = self.govflow("reviewers", "enroll", reviewer, "--as", "omar", "--valid", "10m")
        assert done.returncode == 0, done.stdout + done.stderr
        link = done.stdout.splitlines()[0]
        assert link.startswith(f"{self.origin}/enroll/"), done.stdout
        return link


@asynccontextmanager
async def serving(database_url: str, **environ: str) -> AsyncIterator[Served]:
    port = free_port()
    origin = f"http://localhost:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVFLOW_")}
    env.update(GOVFLOW_DATABASE_URL=database_url, GOVFLOW_CONSOLE_PORT=str(port), GOVFLOW_CONSOLE_ORIGIN=origin,
               **environ)  # fmt: skip
    settings = load_settings(env)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, database_url), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the console did not start"
        await asyncio.sleep(0.02)
    try:
        yield Served(origin, env, database_url)
    finally:
        server.should_exit = True
        await task


async def authenticator(page: Any) -> tuple[Any, str]:
    """A platform authenticator that verifies its user (DevTools' virtual one), for this page: the DevTools
    session and the authenticator's id (to change how it behaves)."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    added = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {"options": {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                     "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True}},
    )  # fmt: skip
    return cdp, str(added["authenticatorId"])


async def enrolled(browser: Any, console: Served, reviewer: str) -> tuple[Any, Any, str]:
    """A page of a new browser context where ``reviewer`` enrolled a passkey and is signed in; the DevTools
    session and the id of its virtual authenticator."""
    page = await (await browser.new_context()).new_page()
    cdp, authenticator_id = await authenticator(page)
    await page.goto(console.enroll(reviewer))
    await page.get_by_role("button", name="Create my passkey").click()
    await page.get_by_role("heading", name="Waiting for you").wait_for()
    return page, cdp, authenticator_id


async def signed_in(browser: Any, console: Served, reviewer: str) -> Any:
    page, _, _ = await enrolled(browser, console, reviewer)
    return page


SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


async def screenshot(page: Any, name: str, into: Path) -> Path:
    """A full-page PNG of ``page`` in ``into``; with UPDATE_SCREENSHOTS=1, also the README's copy in
    docs/screenshots (the reviewer's guide shows what this test saw)."""
    shot = into / f"{name}.png"
    await page.set_viewport_size({"width": 1100, "height": 800})
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / shot.name).write_bytes(shot.read_bytes())
    return shot


def console_worker(client: Any, task_queue: str, store: Any, registry: Any, console: Served) -> Any:
    """A worker whose runs link to ``console`` and check passkeys against its origin (bugs fail at once)."""
    from govflow.workers.worker import build_worker

    return build_worker(client, task_queue, store, registry, console=console.origin,
                        workflow_failure_exception_types=[Exception])  # fmt: skip
