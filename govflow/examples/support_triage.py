"""Example task: support-ticket triage over a Postgres system of record.

The model reads a ticket and its customer's CRM contact, drafts a reply, and
may flag the contact as a churn risk. Policy: ``policies/examples/support-triage.yaml``. Written
against the public ``govflow`` API only, as a team's own task is; ``support_app`` is what a worker
serves of it (``govflow worker --app govflow.examples.support_triage:support_app``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from pydantic import BaseModel, Field

from govflow import (
    IDEMPOTENCY_DDL,
    Action,
    ContradictoryInput,
    IncompleteInput,
    LocalBaselineModel,
    Message,
    ModelClient,
    ModelRequest,
    Policy,
    PostgresTableConnector,
    Proposal,
    Registry,
    ScopedConnectors,
    Settings,
    SharedPool,
    Table,
    Task,
    ensure_database,
    parse_output,
    parse_policy,
    with_database,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "policies" / "examples"
"""The example policies (``policies/examples/``, installed as ``govflow/policies/examples``)."""


class TicketItem(BaseModel):
    ticket_id: str = Field(min_length=1)


class TicketContext(BaseModel):
    ticket: dict[str, Any]
    contact: dict[str, Any]


class TriageOutput(BaseModel):
    """What the model must answer, as JSON."""

    category: str = Field(pattern=r"^(billing|bug|question|account)$")
    reply: str = Field(min_length=1, max_length=2000)
    churn_risk: bool
    churn_reason: str = ""
    confidence: float = Field(ge=0.0, le=1.0)
    relevance: float = Field(ge=0.0, le=1.0)


class TriageProposal(Proposal):
    category: str


SYSTEM_PROMPT = (
    "You triage support tickets. Answer JSON with keys category (billing|bug|question|account), "
    "reply, churn_risk (bool), churn_reason, confidence (0-1), relevance (0-1)."
)


class SupportTriage(Task[TicketItem, TicketContext, TriageProposal]):
    name = "support-triage"
    version = "1"
    population = ("ticketing", "ticket")  # every ticket is an item (`report coverage`)

    async def gather(self, item: TicketItem, io: ScopedConnectors) -> TicketContext:
        ticket = await io.read("ticketing", "ticket", item.ticket_id)
        if ticket is None:
            raise IncompleteInput(f"ticket {item.ticket_id} does not exist")
        if not (ticket.get("body") or "").strip():
            raise IncompleteInput(f"ticket {item.ticket_id} has no body to triage")
        contact = await io.read("crm", "contact", str(ticket["contact_id"]))
        if contact is None:
            raise IncompleteInput(f"ticket {item.ticket_id} names contact {ticket['contact_id']}, who does not exist")
        if ticket.get("from_email") and ticket["from_email"] != contact.get("email"):
            raise ContradictoryInput(
                f"ticket {item.ticket_id} came from {ticket['from_email']} but contact "
                f"{contact['id']} has email {contact.get('email')}"
            )
        return TicketContext(ticket=ticket, contact=contact)

    async def propose(self, context: TicketContext, model: ModelClient) -> TriageProposal:
        ticket, contact = context.ticket, context.contact
        prompt = json.dumps({"subject": ticket.get("subject"), "body": ticket.get("body")})
        response = await model.complete(
            ModelRequest(messages=[Message(role="system", content=SYSTEM_PROMPT), Message(role="user", content=prompt)])
        )
        out = parse_output(TriageOutput, response.text)
        actions = [
            Action(
                action_id="reply",
                system="ticketing",
                resource="ticket",
                operation="reply",
                record_id=str(ticket["id"]),
                fields={"reply_body": out.reply, "category": out.category},
            )
        ]
        if out.churn_risk and contact.get("status") != "churn-risk":
            actions.append(
                Action(
                    action_id="flag-churn",
                    system="crm",
                    resource="contact",
                    operation="update",
                    record_id=str(contact["id"]),
                    fields={"status": "churn-risk", "churn_reason": out.churn_reason or "unspecified"},
                )
            )
        return TriageProposal(
            actions=actions,
            scores={"confidence": out.confidence, "relevance": out.relevance},
            rationale=f"category {out.category}; churn risk {out.churn_risk}",
            category=out.category,
        )


# --- the local baseline "model": keyword rules, deterministic -----------------------------------

_CHURN_WORDS = ("cancel", "leaving", "switch", "terrible", "unacceptable", "refund")
_CATEGORIES = (("billing", ("invoice", "charge", "refund", "price")), ("bug", ("error", "crash", "broken")))


def triage_responder(degraded: float | Callable[[], float] = 0.0) -> Any:
    """A responder for :class:`LocalBaselineModel`. ``degraded`` in [0, 1] (or a function
    returning it, read on every answer) is the share of answers that come back
    low-confidence and off-topic: a model gone bad, for demos. Which answers go bad
    is a stable hash of the whole request."""
    share = degraded if callable(degraded) else (lambda: degraded)

    def respond(request: ModelRequest) -> str:
        text = request.messages[-1].content
        body = json.loads(text) if text.startswith("{") else {"body": text}
        words = f"{body.get('subject', '')} {body.get('body', '')}".lower()
        category = next((c for c, keys in _CATEGORIES if any(k in words for k in keys)), "question")
        churn = any(w in words for w in _CHURN_WORDS)
        bucket = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        bad = bucket < share()
        return json.dumps(
            {
                "category": category,
                "reply": f"Thanks for writing about this {category} issue; we are on it.",
                "churn_risk": churn,
                "churn_reason": "customer signals leaving" if churn else "",
                "confidence": 0.35 if bad else 0.92,
                "relevance": 0.3 if bad else 0.9,
            }
        )

    return respond


def baseline_model(degraded: float | Callable[[], float] = 0.0) -> LocalBaselineModel:
    return LocalBaselineModel(triage_responder(degraded), name="support-triage-baseline-v1")


# --- the system of record: two tables in Postgres -------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS contact (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    email         text NOT NULL,
    phone         text,
    region        text NOT NULL,
    status        text NOT NULL DEFAULT 'active',
    churn_reason  text
);
CREATE TABLE IF NOT EXISTS ticket (
    id            text PRIMARY KEY,
    contact_id    text NOT NULL REFERENCES contact (id),
    from_email    text,
    subject       text NOT NULL,
    body          text NOT NULL,
    category      text,
    reply_body    text
);
"""

