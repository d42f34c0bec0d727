"""Invoice matching: the second example task, written only against ``govflow``'s public API.

An invoice is matched three ways (the invoice, its purchase order, the goods received against it), then
the model proposes to record the match and schedule the payment, or to hold the invoice with a reason.
govflow does the rest: the payment waits for signed finance approvals (two above 10,000), an invoice that
contradicts its order, repeats one already received, or has nothing received against it goes to a person
(the exception route), and a payment to a vendor outside the pilot is refused at the boundary.
Policy: ``policies/examples/invoice-matching.yaml``.

Run a worker with it: ``govflow worker --app govflow.examples.invoice_matching:app`` (the default worker
serves it too). ``make demo-finance`` rolls it out with scripted reviewers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

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
    parse_output,
    parse_policy,
)

SYSTEM = "finance"
POLICY = Path(__file__).resolve().parents[1] / "policies" / "examples" / "invoice-matching.yaml"
SOR_DATABASE = "finance_sor"
TOLERANCE = Decimal("0.02")
"""How far an invoice may bill above or below its purchase order before a person must look (2 %)."""


class InvoiceItem(BaseModel):
    invoice_id: str = Field(min_length=1, max_length=64)


class InvoiceContext(BaseModel):
    invoice: dict[str, Any]
    purchase_order: dict[str, Any]
    receipts: list[dict[str, Any]]
    vendor: dict[str, Any]
    payment: dict[str, Any] | None = Field(description="A cancelled earlier payment of this invoice, if any.")


class MatchAnswer(BaseModel):
    """What the model must answer, as JSON."""

    decision: Literal["pay", "hold"]
    reason: str = Field(min_length=1, max_length=500)
    amount_match: float = Field(ge=0.0, le=1.0)
    confidence: float = Field(ge=0.0, le=1.0)


class MatchProposal(Proposal):
    decision: Literal["pay", "hold"]


SYSTEM_PROMPT = (
    "You match supplier invoices to purchase orders and goods receipts. Answer JSON with keys decision "
    "(pay|hold), reason, amount_match (0-1: how well the invoice amount agrees with the order), confidence (0-1)."
)


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


class InvoiceMatching(Task[InvoiceItem, InvoiceContext, MatchProposal]):
    name = "invoice-matching"
    version = "1"

    async def gather(self, item: InvoiceItem, io: ScopedConnectors) -> InvoiceContext:
        invoice = await io.read(SYSTEM, "invoice", item.invoice_id)
        if invoice is None:
            raise IncompleteInput(f"invoice {item.invoice_id} does not exist")
        iid = invoice["id"]
        if not invoice.get("po_id"):
            raise IncompleteInput(f"invoice {iid} names no purchase order to match it to")
        order = await io.read(SYSTEM, "purchase_order", invoice["po_id"])
        if order is None:
            raise IncompleteInput(f"invoice {iid} names purchase order {invoice['po_id']}, which does not exist")
        if order["vendor_id"] != invoice["vendor_id"]:
            raise ContradictoryInput(
                f"invoice {iid} is from vendor {invoice['vendor_id']} but purchase order {order['id']} "
                f"is with vendor {order['vendor_id']}"
            )
        if order["currency"] != invoice["currency"]:
            raise ContradictoryInput(
                f"invoice {iid} bills in {invoice['currency']}, purchase order {order['id']} is in {order['currency']}"
            )
        billed, ordered = money(invoice["amount"]), money(order["amount"])
        if abs(billed - ordered) > ordered * TOLERANCE:
            off = (billed - ordered) / ordered * 100
            raise ContradictoryInput(
                f"invoice {iid} bills {billed:,} {invoice['currency']} against purchase order {order['id']} "
                f"for {ordered:,}: {off:+.1f}%, beyond the {TOLERANCE * 100:.0f}% tolerance"
            )
        same_number = await io.find(
            SYSTEM, "invoice", {"vendor_id": invoice["vendor_id"], "invoice_number": invoice["invoice_number"]}
        )
        earlier = sorted(
            (o["received_at"], o["id"])
            for o in same_number.values()
            if o["id"] != iid
            and o.get("match_status") != "rejected"
            and (o["received_at"], o["id"]) < (invoice["received_at"], iid)
        )
        if earlier:
            raise ContradictoryInput(
                f"invoice {iid} repeats vendor {invoice['vendor_id']}'s number {invoice['invoice_number']}, "
                f"already received as {earlier[0][1]}: a duplicate"
            )
        receipts = list((await io.find(SYSTEM, "goods_receipt", {"po_id": order["id"]})).values())
        if not receipts:
            raise IncompleteInput(
                f"nothing has been received against purchase order {order['id']}: no goods receipt to match "
                f"invoice {iid} to"
            )
        payment = await io.read(SYSTEM, "payment", payment_id(iid))
        if payment is not None and payment.get("status") != "cancelled":
            raise ContradictoryInput(f"invoice {iid} already has payment {payment['id']} ({payment.get('status')})")
        vendor = await io.read(SYSTEM, "vendor", invoice["vendor_id"])
        if vendor is None:
            raise IncompleteInput(f"invoice {iid} is from vendor {invoice['vendor_id']}, who does not exist")
        return InvoiceContext(invoice=invoice, purchase_order=order, receipts=receipts, vendor=vendor, payment=payment)

    async def propose(self, context: InvoiceContext, model: ModelClient) -> MatchProposal:
        invoice, order = context.invoice, context.purchase_order
        received = sum((money(r["amount"]) for r in context.receipts), Decimal(0))
        facts = {
            "invoice": invoice["invoice_number"], "vendor": context.vendor.get("name"),
            "vendor_status": context.vendor.get("status"), "invoice_amount": str(money(invoice["amount"])),
            "order_amount": str(money(order["amount"])), "received_amount": str(received),
            "currency": invoice["currency"], "due_on": invoice["due_on"],
        }  # fmt: skip
        response = await model.complete(
            ModelRequest(
                messages=[
                    Message(role="system", content=SYSTEM_PROMPT),
                    Message(role="user", content=json.dumps(facts)),
                ]
            )
        )
        out = parse_output(MatchAnswer, response.text)
        status = "matched" if out.decision == "pay" else "hold"
        fields: dict[str, Any] = {"matched_po": order["id"], "match_status": status}
        if out.decision == "hold":
            fields["hold_reason"] = out.reason
        actions = [
            Action(action_id="record-match", system=SYSTEM, resource="invoice", operation="update",
                   record_id=invoice["id"], fields=fields),
        ]  # fmt: skip
        if out.decision == "pay":
            actions.append(
                Action(
                    action_id="schedule-payment",
                    system=SYSTEM,
                    resource="payment",
                    # A payment this invoice had and a rollback cancelled is scheduled again, not created twice.
                    operation="update" if context.payment is not None else "create",
                    record_id=payment_id(invoice["id"]),
                    fields={
                        "invoice_id": invoice["id"],
                        "vendor_id": invoice["vendor_id"],
                        "amount": str(money(invoice["amount"])),
                        "currency": invoice["currency"],
                        "pay_on": invoice["due_on"],
                        "status": "scheduled",
                    },
                )
            )
        return MatchProposal(
            actions=actions,
            scores={"amount_match": out.amount_match, "confidence": out.confidence},
            rationale=f"{out.decision}: {out.reason}",
            decision=out.decision,
        )


def payment_id(invoice_id: str) -> str:
    return f"PAY-{invoice_id}"


# --- the local baseline "model": the three-way match as rules, deterministic ---------------------------


def match_responder(degraded: float | Callable[[], float] = 0.0) -> Callable[[ModelRequest], str]:
    """A responder for ``LocalBaselineModel``: pay what was received in full, hold what was not.
    ``degraded`` in [0, 1] (or a function returning it, read on every answer) is the share of answers
    that come back unsure and misjudging the amount: a model gone bad, for demos. Which answers go bad
    is a stable hash of the request."""
    share = degraded if callable(degraded) else (lambda: degraded)

    def respond(request: ModelRequest) -> str:
        text = request.messages[-1].content
        facts = json.loads(text)
        billed, ordered = money(facts["invoice_amount"]), money(facts["order_amount"])
        received = money(facts["received_amount"])
        agreement = max(Decimal(0), 1 - abs(billed - ordered) / ordered) if ordered else Decimal(0)
        bucket = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        bad = bucket < share()
        if facts.get("vendor_status") == "blocked":
            decision, reason = "hold", f"vendor {facts['vendor']} is blocked for payment"
        elif received < billed:
            decision, reason = "hold", f"received {received:,} of {billed:,} {facts['currency']} invoiced"
        else:
            decision, reason = "pay", f"invoice, order and receipts agree at {billed:,} {facts['currency']}"
        return json.dumps(
            {
                "decision": decision,
                "reason": reason,
                "amount_match": 0.6 if bad else float(round(agreement, 4)),
                "confidence": 0.4 if bad else 0.96,
            }
        )

    return respond


def baseline_model(degraded: float | Callable[[], float] = 0.0) -> LocalBaselineModel:
    return LocalBaselineModel(match_responder(degraded), name="invoice-matching-baseline-v1")


# --- the system of record: five tables in Postgres ----------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS vendor (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    country       text NOT NULL,
    status        text NOT NULL DEFAULT 'active',
    bank_account  text,
    iban          text
);
CREATE TABLE IF NOT EXISTS purchase_order (
    id            text PRIMARY KEY,
    vendor_id     text NOT NULL REFERENCES vendor (id),
    amount        numeric(14, 2) NOT NULL,
    currency      text NOT NULL,
    requested_by  text NOT NULL,
    status        text NOT NULL DEFAULT 'open'
);
CREATE TABLE IF NOT EXISTS goods_receipt (
    id            text PRIMARY KEY,
    po_id         text NOT NULL REFERENCES purchase_order (id),
    amount        numeric(14, 2) NOT NULL,
    received_on   date NOT NULL
);
CREATE INDEX IF NOT EXISTS goods_receipt_po ON goods_receipt (po_id);
CREATE TABLE IF NOT EXISTS invoice (
    id              text PRIMARY KEY,
    vendor_id       text NOT NULL REFERENCES vendor (id),
    invoice_number  text NOT NULL,
    po_id           text,
    amount          numeric(14, 2) NOT NULL,
    currency        text NOT NULL,
    issued_on       date NOT NULL,
    due_on          date NOT NULL,
    received_at     timestamptz NOT NULL,
    matched_po      text,
    match_status    text NOT NULL DEFAULT 'new',
    hold_reason     text
);
CREATE INDEX IF NOT EXISTS invoice_vendor_number ON invoice (vendor_id, invoice_number);
CREATE TABLE IF NOT EXISTS payment (
    id          text PRIMARY KEY,
    invoice_id  text NOT NULL REFERENCES invoice (id),
    vendor_id   text NOT NULL REFERENCES vendor (id),
    amount      numeric(14, 2) NOT NULL,
    currency    text NOT NULL,
    pay_on      date NOT NULL,
    status      text NOT NULL
);
"""

