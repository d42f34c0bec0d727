"""The example's system of record: five tables in Postgres (vendors, purchase orders, goods received,
invoices, payments), seeded with the cases the demo shows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg

from govflow import (
    IDEMPOTENCY_DDL,
    PostgresTableConnector,
    SharedPool,
    Table,
    ensure_database,
)
from govflow.examples.invoice_matching.task import SOR_DATABASE, SYSTEM

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


async def reprice(conn: asyncpg.Connection, invoice_id: str, amount: Decimal | int, vendor: str | None = None) -> None:
    """The story's data (demos, tests, benches): ``invoice_id``, its order and one receipt in full, at
    ``amount`` (and billed by ``vendor``, when given), in one transaction."""
    async with conn.transaction():
        po = await conn.fetchval("SELECT po_id FROM invoice WHERE id = $1", invoice_id)
        if po is None:
            raise LookupError(f"invoice {invoice_id} does not exist")
        for table, key in (("invoice", invoice_id), ("purchase_order", po)):
            await conn.execute(f"UPDATE {table} SET amount = $2, vendor_id = coalesce($3, vendor_id) WHERE id = $1",
                               key, amount, vendor)  # fmt: skip
        await conn.execute("DELETE FROM goods_receipt WHERE po_id = $1", po)
        await conn.execute(
            "INSERT INTO goods_receipt (id, po_id, amount, received_on) VALUES ($1, $2, $3, current_date)",
            f"GR-{invoice_id}", po, amount,
        )  # fmt: skip


def connectors(pool: SharedPool) -> list[PostgresTableConnector]:
    """The finance system of record: five tables of one Postgres database."""
    tables = ("vendor", "purchase_order", "goods_receipt", "invoice", "payment")
    return [PostgresTableConnector(SYSTEM, pool, {t: Table(name=t) for t in tables})]


async def ensure_sor(database_url: str, invoices: int = 300, *, fresh: bool = False) -> str:
    """Create and seed the finance database next to the evidence one (``database_url``); its URL.
    ``fresh``: start from a new ledger (what earlier runs wrote is dropped)."""
    sor = await ensure_database(database_url, SOR_DATABASE)
    conn = await asyncpg.connect(sor)
    try:
        if fresh:
            await reset(conn)
        await seed(conn, invoices)
    finally:
        await conn.close()
    return sor