_BODIES = (
    ("Invoice question", "Why was I charged twice on my last invoice?"),
    ("App crash", "The app shows an error and crashes when I export."),
    ("How to", "How do I add a second user to my account?"),
    ("Very unhappy", "This is unacceptable, I am going to cancel and switch providers."),
    ("Refund", "Please refund the duplicate charge or I am leaving."),
)


async def create_schema(conn: asyncpg.Connection) -> None:
    await conn.execute(SCHEMA)
    await conn.execute(IDEMPOTENCY_DDL)


async def seed(conn: asyncpg.Connection, tickets: int = 50) -> list[str]:
    """Create the schema and ``tickets`` tickets (one contact each); returns the ticket ids."""
    await create_schema(conn)
    regions = ("eu", "us", "eu", "us", "apac")
    ids = []
    for i in range(1, tickets + 1):
        cid, tid = f"C{i:04d}", f"T{i:04d}"
        subject, body = _BODIES[i % len(_BODIES)]
        email = f"customer{i}@example.com"
        await conn.execute(
            "INSERT INTO contact (id, name, email, phone, region) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (id) DO NOTHING",
            cid,
            f"Customer {i}",
            email,
            f"+1-555-{i:04d}",
            regions[i % len(regions)],
        )
        await conn.execute(
            "INSERT INTO ticket (id, contact_id, from_email, subject, body) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (id) DO NOTHING",
            tid,
            cid,
            email,
            subject,
            body,
        )
        ids.append(tid)
    return ids


