"""A task's mistakes are the task's, recorded once: what gather or propose returns that is not what the
task's types declare (or raises from its own code) sends the run to its exception route, never into a
retry loop; and a run is not failed because a worker that does not serve its task picked it up."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from govflow.activities.connectors import SharedPool
from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry
from govflow.examples import support_triage
from govflow.examples.support_triage import EXAMPLES
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.run_api import RunInput, RunResult
from tests.helpers import wait_for, worker


class ProposesADict(support_triage.SupportTriage):
    """The mistake a new task author makes: ``propose`` returns the dict it built, not a Proposal."""

    async def propose(self, context: Any, model: Any) -> Any:
        proposal = await super().propose(context, model)
        return proposal.model_dump()


class GathersADict(support_triage.SupportTriage):
    async def gather(self, item: Any, io: Any) -> Any:
        return (await super().gather(item, io)).model_dump()


class GatherRaises(support_triage.SupportTriage):
    async def gather(self, item: Any, io: Any) -> Any:
        raise KeyError("ticket_body")


def _registry(task: support_triage.SupportTriage, sor_url: str) -> Registry:
    registry = Registry()
    registry.register(task, policy=EXAMPLES / "support-triage.yaml",
                      connectors=support_triage.connectors(SharedPool(sor_url)),
                      model=support_triage.baseline_model(0.0))  # fmt: skip
    return registry


@pytest.fixture
async def registries(sor_url: str) -> AsyncIterator[dict[str, Registry]]:
    built = {
        "propose returned a dict": _registry(ProposesADict(), sor_url),
        "gather returned a dict": _registry(GathersADict(), sor_url),
        "gather raised": _registry(GatherRaises(), sor_url),
    }
    yield built
    for registry in built.values():
        await registry.aclose()


async def _start(env: WorkflowEnvironment, task_queue: str) -> WorkflowHandle[Any, RunResult]:
    inp = RunInput(task="support-triage", item_key="T0001", item={"ticket_id": "T0001"}, requester="priya",
                   mode="shadow")  # fmt: skip
    return await env.client.start_workflow(
        GovernedRunWorkflow.run, inp, id=f"run-{uuid.uuid4()}", task_queue=task_queue, result_type=RunResult
    )


@pytest.mark.parametrize(
    ("mistake", "detail"),
    [
        ("propose returned a dict", "propose returned a dict, not the Proposal its types declare"),
        ("gather returned a dict", "gather returned a dict, not the TicketContext its types declare"),
        ("gather raised", "gather raised KeyError: 'ticket_body'"),
    ],
)
async def test_a_task_mistake_goes_to_the_exception_route_once(
    time_skipping_env: WorkflowEnvironment, store: EvidenceStore, registries: dict[str, Registry], mistake: str,
    detail: str,
) -> None:  # fmt: skip
    env = time_skipping_env
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env.client, task_queue, store, registries[mistake]):
        handle = await _start(env, task_queue)
        status = await wait_for(handle, lambda s: s.exception is not None)
        assert status.exception is not None
        assert status.exception.startswith("task_error: task support-triage v1: "), status.exception
        assert detail in status.exception
        await handle.signal("resolve_exception", {"reviewer": "alice", "decision": "discard", "reason": "bug"})
        result = await handle.result()
    assert result.outcome == "exception"
    raised = [e["payload"] for e in await store.events("run", handle.id) if e["kind"] == "exception_raised"]
    assert len(raised) == 1
    assert raised[0]["kind"] == "task_error"
    assert detail in raised[0]["detail"]
    # Once: the step that failed ran one attempt, not a retry loop.
    history = await handle.fetch_history()
    failed = [e for e in history.events if e.HasField("activity_task_failed_event_attributes")]
    assert len(failed) <= 1
    assert (await store.verify("run", handle.id)).ok


async def test_a_run_picked_up_by_a_worker_without_its_task_waits_for_one_that_has_it(
    dev_server_env: WorkflowEnvironment, store: EvidenceStore, registry: Registry
) -> None:
    """As when someone starts their own worker beside the demo's on one queue: the wrong one's attempts are
    offered back to the queue (one process may run only one worker per queue: here they take turns).
    On the dev server: the retries' delays are real time."""
    env = dev_server_env
    task_queue = f"tq-{uuid.uuid4()}"
    async with worker(env.client, task_queue, store, Registry()):  # serves no task at all
        handle = await _start(env, task_queue)

        async def attempts() -> int:
            pending = (await handle.describe()).raw_description.pending_activities
            return max((p.attempt for p in pending), default=0)

        from tests.helpers import eventually

        await eventually(attempts, lambda n: n >= 2, tries=200)
        failure = (await handle.describe()).raw_description.pending_activities[0].last_failure.message
        assert "offered again to the other workers of this task queue" in failure
    async with worker(env.client, task_queue, store, registry):  # the one that serves it takes the retry
        result = await handle.result()
    assert result.outcome == "shadowed"
