"""The reviewer console: a Starlette app, its pages rendered on the server (Jinja2), served by uvicorn.

Security, for every request: a Content Security Policy with no inline script or style; a state-changing
request is refused unless it comes from the console's own origin (``Origin``) and, once signed in, carries
the session's CSRF token. Sessions are HttpOnly, SameSite=Lax, Secure under https, and short-lived; they,
the passkeys, the single-use challenges and the enrollment links live in Postgres (govflow/console/accounts.py),
so replicas behind a load balancer behave as one.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from govflow.activities.evidence import EvidenceStore
from govflow.console import decide, review, signing
from govflow.console.accounts import AccountError
from govflow.console.metrics import CONTENT_TYPE_LATEST
from govflow.console.web import (
    CEREMONY_COOKIE,
    CSP,
    HERE,
    SESSION_COOKIE,
    Console,
    console_of,
    form_of,
    json_body,
    page,
    refused,
)
from govflow.workers.settings import Settings

# --- pages ---------------------------------------------------------------------------------------------


async def signin_page(request: Request) -> Response:
    return page(request, "signin.html")


async def enroll_page(request: Request) -> Response:
    token = request.path_params["token"]
    try:
        reviewer = await console_of(request).accounts.enrollment(token)
    except AccountError as exc:
        return refused(request, str(exc), status=410)
    return page(request, "enroll.html", reviewer=reviewer, token=token)


# --- ceremonies ----------------------------------------------------------------------------------------


async def enroll_options(request: Request) -> Response:
    console = console_of(request)
    return _options(console, *await console.rp.enroll_options(request.path_params["token"]))


async def enroll_verify(request: Request) -> Response:
    console = console_of(request)
    ceremony = request.cookies.get(CEREMONY_COOKIE, "")
    reviewer, credential_id = await console.rp.enroll(request.path_params["token"], ceremony, await json_body(request))
    return await _signed_in(console, "enroll", reviewer, credential_id)


async def signin_options(request: Request) -> Response:
    console = console_of(request)
    return _options(console, *await console.rp.signin_options())


async def signin_verify(request: Request) -> Response:
    console = console_of(request)
    ceremony = request.cookies.get(CEREMONY_COOKIE, "")
    reviewer, credential_id = await console.rp.signin(ceremony, await json_body(request))
    return await _signed_in(console, "signin", reviewer, credential_id)


def _ceremony(path: str) -> str:
    return "enroll" if path.startswith("/enroll/") else "signin"


async def metrics(request: Request) -> Response:
    return Response(console_of(request).metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def _options(console: Console, ceremony: str, options: dict[str, Any]) -> Response:
    """The browser's options for a ceremony, and the cookie that binds its challenge to this browser."""
    response = JSONResponse(options)
    console.set_cookie(response, CEREMONY_COOKIE, ceremony, max_age=300)
    return response


async def _signed_in(console: Console, ceremony: str, reviewer: str, credential_id: str) -> Response:
    console.metrics.signins.labels(ceremony, "ok").inc()
    token, _ = await console.accounts.start_session(reviewer, credential_id, console.session_ttl)
    response = JSONResponse({"reviewer": reviewer, "redirect": "/"})
    console.set_cookie(response, SESSION_COOKIE, token, max_age=int(console.session_ttl.total_seconds()))
    response.delete_cookie(CEREMONY_COOKIE, path="/")
    return response


async def signout(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await console_of(request).accounts.end_session(token)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- operations ----------------------------------------------------------------------------------------


async def healthz(_: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    try:
        await console_of(request).accounts.store.pool.fetchval("SELECT 1 FROM console_sessions LIMIT 1")
    except Exception as exc:  # not ready: say why, to the load balancer's log
        return PlainTextResponse(f"not ready: {type(exc).__name__}: {exc}", status_code=503)
    return PlainTextResponse("ready")


# --- the guard -----------------------------------------------------------------------------------------

# State-changing requests that need no session (they start one).
_BEFORE_SESSION = ("/signin/", "/enroll/")


class Guard(BaseHTTPMiddleware):
    """Refuses a state-changing request from another origin, or without the session's CSRF token; sets the
    security headers on every response; turns an AccountError into a clear refusal."""

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        console = console_of(request)
        try:
            refusal = await self._refusal(request, console)
            response = refused(request, refusal, status=403) if refusal else await call_next(request)
        except AccountError as exc:
            response = refused(request, str(exc))
            if request.url.path.endswith("/verify"):
                console.metrics.signins.labels(_ceremony(request.url.path), "refused").inc()
        console.metrics.request(request.url.path, response.status_code)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Not no-referrer: under it Chromium sends "Origin: null" with a form's POST, and the origin check
        # above would refuse the console's own forms.
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    async def _refusal(self, request: Request, console: Console) -> str:
        if request.method in ("GET", "HEAD"):
            return ""
        if request.headers.get("origin") != console.origin:
            return f"refused: a request from another origin ({request.headers.get('origin') or 'none given'})"
        if request.url.path.startswith(_BEFORE_SESSION):
            return ""
        session = await console.session(request)
        if session is None:
            return "refused: you are not signed in (or your session has ended): sign in again"
        sent = request.headers.get("x-csrf-token")
        if sent is None and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            field = (await form_of(request)).get("csrf")
            sent = field if isinstance(field, str) else None
        if not sent or not hmac.compare_digest(sent, session.csrf):
            return "refused: the form's CSRF token is missing or wrong: reload the page and try again"
        return ""


def create_app(settings: Settings, database_url: str) -> Starlette:
    """The console over the evidence database at ``database_url``."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with EvidenceStore.open(database_url) as store:
            app.state.console = Console(settings, store)
            yield

    routes = [
        Route("/", review.inbox_page),
        Route("/inbox/rows", review.inbox_rows),
        Route("/act", review.bulk, methods=["POST"]),
        Route("/act/challenge", signing.bulk_challenge, methods=["POST"]),
        Route("/runs/{run_id:path}/actions/{action_id}/challenge", signing.act_challenge, methods=["POST"]),
        # A run id may hold "/": it is the path up to the last two segments.
        Route("/runs/{run_id:path}/actions/{action_id}", decide.action_view),
        Route("/runs/{run_id:path}/actions/{action_id}", decide.act, methods=["POST"]),
        Route("/runs/{run_id:path}/exception", decide.exception_view),
        Route("/runs/{run_id:path}/exception", decide.resolve, methods=["POST"]),
        Route("/signin", signin_page),
        Route("/signin/options", signin_options, methods=["POST"]),
        Route("/signin/verify", signin_verify, methods=["POST"]),
        Route("/enroll/{token}", enroll_page),
        Route("/enroll/{token}/options", enroll_options, methods=["POST"]),
        Route("/enroll/{token}/verify", enroll_verify, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Guard)], lifespan=lifespan)
