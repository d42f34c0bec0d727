"""The console's pages without a browser: any run id, however hostile, routes to its own page (the id one
path segment in every link the console and the Temporal UI's details make)."""

from __future__ import annotations

import html
from datetime import timedelta

import httpx

from govflow.activities.escaping import console_exception_url, console_url
from govflow.activities.evidence import EvidenceStore
from govflow.console.accounts import Accounts
from govflow.console.web import SESSION_COOKIE
from tests.integration.console_kit import Served
from tests.unit.test_escaping import HOSTILE


async def _session(database_url: str) -> str:
    """A signed-in session for alice (a passkey stored as enrolled: this test is about pages, not passkeys)."""
    async with EvidenceStore.open(database_url) as store:
        accounts = Accounts(store)
        link, _ = await accounts.issue_enrollment("alice", "omar", timedelta(minutes=5))
        await accounts.enroll(link, "credential-of-alice", b"not a real key", 0, "http://localhost")
        token, _ = await accounts.start_session("alice", "credential-of-alice", timedelta(minutes=5))
    return token


async def test_every_run_id_routes_to_its_own_page(console: Served) -> None:
    token = await _session(console.database_url)
    async with httpx.AsyncClient(cookies={SESSION_COOKIE: token}) as http:
        for run_id in HOSTILE:
            for url, says in (
                (console_url(console.origin, run_id, "reply"), f"there is no run {run_id}"),
                (console_exception_url(console.origin, run_id), f"there is no run {run_id}"),
            ):
                answer = await http.get(url)
                assert answer.status_code == 404, (url, answer.status_code)
                assert html.escape(says) in answer.text, (url, answer.text[-400:])
