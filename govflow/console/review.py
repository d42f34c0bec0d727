"""The reviewer's inbox, and a decision on many of its actions at once (bulk): each selected action gets
its own act, its own verdict from its run and its own row of evidence."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from govflow.console.accounts import Session
from govflow.console.decide import not_sent, reason_problem, review_one
from govflow.console.inbox import Waiting, inbox
from govflow.console.signing import proof_of
from govflow.console.web import console_of, form_of, page
from govflow.policies import AttemptOutcome
from govflow.workflows.run_api import ReviewRequest

PAGE = 50
"""Rows of the inbox a page shows (soonest expiry first); the counts are of everything that waits. A bulk
act takes at most this many actions too."""
RISKS = ("high", "medium", "low")
_IN_FLIGHT = 8
"""Acts of one bulk decision sent at once."""


async def _session(request: Request) -> Session | None:
    return await console_of(request).session(request)


async def inbox_page(request: Request) -> Response:
    session = await _session(request)
    if session is None:
        return RedirectResponse("/signin", status_code=303)
    return page(request, "inbox.html", session=session, **await _inbox(request, session))


async def inbox_rows(request: Request) -> Response:
    """The inbox's rows alone: the page fetches them every second, so what arrives or leaves shows."""
    session = await _session(request)
    if session is None:
        return Response("", status_code=401)
    return page(request, "inbox_rows.html", session=session, **await _inbox(request, session))


def _shown(w: Waiting, task: str, rule: str, risk: str) -> bool:
    return (not task or w.task == task) and (not rule or w.rule == rule) and (not risk or w.risk == risk)


async def _inbox(request: Request, session: Session) -> dict[str, Any]:
    query = request.query_params
    task, rule, risk = query.get("task", ""), query.get("rule", ""), query.get("risk", "")
    every = await inbox(console_of(request).store, session.reviewer)
    shown = [w for w in every if _shown(w, task, rule, risk)]
    counts: dict[str, int] = {}
    for w in every:
        name = f"{w.task} · {w.rule}" + (f" ({w.risk})" if w.risk else "")
        counts[name] = counts.get(name, 0) + 1
    return {"waiting": shown[:PAGE], "shown": len(shown), "total": len(every), "counts": counts, "task": task,
            "rule": rule, "risk": risk, "risks": RISKS}  # fmt: skip


@dataclass(frozen=True)
class Picked:
    run_id: str
    action_id: str
    action_digest: str


@dataclass(frozen=True)
class Decided:
    picked: Picked
    item_key: str
    outcome: AttemptOutcome


def _picks(values: list[Any]) -> list[Picked] | str:
    """The selected actions, as the inbox's checkboxes name them, or what is wrong with them."""
    picks: list[Picked] = []
    for value in values:
        try:
            named = json.loads(value) if isinstance(value, str) else None
        except ValueError:
            named = None
        if not (isinstance(named, list) and len(named) == 3 and all(isinstance(x, str) and x for x in named)):
            return "a selected action is not one the inbox named: reload the page"
        run_id, action_id, digest = named
        if len(digest) != 64:
            return "a selected action is not one the inbox named: reload the page"
        picks.append(Picked(run_id, action_id, digest))
    if not picks:
        return "select at least one action"
    if len(picks) > PAGE:
        return f"at most {PAGE} actions at once"
    return picks


async def bulk(request: Request) -> Response:
    """Approve or reject the selected actions of one rule, each its own act with its own verdict."""
    session = await _session(request)
    assert session is not None, "the Guard lets no act through without a session"
    form = await form_of(request)
    verdict, reason = form.get("verdict"), form.get("reason", "")
    picks = _picks(form.getlist("pick"))
    proof = proof_of(form)
    problem = "choose approve or reject" if verdict not in ("approve", "reject") else reason_problem(reason)
    problem = problem or (picks if isinstance(picks, str) else "") or (proof if isinstance(proof, str) else "")
    if not problem and isinstance(picks, list):
        # One rule a gesture: the rules as the evidence says, never as the form does.
        rows = await console_of(request).store.pool.fetch(
            "SELECT DISTINCT d.rule, r.item_key, d.run_id, d.action_id FROM policy_decisions d JOIN runs r "
            "USING (run_id) WHERE (d.run_id, d.action_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            [p.run_id for p in picks], [p.action_id for p in picks],
        )  # fmt: skip
        rules = sorted({str(r["rule"]) for r in rows})
        if len(rules) > 1:
            problem = f"a bulk decision takes the actions of one rule; these are of {', '.join(rules)}"
        items = {(r["run_id"], r["action_id"]): str(r["item_key"]) for r in rows}
    if problem or not isinstance(picks, list):
        return page(request, "bulk.html", status=400, session=session, decided=[], verdict=verdict,
                    problem=not_sent(problem).reason)  # fmt: skip
    assert isinstance(verdict, str)
    assert isinstance(reason, str)
    assert not isinstance(proof, str)
    gate = asyncio.Semaphore(_IN_FLIGHT)

    async def one(p: Picked) -> Decided:
        sent = ReviewRequest(verdict=verdict, reviewer=session.reviewer, action_id=p.action_id,
                             action_digest=p.action_digest, reason=reason, session=session.id,
                             passkey=proof)  # fmt: skip
        async with gate:
            outcome = await review_one(request, p.run_id, sent)
        return Decided(p, items.get((p.run_id, p.action_id), "?"), outcome)

    decided = await asyncio.gather(*(one(p) for p in picks))
    return page(request, "bulk.html", session=session, decided=decided, verdict=verdict, problem="")
