"""A kit for task authors: run a task's ``gather`` and ``propose`` offline, against fixture records or a
context a run recorded, and check the policy's decisions on the result, in your own pytest suite.

    from govflow.testing import decisions, gather, propose

    context = await gather(MyTask(), {"ticket_id": "T1"}, policy, {"ticketing": {"ticket": {"T1": {...}}}})
    proposal = await propose(MyTask(), context, my_model)
    assert decisions(policy, proposal)["categorize"].kind == "needs_approval"

``gather`` reads through the same scope guard a run uses (a read outside the policy's grants raises
``ScopeViolation``), from fixture records instead of a system of record; nothing is ever written.
``recorded_context`` reads the context a past run gathered, from its evidence, to try a change on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from govflow.activities.connectors.connector import ConnectorError, Record, RecordCheck, WriteRequest, WriteResult
from govflow.activities.connectors.guard import ScopedConnectors
from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence.events import ContextRead, parse_event
from govflow.activities.tasks.contract import Proposal, Task
from govflow.policies import Action, Decision, Policy, RunContext, decide
from govflow.policies.authority import reads_by_resource

Records = Mapping[str, Mapping[str, Mapping[str, Mapping[str, Any]]]]
"""Fixture records: system -> resource -> record id -> the record."""


class FixtureConnector:
    """A system of record made of fixture records: reads and finds; a write fails the test (none happen
    in gather or propose)."""

    def __init__(self, system: str, resources: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
        self.system = system
        self._resources = resources

    async def read(self, resource: str, record_id: str) -> Record | None:
        found = self._resources.get(resource, {}).get(record_id)
        return dict(found) if found is not None else None

    async def find(self, resource: str, where: dict[str, Any], limit: int) -> dict[str, Record]:
        rows = self._resources.get(resource, {})
        hits = {k: dict(v) for k, v in rows.items() if all(v.get(f) == x for f, x in where.items())}
        return dict(list(sorted(hits.items()))[:limit])

    async def write(self, request: WriteRequest, check: RecordCheck) -> WriteResult:
        raise ConnectorError(
            f"{self.system}: fixtures are read-only (a test wrote {request.resource})", retryable=False
        )


async def gather(task: Task[Any, Any, Any], item: Mapping[str, Any] | BaseModel, policy: Policy,
                 records: Records) -> Any:  # fmt: skip
    """``task.gather`` on ``item`` (validated as the task's item type) through the policy's scope guard,
    reading ``records``; the task's context."""
    parsed = item if isinstance(item, BaseModel) else task.item_model.model_validate(dict(item))
    io = ScopedConnectors(policy, {system: FixtureConnector(system, by) for system, by in records.items()})
    return await task.gather(parsed, io)


async def propose(task: Task[Any, Any, Any], context: Mapping[str, Any] | BaseModel, model: Any) -> Proposal:
    """``task.propose`` on ``context`` (a recorded one is validated as the task's context type) with ``model``."""
    parsed = context if isinstance(context, BaseModel) else task.context_model.model_validate(dict(context))
    proposal: Proposal = await task.propose(parsed, model)
    return proposal


def decisions(
    policy: Policy, proposal: Proposal | list[Action], *, requester: str = "tester", records: Records | None = None,
    now: datetime | None = None,
) -> dict[str, Decision]:  # fmt: skip
    """The policy's decision on each proposed action, by action id, as a run would decide it: each action
    against the record it changes (from ``records``) and every record given (for ``not_by``)."""
    actions = proposal.actions if isinstance(proposal, Proposal) else proposal
    flat = {(s, r, k): dict(v) for s, by in (records or {}).items() for r, rows in by.items() for k, v in rows.items()}
    ctx = RunContext(run_id="test", requester=requester, now=now or datetime.now(UTC), reads=reads_by_resource(flat))
    return {
        a.action_id: decide(
            policy, a, ctx.model_copy(update={"record": flat.get((a.system, a.resource, a.record_id or ""))})
        )
        for a in actions
    }


async def recorded_context(store: EvidenceStore, run_id: str) -> dict[str, Any]:
    """The context run ``run_id`` gathered, from its evidence (``context_read``)."""
    for row in await store.events("run", run_id):
        event = parse_event(row["kind"], row["payload"])
        if isinstance(event, ContextRead):
            return dict(event.context)
    raise LookupError(f"run {run_id} recorded no context (it did not gather, or its evidence is elsewhere)")


__all__ = ["FixtureConnector", "decisions", "gather", "propose", "recorded_context"]
