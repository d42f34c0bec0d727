"""One action's or exception's page, and the act on it: approve or reject an action, retry or discard an
exception. An act goes to the workflow through the same Update any client uses (``govflow.client.review``
and ``resolve``) as the signed-in reviewer, naming the session it came from; the page shows the workflow's
verdict, accepted or refused with its reason, never a guess of the console's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from govflow.client import resolve as send_resolve
from govflow.client import review as send_review
from govflow.console.accounts import AccountError, Session
from govflow.console.action import RunPage, action_page, exception_page
from govflow.console.signing import proof_of
from govflow.console.web import console_of, form_of, page
from govflow.policies import AttemptOutcome
from govflow.workflows.run_api import ExceptionDecision, ReviewRequest

MAX_REASON = 2000
Loader = Callable[[bool], Awaitable[RunPage]]
"""A run's page, read with (True) or without (False) its chain verified and its earlier runs."""


def not_sent(problem: str) -> AttemptOutcome:
    """What the page shows for an act the console did not send (bad input): nothing reached the run."""
    return AttemptOutcome(accepted=False, code="closed", reason=f"not sent: {problem}")


def reason_problem(reason: object) -> str:
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        return f"the reason is at most {MAX_REASON} characters"
    return ""


async def _sent(request: Request, verdict: str, send: Callable[[Client], Awaitable[AttemptOutcome]]) -> AttemptOutcome:
    """The run's verdict on an act ``send`` makes (or why Temporal did not take it: the run finished,
    unreachable...), counted by verdict and the run's answer."""
    console = console_of(request)
    try:
        outcome = await send(await console.client())
    except WorkflowUpdateFailedError as exc:
        outcome = AttemptOutcome(accepted=False, code="closed", reason=str(exc.cause or exc))
    except RPCError as exc:
        outcome = AttemptOutcome(accepted=False, code="closed", reason=f"Temporal did not take the act: {exc.message}")
    console.metrics.acts.labels(verdict, "accepted" if outcome.accepted else "refused").inc()
    return outcome


async def review_one(request: Request, run_id: str, act: ReviewRequest) -> AttemptOutcome:
    """Send one vote as the signed-in reviewer; the run's verdict."""
    return await _sent(request, act.verdict, lambda client: send_review(client, run_id, act))


def _not_found(request: Request, session: Session, exc: AccountError, verdict: AttemptOutcome | None) -> Response:
    said = f" (and your act: {verdict.reason})" if verdict is not None and not verdict.accepted else ""
    return page(request, "message.html", status=404, session=session, title="Not found", message=f"{exc}{said}")


async def _session(request: Request) -> Session | None:
    return await console_of(request).session(request)


async def _render(request: Request, session: Session, template: str, load: Loader, verdict: AttemptOutcome | None,
                  status: int = 200) -> Response:  # fmt: skip
    """A run's page (an action's or its exception's); the answer to an act shows it without re-verifying."""
    try:
        shown = await load(verdict is None)
    except AccountError as exc:
        return _not_found(request, session, exc, verdict)
    return page(request, template, status=status, session=session, page=shown, verdict=verdict)


async def _action(request: Request, session: Session, verdict: AttemptOutcome | None, status: int = 200) -> Response:
    run_id, action_id = request.path_params["run_id"], request.path_params["action_id"]

    def load(check: bool) -> Awaitable[RunPage]:
        return action_page(console_of(request).store, run_id, action_id, check=check)

    return await _render(request, session, "action.html", load, verdict, status)


async def _exception(request: Request, session: Session, verdict: AttemptOutcome | None, status: int = 200) -> Response:
    def load(check: bool) -> Awaitable[RunPage]:
        return exception_page(console_of(request).store, request.path_params["run_id"], check=check)

    return await _render(request, session, "exception.html", load, verdict, status)


async def action_view(request: Request) -> Response:
    return await _view(request, _action)


async def exception_view(request: Request) -> Response:
    return await _view(request, _exception)


async def _view(request: Request, render: Callable[[Request, Session, None], Awaitable[Response]]) -> Response:
    session = await _session(request)
    if session is None:
        return RedirectResponse("/signin", status_code=303)
    return await render(request, session, None)


async def act(request: Request) -> Response:
    """Approve or reject, as the signed-in reviewer (the Guard has checked origin, session and CSRF)."""
    session = await _session(request)
    assert session is not None, "the Guard lets no act through without a session"
    form = await form_of(request)
    verdict, reason, digest = form.get("verdict"), form.get("reason", ""), form.get("action_digest")
    problem = ""
    if verdict not in ("approve", "reject"):
        problem = "choose approve or reject"
    elif reason_problem(reason):
        problem = reason_problem(reason)
    elif not isinstance(digest, str) or len(digest) != 64:
        problem = "the form names no action digest: reload the page"
    proof = proof_of(form)
    if isinstance(proof, str):
        problem = problem or proof
    if problem:
        return await _action(request, session, not_sent(problem), status=400)
    assert isinstance(digest, str)
    assert isinstance(reason, str)
    assert not isinstance(proof, str)
    sent = ReviewRequest(verdict=verdict, reviewer=session.reviewer, action_digest=digest, session=session.id,
                         action_id=request.path_params["action_id"], reason=reason, passkey=proof)  # fmt: skip
    outcome = await review_one(request, request.path_params["run_id"], sent)
    return await _action(request, session, outcome)


async def resolve(request: Request) -> Response:
    """Retry or discard the run's exception, as the signed-in reviewer."""
    session = await _session(request)
    assert session is not None, "the Guard lets no act through without a session"
    form = await form_of(request)
    decision, reason = form.get("decision"), form.get("reason", "")
    problem = "choose retry or discard" if decision not in ("retry", "discard") else reason_problem(reason)
    if problem:
        return await _exception(request, session, not_sent(problem), status=400)
    assert isinstance(reason, str)
    sent = ExceptionDecision(reviewer=session.reviewer, decision=decision, reason=reason, session=session.id)
    run_id = request.path_params["run_id"]
    outcome = await _sent(request, sent.decision, lambda client: send_resolve(client, run_id, sent))
    return await _exception(request, session, outcome)
