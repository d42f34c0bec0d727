"""What-if's reading of the evidence: a task's runs, their decided actions and votes, and the rollouts that
admitted them, each chain verified before anything is computed over it (govflow/whatif/report.py computes)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence.chain import Stream, verify_rows
from govflow.activities.evidence.events import (
    ApprovalAttemptRecord,
    ContextRead,
    GrantActivated,
    GrantProposed,
    PolicyDecisionRecord,
    ProposalMade,
    RunFinished,
    RunRecord,
    RunReport,
    parse_event,
)
from govflow.policies import (
    Action,
)
from govflow.policies.authority import reads_by_resource
from govflow.policies.errors import GovflowError

_BATCH = 2000


class WhatIfError(GovflowError):
    """What-if cannot compute: no evidence for the task, or evidence that does not verify."""


@dataclass
class PastAction:
    run: RunRecord
    decided_at: datetime
    action: Action
    record: dict[str, Any] | None
    old: PolicyDecisionRecord
    votes: list[ApprovalAttemptRecord] = field(default_factory=list)
    granted: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    """The standing approvals among ``votes``: grant id -> (its rule, who granted it), from its own chain."""
    reads: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    """Every record the run read, by resource (for separation of duties from the data)."""


# --- reading the evidence ---------------------------------------------------------------------------------


@dataclass
class Evidence:
    runs: list[RunRecord]
    actions: list[PastAction]
    outcomes: dict[str, tuple[datetime, RunReport]]  # run id -> when it finished, its report
    rollouts: dict[str, list[Any]]  # rollout id -> its parsed events
    verified: int


@contextmanager
def without_cyclic_gc() -> Iterator[None]:
    """What-if holds hundreds of thousands of small objects: the cyclic collector would rescan them all,
    again and again. Off for the duration; back as it was after."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _verify_batch(stream: Stream, rows: dict[str, list[dict[str, Any]]],
                  heads: dict[str, tuple[int, str]]) -> list[str]:  # fmt: skip
    """The problems of a batch of chains."""
    out = []
    for stream_id, found in rows.items():
        problem = verify_rows(stream, stream_id, found, heads.get(stream_id)).problem
        if problem is not None:
            out.append(f"{stream} {stream_id}: {problem}")
    return out


async def _read_verified(
    store: EvidenceStore, stream: Stream, ids: Sequence[str], consume: Callable[[str, list[dict[str, Any]]], None]
) -> None:
    """Hand every stream's rows to ``consume``, each chain verified (links, hashes, head) first; the next
    batch is read from Postgres while this one is hashed, and no batch is kept once consumed. Raises
    WhatIfError naming the chains that do not verify (after reading them all)."""
    bad: list[str] = []
    batches = [ids[start : start + _BATCH] for start in range(0, len(ids), _BATCH)]
    pending = asyncio.create_task(store.stream_rows(stream, batches[0])) if batches else None
    for k in range(len(batches)):
        assert pending is not None
        rows, heads = await pending
        pending = asyncio.create_task(store.stream_rows(stream, batches[k + 1])) if k + 1 < len(batches) else None
        await asyncio.sleep(0)  # let the next query go out before this batch is hashed
        problems = _verify_batch(stream, rows, heads)
        bad += problems
        if not bad:
            for stream_id, found in rows.items():
                consume(stream_id, found)
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise WhatIfError(
            f"{len(bad)} evidence chain(s) do not verify; what-if will not compute over them: "
            + "; ".join(bad[:5])
            + more
            + ". Run `govflow evidence verify` on them."
        )


async def collect(store: EvidenceStore, task: str, version: str | None, since: datetime | None, limit: int) -> Evidence:
    runs = await store.task_runs(task, version, since, limit)
    if not runs:
        scope = f" v{version}" if version else ""
        window = f" since {since.isoformat()}" if since else ""
        raise WhatIfError(f"no evidence of runs of task {task}{scope}{window}: nothing to replay")
    by_id = {r.run_id: r for r in runs}
    actions: list[PastAction] = []
    outcomes: dict[str, tuple[datetime, RunReport]] = {}

    def take_run(run_id: str, rows: list[dict[str, Any]]) -> None:
        actions.extend(_past_actions(by_id[run_id], rows, outcomes))

    rollouts: dict[str, list[Any]] = {}

    def take_rollout(rollout_id: str, rows: list[dict[str, Any]]) -> None:
        rollouts[rollout_id] = [parse_event(r["kind"], r["payload"]) for r in rows]

    grants: dict[str, tuple[str, list[str]]] = {}

    def take_grant(grant_id: str, rows: list[dict[str, Any]]) -> None:
        rule, granted_by = "", []
        for row in rows:
            event = parse_event(row["kind"], row["payload"])
            if isinstance(event, GrantProposed):
                rule = event.rule
            elif isinstance(event, GrantActivated):
                granted_by = list(event.granted_by)
        grants[grant_id] = (rule, granted_by)

    with without_cyclic_gc():
        await _read_verified(store, "run", list(by_id), take_run)
        rollout_ids = sorted({r.rollout_id for r in runs if r.rollout_id})
        await _read_verified(store, "rollout", rollout_ids, take_rollout)
        grant_ids = sorted({g for a in actions for g in standing_votes(a)})
        await _read_verified(store, "grant", grant_ids, take_grant)
    for past in actions:
        past.granted = {g: grants[g] for g in standing_votes(past) if g in grants}
    return Evidence(runs, actions, outcomes, rollouts, len(runs) + len(rollouts) + len(grants))


def standing_votes(past: PastAction) -> list[str]:
    """The standing approvals that approved a past action (recorded as attempts by ``grant:<id>``)."""
    return [v.reviewer.removeprefix("grant:") for v in past.votes if v.via == "grant"]


def _past_actions(
    run: RunRecord, rows: list[dict[str, Any]], outcomes: dict[str, tuple[datetime, RunReport]]
) -> list[PastAction]:
    proposed: dict[str, Action] = {}
    reads: dict[tuple[str, str, str], dict[str, Any] | None] = {}
    decided: dict[str, tuple[datetime, PolicyDecisionRecord]] = {}
    votes: dict[str, list[ApprovalAttemptRecord]] = {}
    for row in rows:
        event = parse_event(row["kind"], row["payload"])
        if isinstance(event, ContextRead):
            reads.update({(r.system, r.resource, r.record_id): r.values for r in event.reads})
        elif isinstance(event, ProposalMade):
            proposed.update({a.action_id: a for a in event.actions})
        elif isinstance(event, PolicyDecisionRecord):
            decided[event.action_id] = (row["occurred_at"], event)
        elif isinstance(event, ApprovalAttemptRecord) and event.accepted and event.verdict == "approve":
            votes.setdefault(event.action_id, []).append(event)
        elif isinstance(event, RunFinished) and event.report is not None:
            outcomes[run.run_id] = (row["occurred_at"], event.report)
    by_resource = reads_by_resource(reads)
    out = []
    for action_id, (at, old) in decided.items():
        action = proposed.get(action_id)
        if action is None:
            continue  # a decision without its proposal: not written by any govflow version
        record = reads.get((action.system, action.resource, action.record_id or ""))
        out.append(PastAction(run, at, action, record, old, votes.get(action_id, []), reads=by_resource))
    return out


# --- re-deciding actions ----------------------------------------------------------------------------------
