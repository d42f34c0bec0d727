"""What the console's routes share: its settings, accounts, relying party and Temporal client, and how a
page or a refusal is rendered."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates
from temporalio.client import Client

from govflow.activities.escaping import url_segment
from govflow.activities.evidence import EvidenceStore
from govflow.console.accounts import AccountError, Accounts, Session
from govflow.console.metrics import ConsoleMetrics
from govflow.console.passkeys import RelyingParty
from govflow.workers.settings import Settings
from govflow.workers.temporal import connect

HERE = Path(__file__).parent
SESSION_COOKIE = "govflow_session"
CEREMONY_COOKIE = "govflow_ceremony"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
MAX_JSON = 64 * 1024

templates = Jinja2Templates(directory=str(HERE / "templates"))
# Ids in links are one path segment each: "/", "?", "#" and dot segments stay inside it (the router takes
# a run id with "/" as it is).
templates.env.filters["segment"] = url_segment


class Console:
    """What the routes share: the settings, the accounts, the relying party."""

    def __init__(self, settings: Settings, store: EvidenceStore) -> None:
        self.settings = settings
        self.origin = settings.console_url
        self.secure = self.origin.startswith("https://")
        self.accounts = Accounts(store)
        self.rp = RelyingParty(self.origin, self.accounts)
        self.session_ttl = timedelta(minutes=settings.console_session_minutes)
        self.store = store
        self.metrics = ConsoleMetrics()
        self._client: Client | None = None

    async def client(self) -> Client:
        """Temporal, connected at the first act (the console serves sign-in and the inbox without it)."""
        if self._client is None:
            self._client = await connect(self.settings)
        return self._client

    def set_cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=self.secure, path="/")

    async def session(self, request: Request) -> Session | None:
        """The request's session, looked up once per request (the Guard and the route share it)."""
        if not hasattr(request.state, "session"):
            token = request.cookies.get(SESSION_COOKIE)
            request.state.session = await self.accounts.session(token) if token else None
        session: Session | None = request.state.session
        return session


async def form_of(request: Request) -> FormData:
    """The request's form, read once (the body cannot be read twice: the Guard and the route share it)."""
    if not hasattr(request.state, "form"):
        request.state.form = await request.form()
    form: FormData = request.state.form
    return form


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    return templates.TemplateResponse(request, name, context, status_code=status)


def refused(request: Request, message: str, status: int = 400) -> Response:
    if request.headers.get("content-type", "").startswith("application/json") or request.url.path.endswith(
        ("/options", "/verify", "/challenge")
    ):
        return JSONResponse({"error": message}, status_code=status)
    return page(request, "message.html", status=status, title="Refused", message=message)


async def json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_JSON:
        raise AccountError(f"the request is {len(body)} bytes; at most {MAX_JSON}")
    try:
        value = json.loads(body or b"{}")
    except ValueError as exc:
        raise AccountError(f"the request is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise AccountError("the request must be a JSON object")
    return value
