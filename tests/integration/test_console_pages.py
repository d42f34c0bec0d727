"""The console's pages without a browser: any run id, however hostile, routes to its own page (the id one
path segment in every link the console and the Temporal UI's details make); bad input to an act gets a
clear message and reaches no run (the console here has no Temporal: nothing could be sent)."""

from __future__ import annotations

import html
import json
from datetime import timedelta

import httpx

from govflow.activities.escaping import console_exception_url, console_url
from govflow.activities.evidence import EvidenceStore
from govflow.console.accounts import Accounts
from govflow.console.web import SESSION_COOKIE
from tests.integration.console_kit import Served
from tests.unit.test_escaping import HOSTILE


async def _session(database_url: str) -> tuple[str, str]:
    """A signed-in session for alice (a passkey stored as enrolled: this test is about pages, not passkeys)."""
    async with EvidenceStore.open(database_url) as store:
        accounts = Accounts(store)
        link, _ = await accounts.issue_enrollment("alice", "omar", timedelta(minutes=5))
        await accounts.enroll(link, "credential-of-alice", b"not a real key", 0, "http://localhost")
        token, session = await accounts.start_session("alice", "credential-of-alice", timedelta(minutes=5))
    return token, session.csrf


async def test_every_run_id_routes_to_its_own_page(console: Served) -> None:
    token, _ = await _session(console.database_url)
    async with httpx.AsyncClient(cookies={SESSION_COOKIE: token}) as http:
        for run_id in HOSTILE:
            for url, says in (
                (console_url(console.origin, run_id, "reply"), f"there is no run {run_id}"),
                (console_exception_url(console.origin, run_id), f"there is no run {run_id}"),
            ):
                answer = await http.get(url)
                assert answer.status_code == 404, (url, answer.status_code)
                assert html.escape(says) in answer.text, (url, answer.text[-400:])


async def test_bad_input_to_an_act_is_named_and_sends_nothing(console: Served) -> None:
    token, csrf = await _session(console.database_url)
    digest = "d" * 64
    pick = json.dumps(["run-1", "reply", digest])
    cases = [
        ("/act", {"verdict": "approve", "pick": ["not json"]}, "a selected action is not one the inbox named"),
        ("/act", {"verdict": "approve", "pick": ['["run-1", "reply"]']}, "a selected action is not one"),
        ("/act", {"verdict": "approve", "pick": [json.dumps(["r", "a", "short"])]}, "a selected action is not one"),
        ("/act", {"verdict": "approve"}, "select at least one action"),
        ("/act", {"verdict": "approve", "pick": [pick] * 51}, "at most 50 actions at once"),
        ("/act", {"verdict": "maybe", "pick": [pick]}, "choose approve or reject"),
        ("/act", {"verdict": "approve", "pick": [pick], "reason": "x" * 2001}, "the reason is at most 2000"),
        ("/runs/run-1/exception", {"decision": "ignore"}, "choose retry or discard"),
        ("/runs/run-1/exception", {"decision": "retry", "reason": "x" * 2001}, "the reason is at most 2000"),
        (
            "/runs/run-1/actions/reply",
            {"verdict": "approve", "action_digest": "abc"},
            "the form names no action digest",
        ),
    ]
    async with httpx.AsyncClient(cookies={SESSION_COOKIE: token}, headers={"Origin": console.origin}) as http:
        for path, form, says in cases:
            answer = await http.post(console.origin + path, data={"csrf": csrf, **form})
            assert answer.status_code in (400, 404), (path, form, answer.status_code)
            text = html.unescape(answer.text)
            assert f"not sent: {says}" in text, (path, says, text[-600:])
    async with EvidenceStore.open(console.database_url) as store:
        assert await store.pool.fetchval("SELECT count(*) FROM approval_attempts") == 0