PILOT_VENDORS = tuple(f"V{i:03d}" for i in range(1, 11))
"""The vendors the policy's payments grant covers; V011 and V012 are outside it."""

# The invoices that are not routine, for the demo and the tests.
DUPLICATE = "INV-D001"
"""Repeats INV-0003's vendor invoice number, received a day later."""
OVER_BILLED = "INV-X001"
"""Bills 20 % above its purchase order."""
NOT_RECEIVED = "INV-R002"
"""Its purchase order has no goods receipt yet (``receive`` posts one)."""
PARTLY_RECEIVED = "INV-H001"
"""Half its order has been received: the model holds it."""
OUTSIDE_PILOT = "INV-V011"
"""From vendor V011, outside the payments grant."""
LARGE = "INV-L001"
"""48,250.00 EUR: two finance approvers."""

_BASE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def routine_amount(i: int) -> Decimal:
    """Every fifth invoice is over 10,000 (two approvers); the rest 800 to 9,800."""
    if i % 5 == 0:
        return Decimal(12_000 + (i * 977) % 30_000)
    return Decimal(800 + (i * 379) % 9_000) + Decimal(i % 100) / 100


async def seed(conn: asyncpg.Connection, invoices: int = 300) -> list[str]:
    """Create the schema, 12 vendors and ``invoices`` routine invoices (each with its order and receipts),
    plus the exceptional ones named above; returns the routine invoice ids. Idempotent: rows that exist
    are left as they are."""
    await conn.execute(SCHEMA)
    await conn.execute(IDEMPOTENCY_DDL)
    vendors = [
        (f"V{i:03d}", f"Vendor {i:02d} GmbH" if i % 2 else f"Vendor {i:02d} Ltd", "DE" if i % 2 else "GB",
         f"ACCT-{i:06d}", f"DE89 3704 0044 0532 0{i:05d}")
        for i in range(1, 13)
    ]  # fmt: skip
    await conn.executemany(
        "INSERT INTO vendor (id, name, country, bank_account, iban) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (id) DO NOTHING",
        vendors,
    )
    orders: list[tuple[str, str, Decimal, str]] = []
    receipts: list[tuple[str, str, Decimal, date]] = []
    rows: list[tuple[str, str, str, str | None, Decimal, date, date, datetime]] = []

    def invoice(iid: str, vendor: str, number: str, po: str | None, amount: Decimal, day: int) -> None:
        received = _BASE + timedelta(days=day, minutes=len(rows))
        rows.append((iid, vendor, number, po, amount, received.date(), received.date() + timedelta(days=30), received))

    ids = []
    for i in range(1, invoices + 1):
        vendor, po, amount = PILOT_VENDORS[i % len(PILOT_VENDORS)], f"PO-{i:04d}", routine_amount(i)
        orders.append((po, vendor, amount, "finance-ops"))
        if i % 3 == 0:  # delivered in two parts
            half = (amount / 2).quantize(Decimal("0.01"))
            receipts += [(f"GR-{i:04d}-1", po, half, _BASE.date()), (f"GR-{i:04d}-2", po, amount - half, _BASE.date())]
        else:
            receipts.append((f"GR-{i:04d}", po, amount, _BASE.date()))
        invoice(f"INV-{i:04d}", vendor, f"{vendor}-{2026_0000 + i}", po, amount, i % 20)
        ids.append(f"INV-{i:04d}")

    special: list[tuple[str, str, Decimal, Decimal, Decimal | None]] = [
        # id, vendor, ordered, billed, received (None: nothing yet)
        (OVER_BILLED, "V004", Decimal("8000.00"), Decimal("9600.00"), Decimal("8000.00")),
        (NOT_RECEIVED, "V005", Decimal("6400.00"), Decimal("6400.00"), None),
        (PARTLY_RECEIVED, "V006", Decimal("5000.00"), Decimal("5000.00"), Decimal("2500.00")),
        (OUTSIDE_PILOT, "V011", Decimal("3100.00"), Decimal("3100.00"), Decimal("3100.00")),
        (LARGE, "V007", Decimal("48250.00"), Decimal("48250.00"), Decimal("48250.00")),
    ]
    for iid, vendor, ordered, billed, received in special:
        po = f"PO-{iid[4:]}"
        orders.append((po, vendor, ordered, "finance-ops"))
        if received is not None:
            receipts.append((f"GR-{iid[4:]}", po, received, _BASE.date()))
        invoice(iid, vendor, f"{vendor}-{iid[4:]}", po, billed, 25)
    if invoices >= 3:  # the duplicate: INV-0003 sent again a day later
        first = rows[2]
        invoice(DUPLICATE, first[1], first[2], first[3], first[4], 26)

    await conn.executemany(
        "INSERT INTO purchase_order (id, vendor_id, amount, currency, requested_by) VALUES ($1, $2, $3, 'EUR', $4) "
        "ON CONFLICT (id) DO NOTHING",
        orders,
    )
    await conn.executemany(
        "INSERT INTO goods_receipt (id, po_id, amount, received_on) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (id) DO NOTHING",
        receipts,
    )
    await conn.executemany(
        "INSERT INTO invoice (id, vendor_id, invoice_number, po_id, amount, currency, issued_on, due_on, received_at)"
        " VALUES ($1, $2, $3, $4, $5, 'EUR', $6, $7, $8) ON CONFLICT (id) DO NOTHING",
        rows,
    )
    return ids


