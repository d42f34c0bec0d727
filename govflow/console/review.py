"""The reviewer's pages: the inbox, an action's page, and an act on it. An act goes to the workflow through
the same Update any client uses (``govflow.client.review``) as the signed-in reviewer, and the page shows
the workflow's verdict, accepted or refused with its reason."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from govflow.client import review as send_review
from govflow.console.accounts import AccountError, Session
from govflow.console.action import action_page
from govflow.console.inbox import inbox
from govflow.console.web import console_of, form_of, page
from govflow.policies import AttemptOutcome
from govflow.workflows.run_api import ReviewRequest

MAX_REASON = 2000
PAGE = 50
"""Rows of the inbox a page shows (soonest expiry first); the counts are of everything that waits."""


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


async def _inbox(request: Request, session: Session) -> dict[str, Any]:
    task, rule = request.query_params.get("task", ""), request.query_params.get("rule", "")
    every = await inbox(console_of(request).accounts.store, session.reviewer)
    shown = [w for w in every if (not task or w.task == task) and (not rule or w.rule == rule)]
    counts: dict[str, int] = {}
    for w in every:
        counts[f"{w.task} · {w.rule}"] = counts.get(f"{w.task} · {w.rule}", 0) + 1
    return {"waiting": shown[:PAGE], "shown": len(shown), "total": len(every), "counts": counts, "task": task,
            "rule": rule}  # fmt: skip


async def action_view(request: Request) -> Response:
    session = await _session(request)
    if session is None:
        return RedirectResponse("/signin", status_code=303)
    return await _action(request, session, None)


async def _action(request: Request, session: Session, verdict: AttemptOutcome | None, status: int = 200) -> Response:
    run_id, action_id = request.path_params["run_id"], request.path_params["action_id"]
    try:
        shown = await action_page(console_of(request).accounts.store, run_id, action_id)
    except AccountError as exc:
        return page(request, "message.html", status=404, session=session, title="Not found", message=str(exc))
    return page(request, "action.html", status=status, session=session, page=shown, verdict=verdict)


async def act(request: Request) -> Response:
    """Approve or reject, as the signed-in reviewer (the Guard has checked origin, session and CSRF)."""
    session = await _session(request)
    assert session is not None, "the Guard lets no act through without a session"
    form = await form_of(request)
    verdict, reason, digest = form.get("verdict"), form.get("reason", ""), form.get("action_digest")
    problem = ""
    if verdict not in ("approve", "reject"):
        problem = "choose approve or reject"
    elif not isinstance(reason, str) or len(reason) > MAX_REASON:
        problem = f"the reason is at most {MAX_REASON} characters"
    elif not isinstance(digest, str) or len(digest) != 64:
        problem = "the form names no action digest: reload the page"
    if problem:
        refused = AttemptOutcome(accepted=False, code="closed", reason=f"not sent: {problem}")
        return await _action(request, session, refused, status=400)
    assert isinstance(digest, str)
    assert isinstance(reason, str)
    request_ = ReviewRequest(verdict=verdict, reviewer=session.reviewer, action_digest=digest,
                             action_id=request.path_params["action_id"], reason=reason)  # fmt: skip
    try:
        client = await console_of(request).client()
        outcome = await send_review(client, request.path_params["run_id"], request_)
    except WorkflowUpdateFailedError as exc:
        outcome = AttemptOutcome(accepted=False, code="closed", reason=str(exc.cause or exc))
    except RPCError as exc:
        outcome = AttemptOutcome(accepted=False, code="closed", reason=f"Temporal did not take the act: {exc.message}")
    console_of(request).metrics.acts.labels(verdict, "accepted" if outcome.accepted else "refused").inc()
    return await _action(request, session, outcome)
