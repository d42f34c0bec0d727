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

from govflow.examples.invoice_matching.ledger import (
    DUPLICATE,
    LARGE,
    NOT_RECEIVED,
    OUTSIDE_PILOT,
    OVER_BILLED,
    PARTLY_RECEIVED,
    PILOT_VENDORS,
    SCHEMA,
    connectors,
    ensure_sor,
    receive,
    reprice,
    reset,
    routine_amount,
    seed,
)
from govflow.examples.invoice_matching.registration import (
    DEMO_PEOPLE,
    DEMO_VERSION,
    InvoiceMatchingDemo,
    app,
    demo_keys_dir,
    demo_policy,
    register,
)
from govflow.examples.invoice_matching.task import (
    POLICY,
    SOR_DATABASE,
    SYSTEM,
    SYSTEM_PROMPT,
    TOLERANCE,
    InvoiceContext,
    InvoiceItem,
    InvoiceMatching,
    MatchAnswer,
    MatchProposal,
    baseline_model,
    match_responder,
    money,
    payment_id,
)

__all__ = [
    "DEMO_PEOPLE",
    "DEMO_VERSION",
    "DUPLICATE",
    "LARGE",
    "NOT_RECEIVED",
    "OUTSIDE_PILOT",
    "OVER_BILLED",
    "PARTLY_RECEIVED",
    "PILOT_VENDORS",
    "POLICY",
    "SCHEMA",
    "SOR_DATABASE",
    "SYSTEM",
    "SYSTEM_PROMPT",
    "TOLERANCE",
    "InvoiceContext",
    "InvoiceItem",
    "InvoiceMatching",
    "InvoiceMatchingDemo",
    "MatchAnswer",
    "MatchProposal",
    "app",
    "baseline_model",
    "connectors",
    "demo_keys_dir",
    "demo_policy",
    "ensure_sor",
    "match_responder",
    "money",
    "payment_id",
    "receive",
    "register",
    "reprice",
    "reset",
    "routine_amount",
    "seed",
]
