"""Authority read from the data, on the time-skipping server: the purchase order's requester may not approve
its payment (approval.not_by), and an approver above their limit is refused while the gate goes to the role
whose limit covers the amount (approval.limits). The invoice-matching example, its shipped policy."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from govflow import Registry
from govflow.activities.evidence import EvidenceStore
from govflow.examples import invoice_matching as im
from tests.integration.test_finance_e2e import shipped, the_controller_decides_above_the_limit, the_orderer_is_refused


async def test_the_order_s_requester_is_refused_naming_the_field(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, finance_url: str, task_queue: str
) -> None:
    registry = Registry()
    im.register(registry, finance_url, policy=shipped())
    try:
        await the_orderer_is_refused(time_skipping_env.client, task_queue, store, registry, finance_url)
    finally:
        await registry.aclose()


async def test_above_the_limit_the_gate_goes_to_the_role_that_can(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, finance_url: str, task_queue: str
) -> None:
    await the_controller_decides_above_the_limit(time_skipping_env.client, task_queue, store, finance_url)
