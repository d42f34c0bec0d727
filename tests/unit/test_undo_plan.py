"""How rollback --data undoes one live write: restore an update's before image, void a created record."""

from __future__ import annotations

from typing import Any

from govflow.activities.rollout_activities import undo_plan
from govflow.examples.support_triage import EXAMPLES
from govflow.policies import load_policy

INVOICES = load_policy(EXAMPLES / "invoice-matching.yaml")
TRIAGE = load_policy(EXAMPLES / "support-triage.yaml")


def write(operation: str, resource: str, before: Any, after: Any, system: str = "finance") -> dict[str, Any]:
    return {
        "operation": operation,
        "system": system,
        "resource": resource,
        "before_image": before,
        "after_image": after,
    }


def test_a_created_payment_is_voided_as_its_grant_says_while_it_is_as_the_run_left_it() -> None:
    paid = {"id": "PAY-1", "vendor_id": "V001", "amount": "10.00", "status": "scheduled"}
    assert undo_plan(INVOICES, write("create", "payment", None, paid)) == (
        "update", ["amount", "id", "status", "vendor_id"], {"status": "cancelled"},
    )  # fmt: skip


def test_an_update_gets_back_the_before_image_of_the_fields_it_changed() -> None:
    before = {"id": "INV-1", "match_status": "new", "matched_po": None, "amount": "5.00"}
    after = {**before, "match_status": "matched", "matched_po": "PO-1"}
    assert undo_plan(INVOICES, write("update", "invoice", before, after)) == (
        "update", ["match_status", "matched_po"], {"match_status": "new", "matched_po": None},
    )  # fmt: skip


def test_what_cannot_be_undone_says_why() -> None:
    created = write("create", "contact", None, {"id": "C1"}, system="crm")
    assert undo_plan(TRIAGE, created) == "a create cannot be undone: no grant for crm.contact says how to void it"
    assert undo_plan(INVOICES, write("delete", "payment", {"id": "P"}, None)) == "a delete cannot be undone"