async def reset(conn: asyncpg.Connection) -> None:
    """Drop the finance tables and their write keys: the next ``seed`` starts a fresh ledger (the demo)."""
    await conn.execute("DROP TABLE IF EXISTS payment, invoice, goods_receipt, purchase_order, vendor")
    if await conn.fetchval("SELECT to_regclass('govflow_idempotency') IS NOT NULL"):
        await conn.execute("DELETE FROM govflow_idempotency WHERE system = $1", SYSTEM)


async def receive(conn: asyncpg.Connection, invoice_id: str) -> str:
    """Post the goods receipt an invoice's order lacks (the warehouse catching up); returns its id."""
    row = await conn.fetchrow("SELECT po_id, amount FROM invoice WHERE id = $1", invoice_id)
    if row is None:
        raise LookupError(f"invoice {invoice_id} does not exist")
    receipt = f"GR-{row['po_id']}-late"
    await conn.execute(
        "INSERT INTO goods_receipt (id, po_id, amount, received_on) VALUES ($1, $2, $3, current_date) "
        "ON CONFLICT (id) DO NOTHING",
        receipt,
        row["po_id"],
        row["amount"],
    )
    return receipt


def connectors(pool: SharedPool) -> list[PostgresTableConnector]:
    """The finance system of record: five tables of one Postgres database."""
    tables = ("vendor", "purchase_order", "goods_receipt", "invoice", "payment")
    return [PostgresTableConnector(SYSTEM, pool, {t: Table(name=t) for t in tables})]


