"""quality.hold_failed: a live write of a run whose quality checks failed waits for an approver who sees the
failures; each gate lists them, each approval records them as seen, and a write no rule gates gets a gate
of its own. The invoice example (it holds) on the time-skipping server, its model gone bad on purpose."""

from __future__ import annotations

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from govflow import Registry, parse_policy
from govflow.activities.evidence import EvidenceStore
from govflow.examples import invoice_matching as im
from govflow.policies import Action, NeedsApproval, PolicyError, RunContext, decide
from govflow.workflows.run_api import RunResult
from tests.helpers import ending, wait_for, worker
from tests.integration.test_finance_e2e import shipped, start, vote


async def test_a_run_whose_checks_failed_writes_only_what_someone_who_saw_the_failures_approved(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, finance_url: str, task_queue: str
) -> None:
    client = time_skipping_env.client
    registry = Registry()
    im.register(registry, finance_url, policy=shipped(), model=im.baseline_model(degraded=1.0))
    try:
        async with worker(client, task_queue, store, registry), ending() as started:
            run_id = await start(client, task_queue, "INV-0001")
            handle = client.get_workflow_handle(run_id, result_type=RunResult)
            started.append(handle)
            status = await wait_for(handle, lambda s: len(s.pending) == 2)
            by_id = {p.action_id: p for p in status.pending}
            # Recording the match needs nobody when the checks pass; now it has a gate of its own.
            (match_gate,) = by_id["record-match"].gates
            assert (match_gate.rule, match_gate.eligible) == ("failed-quality-checks", ["dana", "erik", "farah"])
            (pay_gate,) = by_id["schedule-payment"].gates
            for gate in (match_gate, pay_gate):
                assert any(f.startswith("confident: ") for f in gate.failed_checks), gate.failed_checks
            for action in ("record-match", "schedule-payment"):
                assert (await vote(client, run_id, "dana", by_id[action].digest)).accepted
            assert (await handle.result()).outcome == "published"
    finally:
        await registry.aclose()
    attempts = [e["payload"] for e in await store.events("run", run_id) if e["kind"] == "approval_attempt"]
    assert [(a["action_id"], a["reviewer"]) for a in attempts] == [
        ("record-match", "dana"),
        ("schedule-payment", "dana"),
    ]
    for attempt in attempts:
        assert any(f.startswith("confident: ") for f in attempt["failed_checks_seen"]), attempt


def test_without_failed_checks_nothing_is_held_and_the_policy_check_knows_the_people() -> None:
    policy = shipped()
    match = Action(action_id="record-match", system="finance", resource="invoice", operation="update",
                   record_id="INV-1", fields={"match_status": "matched"})  # fmt: skip
    from datetime import UTC, datetime

    now = datetime(2026, 12, 6, tzinfo=UTC)
    assert decide(policy, match, RunContext(run_id="r", requester="gus", now=now)).kind == "allow"
    held = decide(policy, match, RunContext(run_id="r", requester="gus", now=now, failed_checks=("confident: 0.4",)))
    assert isinstance(held, NeedsApproval)
    assert "the run's quality checks failed, shown to the approver: confident: 0.4" in held.reason
    doc = yaml.safe_load(im.POLICY.read_text())
    doc["quality"]["hold_failed"] = {"roles": ["auditors"]}
    with pytest.raises(PolicyError, match=r"quality\.hold_failed\.roles"):
        parse_policy(yaml.safe_dump(doc, sort_keys=False))
