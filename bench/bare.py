"""The bare workflows for the benchmark: the same gather, propose and write, called directly.

``BareRun`` makes one activity per step, as a plain workflow is written; ``BareLeanRun`` makes the
steps in as many activities as a governed run does: gather and propose in one, every
write in another, so that against it a governed run pays for its governance alone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from govflow.activities.connectors import WriteRequest
    from govflow.activities.registry import Registry
    from govflow.activities.run_messages import ProposeResult
    from govflow.policies import Action


_OPTS: dict[str, Any] = {"start_to_close_timeout": timedelta(seconds=60)}


class BareWrite(BaseModel):
    run_id: str
    action: Action


class _DirectIO:
    """The connectors with no scope guard: what the bare workflow reads through."""

    def __init__(self, connectors: dict[str, Any]) -> None:
        self._connectors = connectors

    async def read(self, system: str, resource: str, record_id: str) -> Any:
        return await self._connectors[system].read(resource, record_id)


class BareActivities:
    def __init__(self, registry: Registry) -> None:
        self._reg = registry.get("support-triage", "1")

    @activity.defn(name="bare.gather")
    async def gather(self, item: dict[str, Any]) -> dict[str, Any]:
        task = self._reg.task
        context = await task.gather(task.item_model.model_validate(item), _DirectIO(self._reg.connectors))  # type: ignore[arg-type]
        return dict(context.model_dump(mode="json"))

    @activity.defn(name="bare.propose")
    async def propose(self, context: dict[str, Any]) -> ProposeResult:
        task = self._reg.task
        proposal = await task.propose(task.context_model.model_validate(context), self._reg.model)
        return ProposeResult(actions=proposal.actions, scores=proposal.scores)

    def all(self) -> list[Any]:
        return [self.gather, self.propose, self.open, self.write_all, self.write]

    @activity.defn(name="bare.open")
    async def open(self, item: dict[str, Any]) -> ProposeResult:
        return await self.propose(await self.gather(item))

    @activity.defn(name="bare.write_all")
    async def write_all(self, writes: list[BareWrite]) -> None:
        for w in writes:
            await self.write(w)

    @activity.defn(name="bare.write")
    async def write(self, w: BareWrite) -> None:
        a = w.action
        request = WriteRequest(
            resource=a.resource,
            record_id=a.record_id or "",
            operation=a.operation,  # type: ignore[arg-type]
            fields=a.fields,
            idempotency_key=f"{w.run_id}:{a.action_id}",
        )
        await self._reg.connectors[a.system].write(request, lambda _record: None)


@workflow.defn(name="BareRun")
class BareRunWorkflow:
    @workflow.run
    async def run(self, item: dict[str, Any]) -> int:
        context = await workflow.execute_activity_method(BareActivities.gather, item, **_OPTS)
        proposal = await workflow.execute_activity_method(BareActivities.propose, context, **_OPTS)
        for action in proposal.actions:
            await workflow.execute_activity_method(
                BareActivities.write, BareWrite(run_id=workflow.info().workflow_id, action=action), **_OPTS
            )
        return len(proposal.actions)


@workflow.defn(name="BareLeanRun")
class BareLeanRunWorkflow:
    @workflow.run
    async def run(self, item: dict[str, Any]) -> int:
        proposal = await workflow.execute_activity_method(BareActivities.open, item, **_OPTS)
        run_id = workflow.info().workflow_id
        writes = [BareWrite(run_id=run_id, action=action) for action in proposal.actions]
        await workflow.execute_activity_method(BareActivities.write_all, writes, **_OPTS)
        return len(proposal.actions)
