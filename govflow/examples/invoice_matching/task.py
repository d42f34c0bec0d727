"""The invoice-matching task: the three-way match, what the model is asked and must answer, and the
local baseline "model" (the match as rules, deterministic)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from govflow import (
    Action,
    ContradictoryInput,
    IncompleteInput,
    LocalBaselineModel,
    Message,
    ModelClient,
    ModelRequest,
    Proposal,
    ScopedConnectors,
    Task,
    parse_output,
)

SYSTEM = "finance"
POLICY = Path(__file__).resolve().parents[2] / "policies" / "examples" / "invoice-matching.yaml"
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
    population = (SYSTEM, "invoice")  # every invoice the ledger holds is an item (`report coverage`)

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