def connectors(pool: SharedPool) -> dict[str, PostgresTableConnector]:
    """The CRM and the ticketing system, both tables in one Postgres database."""
    return {
        "crm": PostgresTableConnector("crm", pool, {"contact": Table(name="contact")}),
        "ticketing": PostgresTableConnector("ticketing", pool, {"ticket": Table(name="ticket")}),
    }


# --- the example app: the task, its policy, its system of record ------------------------------------

SOR_DATABASE = "support_sor"


def example_registry(
    sor_dsn: str, *, degraded: float = 0.0, policy: Policy | Path = EXAMPLES / "support-triage.yaml"
) -> Registry:
    """The support-triage example: one line registers the task with its policy (a file, or a loaded one)."""
    registry = Registry()
    registry.register(
        SupportTriage(),
        policy=policy,
        connectors=connectors(SharedPool(sor_dsn)),
        model=baseline_model(degraded),
    )
    return registry


async def ensure_example_sor(database_url: str, tickets: int = 300) -> str:
    """Create and seed the example's system-of-record database next to the evidence one."""
    sor = await ensure_database(database_url, SOR_DATABASE)
    conn = await asyncpg.connect(sor)
    try:
        await seed(conn, tickets)
    finally:
        await conn.close()
    return sor


# --- the demo's version of the example ------------------------------------------------------------

DEMO_TASK = "support-triage"
DEMO_VERSION = "demo"


class SupportTriageDemo(SupportTriage):
    """The support-triage task under the demo's policy (same grants, short stages)."""

    version = DEMO_VERSION


def demo_policy() -> Policy:
    """support-triage.yaml with stages and windows sized for a two-minute demo."""
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / "support-triage.yaml").read_text())
    doc["rollout"] = {
        "stages": [
            {"name": "shadow", "live_fraction": 0.0, "min_runs": 20},
            {"name": "canary", "live_fraction": 0.5, "min_runs": 500, "gate": "auto+approval", "promoters": ["omar"]},
            {"name": "full", "live_fraction": 1.0},
        ]
    }

    # Sized for two minutes: a demo-scale promise (false pauses at most 1 % per 1,000 runs, wrong
    # promotions at most 5 %), so the shadow gate clears after ~60 clean runs and a bad model pauses
    # within ~25; the statistics are the production ones (method cusum), only the tolerances differ.
    def demo_scale() -> dict[str, Any]:  # fresh dicts: a shared one would be dumped as a YAML alias
        return {"false_pauses": {"at_most": 0.01, "per_runs": 1000}, "wrong_promotions": 0.05}

    doc["quality"]["window"] = [
        {"name": "pass-rate", "metric": "pass_rate", "threshold": 0.8, "window": 20, "min_sample": 10, **demo_scale()},
        {"name": "override-rate", "metric": "override_rate", "threshold": 0.2, "window": 20, "min_sample": 10,
         **demo_scale()},
        {"name": "error-rate", "metric": "error_rate", "threshold": 0.3, "window": 40, "min_sample": 10,
         **demo_scale()},
    ]  # fmt: skip
    return parse_policy(yaml.safe_dump(doc, sort_keys=False), source="support-triage.yaml (demo stages)")


class Knob:
    """The share of the model's answers that go bad; the demo turns it up mid-run."""

    def __init__(self) -> None:
        self.degraded = 0.0

    def __call__(self) -> float:
        return self.degraded


def register_demo(registry: Registry, sor_dsn: str, knob: Knob | None = None) -> None:
    registry.register(
        SupportTriageDemo(),
        policy=demo_policy(),
        connectors=connectors(SharedPool(sor_dsn)),
        model=baseline_model(knob or 0.0),
    )


def support_app(settings: Settings, database_url: str) -> Registry:
    """The support-triage example, version 1 (its real policy) and ``demo`` (what `govflow demo` rolls out)."""
    sor = with_database(database_url, SOR_DATABASE)
    registry = example_registry(sor, policy=(settings.policy_dir or EXAMPLES) / "support-triage.yaml")
    register_demo(registry, sor)
    return registry
