"""A run's Temporal anchor: the chain head its workflow recorded, checked against the evidence database
(`govflow evidence verify`): what proves a chain was not rewound or rehashed inside the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence.events import RunStarted, parse_event
from govflow.workflows.run_api import RunResult

RPC = timedelta(seconds=10)

CONNECT_S = 10.0

Anchored = Literal["matches", "differs", "unfinished", "absent", "offline"]


@dataclass(frozen=True)
class Anchor:
    """A run's chain against its anchor in Temporal: the chain head its workflow returned when it finished.

    ``matches``; ``differs`` (a rewound tail, a consistent rehash, a chain that says finished while
    Temporal says otherwise: the chain was rewritten); ``unfinished`` (the run is still running: its rows
    so far are all there is to check); ``absent`` (Temporal no longer holds the execution, or it ended
    without a result); ``offline`` (Temporal not asked, or not reachable).
    """

    status: Anchored
    detail: str


async def check_anchor(store: EvidenceStore, client: Client, run_id: str) -> Anchor:
    """Never waits for a run to finish: it asks Temporal how the execution the chain names stands."""
    events = await store.events("run", run_id)
    started = parse_event("run_started", events[0]["payload"]) if events else None
    execution = started.temporal_run_id if isinstance(started, RunStarted) else ""
    finished = any(e["kind"] == "run_finished" for e in events)
    handle = client.get_workflow_handle(run_id, run_id=execution or None, result_type=RunResult)
    which = f"execution {execution}" if execution else "its newest execution"
    try:
        described = await handle.describe(rpc_timeout=RPC)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return Anchor("absent", f"Temporal no longer holds run {run_id} ({which}): no anchor to check")
        return Anchor("offline", f"Temporal did not answer for run {run_id}: {exc}")
    if described.status == WorkflowExecutionStatus.RUNNING:
        if finished:
            return Anchor("differs", f"the chain says run {run_id} finished; Temporal says {which} is still running")
        return Anchor("unfinished", f"run {run_id} has not finished: its {len(events)} rows so far verify; "
                      "no anchor until it finishes")  # fmt: skip
    if described.status != WorkflowExecutionStatus.COMPLETED:
        status = described.status.name.lower() if described.status else "closed"
        return Anchor("absent", f"run {run_id} ({which}) ended {status} without a result: no anchor")
    try:
        result: RunResult = await handle.result(rpc_timeout=RPC)
    except (RPCError, WorkflowFailureError) as exc:
        return Anchor("absent", f"no anchor in Temporal for {run_id}: {exc}")
    if result.chain_head is None:
        return Anchor("absent", f"run {run_id} finished before its result carried a chain head: no anchor")
    if len(events) != result.evidence_rows:
        return Anchor("differs", f"Temporal recorded {result.evidence_rows} rows for the run; the database "
                      f"holds {len(events)}")  # fmt: skip
    at = events[result.evidence_rows - 1] if result.evidence_rows else None
    if at is None or at["hash"] != result.chain_head:
        found = at["hash"][:12] if at else "nothing"
        return Anchor("differs", f"row {result.evidence_rows} should carry the hash Temporal recorded "
                      f"({result.chain_head[:12]}); the database has {found}: the chain was rewritten")  # fmt: skip
    return Anchor("matches", "matches the chain head Temporal recorded")


async def anchor_problem(store: EvidenceStore, client: Client, run_id: str) -> str | None:
    """Why a run's chain does not match its anchor in Temporal (or has none); None when it matches or the
    run is still running."""
    anchor = await check_anchor(store, client, run_id)
    return None if anchor.status in ("matches", "unfinished") else anchor.detail
