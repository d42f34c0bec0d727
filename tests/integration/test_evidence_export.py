"""What an auditor gets: the timeline, and an export that verifies without govflow's code."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785
from prometheus_client import CollectorRegistry
from temporalio.testing import WorkflowEnvironment

from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence.events import QualityScoreRecord, RunFinished, RunStarted, ScopeRefused
from govflow.activities.registry import Registry
from govflow.activities.run_activities import RunActivities
from govflow.activities.run_messages import EvidenceItem, RecordEvidence, StartRun
from govflow.activities.telemetry import Telemetry
from govflow.export.bundle import bundle, markdown, show
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.run_api import Review
from tests.helpers import start_run, wait_for, worker


async def _published_run(env: WorkflowEnvironment, task_queue: str, store: EvidenceStore, registry: Registry) -> str:
    async with worker(env.client, task_queue, store, registry):
        handle = await start_run(env.client, task_queue, "T0001")
        status = await wait_for(handle, lambda s: bool(s.pending))
        await handle.signal(
            GovernedRunWorkflow.approve, Review(reviewer="bob", action_digest=status.pending[0].digest, reason="fine")
        )
        result = await handle.result()
    assert result.outcome == "published"
    return result.run_id


def _recompute(events: list[dict[str, Any]], stream: str, stream_id: str) -> None:
    """The chain as the report tells an auditor to check it: sha256 over RFC 8785 JSON, nothing of govflow."""
    prev = "0" * 64
    for n, e in enumerate(events, start=1):
        assert e["seq"] == n
        assert e["prev_hash"] == prev
        body = {
            "stream": stream, "stream_id": stream_id, "seq": e["seq"], "kind": e["kind"],
            "occurred_at": e["occurred_at"], "payload": e["payload"], "prev_hash": prev,
        }  # fmt: skip
        assert hashlib.sha256(rfc8785.dumps(body)).hexdigest() == e["hash"], e["seq"]
        prev = e["hash"]


async def test_the_timeline_and_the_export_tell_what_happened_and_verify_without_govflow(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry, task_queue: str
) -> None:
    run_id = await _published_run(time_skipping_env, task_queue, store, registry)

    lines = await show(store, "run", run_id)
    text = "\n".join(lines)
    assert "read ticketing/ticket T0001, crm/contact C0001" in text
    assert "proposed 1 action(s): reply: reply ticketing/ticket T0001" in text
    assert "decided reply: needs_approval" in text
    assert "bob voted approve on reply via signal: accepted" in text
    assert "wrote ticketing/ticket T0001 (reply): category: null -> " in text
    assert "finished: published [reply written]" in text
    assert lines[-1].startswith("chain verifies")

    exported = json.loads(json.dumps(await bundle(store, "run", run_id), default=str))  # as written to disk
    assert exported["verified"] is True
    assert exported["run"]["requester"] == "priya"
    _recompute(exported["events"], "run", run_id)
    # An edit the auditor's own check catches.
    exported["events"][3]["payload"]["actions"] = []
    try:
        _recompute(exported["events"], "run", run_id)
    except AssertionError:
        pass
    else:
        raise AssertionError("an edited event still verified")

    report = markdown(await bundle(store, "run", run_id))
    assert f"# Evidence: run `{run_id}`" in report
    assert "| bob | approve | reply | yes |" in report
    assert "| ticketing/ticket T0001 | live | category: null -> " in report
    assert "How to verify without govflow" in report


async def test_metrics_count_each_stored_event_once(store: EvidenceStore, registry: Registry) -> None:
    from datetime import UTC, datetime

    telemetry = Telemetry(CollectorRegistry())
    acts = RunActivities(registry, store, telemetry=telemetry)
    at = datetime.now(UTC)
    start = StartRun(
        run_id="r1", task="support-triage", task_version="1", item_key="T1", requester="priya", stage="canary",
        mode="live", at=at,
    )  # fmt: skip
    items = [
        EvidenceItem.of(RunStarted(**start.model_dump(exclude={"at"}))),
        EvidenceItem.of(QualityScoreRecord(metric="confidence", score=0.4, passed=False)),
        EvidenceItem.of(ScopeRefused(system="crm", resource="contact", reason="apac")),
        # A row of a known kind that does not read as it: counted as unreadable, not silently skipped.
        EvidenceItem(kind="lease_refused", payload={"why": "no such field"}),
    ]
    rec = RecordEvidence(run_id="r1", task="support-triage", task_version="1", seq=1, at=at, items=items, start=start)
    assert (await acts.append_run_evidence(rec)).next_seq == 5
    assert (await acts.append_run_evidence(rec)).next_seq == 5  # a retry stores nothing, and counts nothing
    finished = RecordEvidence(
        run_id="r1", task="support-triage", task_version="1", seq=5, at=at,
        items=[EvidenceItem.of(RunFinished(outcome="refused"))],
    )  # fmt: skip
    await acts.append_run_evidence(finished)

    def value(metric: Any, **labels: str) -> float:
        return float(metric.labels(**labels)._value.get())

    assert value(telemetry.runs_started, task="support-triage", stage="canary", mode="live") == 1
    assert value(telemetry.scope_refusals, task="support-triage", system="crm", resource="contact") == 1
    assert value(telemetry.runs_finished, task="support-triage", stage="canary", mode="live", outcome="refused") == 1
    assert telemetry.quality_score.labels("support-triage", "confidence")._sum.get() == 0.4
    assert value(telemetry.evidence_unreadable, task="support-triage", kind="lease_refused") == 1
    assert value(telemetry.lease_refusals, task="support-triage") == 0