def with_database(url: str, name: str) -> str:
    """The same server, another database: swap it in a ``postgresql://user@host/db?query`` URL."""
    head, sep, query = url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}{sep}{query}"


async def ensure_sor(database_url: str, invoices: int = 300, *, fresh: bool = False) -> str:
    """Create and seed the finance database next to the evidence one (``database_url``); its URL.
    ``fresh``: start from a new ledger (what earlier runs wrote is dropped)."""
    conn = await asyncpg.connect(database_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", SOR_DATABASE):
            await conn.execute(f'CREATE DATABASE "{SOR_DATABASE}"')
    finally:
        await conn.close()
    sor = with_database(database_url, SOR_DATABASE)
    conn = await asyncpg.connect(sor)
    try:
        if fresh:
            await reset(conn)
        await seed(conn, invoices)
    finally:
        await conn.close()
    return sor


# --- the demo's version -------------------------------------------------------------------------------------

DEMO_VERSION = "demo"
DEMO_PEOPLE = ("dana", "erik", "farah", "gus")


class InvoiceMatchingDemo(InvoiceMatching):
    """The task under the demo's policy: the same grants and rules, short stages, demo keys."""

    version = DEMO_VERSION


def demo_keys_dir(settings: Settings) -> Path:
    """Where ``govflow demo --task invoice-matching`` keeps the demo people's keys (``<person>.pem``) and
    public keys (``<person>.pub``)."""
    return settings.home / "demo-keys"


def demo_policy(keys: Path) -> Policy:
    """invoice-matching.yaml with the demo people's public keys (from ``keys``), stages and windows sized
    for a two-minute demo, and every stop rule a pause."""
    doc: dict[str, Any] = yaml.safe_load(POLICY.read_text())
    for person in doc["reviewers"]["people"]:
        person["public_key"] = (keys / f"{person['id']}.pub").read_text().strip()
    doc["rollout"] = {
        "stages": [
            {"name": "shadow", "live_fraction": 0.0, "min_runs": 20},
            {"name": "pilot", "live_fraction": 0.5, "min_runs": 500, "gate": "auto+approval", "promoters": ["farah"]},
            {"name": "full", "live_fraction": 1.0},
        ]
    }

    def demo_scale() -> dict[str, Any]:  # fresh dicts: a shared one would be dumped as a YAML alias
        return {"false_pauses": {"at_most": 0.01, "per_runs": 1000}, "wrong_promotions": 0.05}

    doc["quality"]["window"] = [
        {"name": "pass-rate", "metric": "pass_rate", "threshold": 0.8, "window": 20, "min_sample": 10, **demo_scale()},
        {"name": "override-rate", "metric": "override_rate", "threshold": 0.2, "window": 20, "min_sample": 10,
         **demo_scale()},
    ]  # fmt: skip
    doc["stop_rules"] = [{"when": "pass-rate", "action": "pause"}, {"when": "override-rate", "action": "pause"}]
    return parse_policy(yaml.safe_dump(doc, sort_keys=False), source="invoice-matching.yaml (demo)")


# --- the app a worker loads -------------------------------------------------------------------------------------


def register(
    registry: Registry,
    sor_url: str,
    *,
    task: InvoiceMatching | None = None,
    policy: Policy | Path = POLICY,
    model: ModelClient | None = None,
) -> None:
    registry.register(
        task or InvoiceMatching(),
        policy=policy,
        connectors=connectors(SharedPool(sor_url)),
        model=model or baseline_model(),
    )


def app(settings: Settings, database_url: str) -> Registry:
    """``govflow worker --app govflow.examples.invoice_matching:app``: version 1 under the shipped policy
    (or ``GOVFLOW_POLICY_DIR``'s), and the demo version once ``govflow demo --task invoice-matching`` has
    made the demo people's keys."""
    registry = Registry()
    sor = with_database(database_url, SOR_DATABASE)
    register(registry, sor, policy=(settings.policy_dir / POLICY.name) if settings.policy_dir else POLICY)
    keys = demo_keys_dir(settings)
    if all((keys / f"{p}.pub").is_file() for p in DEMO_PEOPLE):
        register(registry, sor, task=InvoiceMatchingDemo(), policy=demo_policy(keys))
    return registry
