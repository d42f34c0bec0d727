"""Drive govflow from your own code: submit runs, vote, decide exceptions, operate rollouts and standing
approvals (connect with ``connect(load_settings())``). The CLI, the demos and the benches use it too.

Every call names a workflow handler by method reference (or, from below the workflows, by
activities/names.py), so a renamed handler is a type error, not a silent miss.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from govflow.activities.rollout_messages import rollout_id_for
from govflow.policies import AttemptOutcome
from govflow.policies.standing import GrantTerms
from govflow.workers.settings import Settings, load_settings
from govflow.workers.temporal import connect, query_current
from govflow.workflows import search_attributes as sa
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.rollout import RolloutWorkflow
from govflow.workflows.rollout_api import (
    Admission,
    Control,
    ControlAnswer,
    RollbackRequest,
    RolloutInput,
    RolloutStatus,
)
from govflow.workflows.run_api import ExceptionDecision, ReviewRequest, RunInput, RunStatus
from govflow.workflows.standing_grant import GrantAct, GrantInput, GrantStatus, StandingGrantWorkflow

# The handlers take ``*args`` (anyone can send anything), so their types say nothing of the payload.
_REVIEW: Any = GovernedRunWorkflow.review
_RESOLVE: Any = GovernedRunWorkflow.resolve_exception_update
_GRANT: Any = StandingGrantWorkflow.grant
_REVOKE: Any = StandingGrantWorkflow.revoke

rollout_id = rollout_id_for
"""One rollout per (task, version): its workflow id."""


async def submit(client: Client, task_queue: str, inp: RunInput, *, run_id: str | None = None) -> str:
    """Start a governed run; returns its run id (= workflow id)."""
    run_id = run_id or f"run-{inp.task}-{inp.item_key}-{uuid.uuid4().hex[:8]}"
    await client.start_workflow(
        GovernedRunWorkflow.run,
        inp,
        id=run_id,
        task_queue=task_queue,
        search_attributes=TypedSearchAttributes(sa.run_start(inp.task, inp.stage, inp.mode)),
        # GovflowAwaitingApproval is set by the run once it waits for a reviewer: the attributes
        # a run starts with cost it CPU between dev server and worker (bench.attribute_cost: 1.2 ms with
        # the task alone, 2.2 ms with all four); `GovflowAwaitingApproval = true` finds the runs that wait.
        # No static summary or details (user metadata): on the dev server they cost a run ~3 ms of CPU
        # between server and worker (bench.governed_vs_bare, with and without), a tenth of a governed run.
        # The run's current details (workflows/details.py) say the same, and the search attributes carry
        # task, stage and mode to the UI's list.
    )
    return run_id


async def run_status(client: Client, run_id: str) -> RunStatus:
    """The run's phase, what waits for whom, its exception (from the worker that holds it)."""
    return await client.get_workflow_handle(run_id).query(GovernedRunWorkflow.status)


async def review(client: Client, run_id: str, request: ReviewRequest) -> AttemptOutcome:
    """A reviewer's vote, with the run's verdict on it (accepted, or refused and why)."""
    handle = client.get_workflow_handle(run_id)
    outcome: AttemptOutcome = await handle.execute_update(_REVIEW, request, result_type=AttemptOutcome)
    return outcome


async def resolve(client: Client, run_id: str, decision: ExceptionDecision) -> AttemptOutcome:
    """A person's decision on the run's exception (retry or discard), with the run's verdict."""
    handle = client.get_workflow_handle(run_id)
    outcome: AttemptOutcome = await handle.execute_update(_RESOLVE, decision, result_type=AttemptOutcome)
    return outcome


async def start_rollout(client: Client, task_queue: str, task: str, version: str) -> str:
    """Start the (task, version) rollout; returns its workflow id."""
    wid = rollout_id(task, version)
    await client.start_workflow(
        RolloutWorkflow.run,
        RolloutInput(task=task, task_version=version),
        id=wid,
        task_queue=task_queue,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(sa.TASK, task), SearchAttributePair(sa.PAUSED, False)]
        ),
        static_summary=f"rollout of {task} v{version}",
    )
    return wid


async def running_rollout(client: Client, task: str, version: str) -> str | None:
    """The id of the task version's rollout if it is running, else None."""
    wid = rollout_id(task, version)
    try:
        desc = await client.get_workflow_handle(wid).describe()
    except RPCError:
        return None
    return wid if desc.status == WorkflowExecutionStatus.RUNNING else None


async def admit(client: Client, rollout: str, item_key: str) -> Admission:
    """Where an item would run now (stage, mode), asked of the rollout's current run."""
    handle = client.get_workflow_handle(rollout)
    return await query_current(handle, RolloutWorkflow.admit, item_key, result_type=Admission)


async def rollout_status(client: Client, rollout: str) -> RolloutStatus:
    """The rollout's stage, window figures, pause and last breach (from the execution that is current)."""
    handle = client.get_workflow_handle(rollout)
    return await query_current(handle, RolloutWorkflow.status, result_type=RolloutStatus)


_CONTROLS: dict[str, Any] = {
    "pause": RolloutWorkflow.pause_update,
    "resume": RolloutWorkflow.resume_update,
    "promote": RolloutWorkflow.promote_update,
    "rollback": RolloutWorkflow.rollback_update,
}
COMMANDS: Sequence[str] = tuple(_CONTROLS)


async def control(client: Client, rollout: str, command: str, payload: Control | RollbackRequest) -> ControlAnswer:
    """An operator's command (pause, resume, promote, rollback), with the rollout's answer."""
    update = _CONTROLS.get(command)
    if update is None:
        raise ValueError(f"no operator command {command!r} (commands: {', '.join(COMMANDS)})")
    answer: ControlAnswer = await client.get_workflow_handle(rollout).execute_update(
        update, payload, result_type=ControlAnswer
    )
    return answer


# --- standing approvals -------------------------------------------------------------------------------------


async def propose_grant(client: Client, task_queue: str, terms: GrantTerms, proposed_by: str) -> str:
    """Start a standing approval's workflow (its terms checked against the policy there); its grant id.
    The proposer grants it next, like every granter (``grant_act``)."""
    grant_id = f"grant-{terms.task}-{uuid.uuid4().hex[:8]}"
    await client.start_workflow(
        StandingGrantWorkflow.run,
        GrantInput(terms=terms, proposed_by=proposed_by),
        id=grant_id,
        task_queue=task_queue,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.TASK, terms.task)]),
        static_summary=f"standing approval for {terms.task} v{terms.task_version}, rule {terms.rule}",
    )
    return grant_id


async def grant_status(client: Client, grant_id: str) -> GrantStatus:
    """The standing approval's terms, status, uses, and who granted or revoked it."""
    status: GrantStatus = await client.get_workflow_handle(grant_id).query(StandingGrantWorkflow.status)
    return status


async def grant_act(client: Client, grant_id: str, act: GrantAct) -> AttemptOutcome:
    """A person grants the standing approval; the verdict (accepted, or refused and why)."""
    return await _grant_update(client, grant_id, _GRANT, act)


async def revoke_grant(client: Client, grant_id: str, act: GrantAct) -> AttemptOutcome:
    """Revoke it: every publish that starts after this refuses to write on it."""
    return await _grant_update(client, grant_id, _REVOKE, act)


async def _grant_update(client: Client, grant_id: str, update: Any, act: GrantAct) -> AttemptOutcome:
    try:
        outcome: AttemptOutcome = await client.get_workflow_handle(grant_id).execute_update(
            update, act, result_type=AttemptOutcome
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        why = "has ended (revoked, expired or refused)" if "completed" in exc.message else "does not exist"
        return AttemptOutcome(accepted=False, code="closed", reason=f"{grant_id} {why}: see `govflow approvals grants`")
    return outcome


__all__ = [
    "COMMANDS",
    "Settings",
    "admit",
    "connect",
    "control",
    "grant_act",
    "grant_status",
    "load_settings",
    "propose_grant",
    "resolve",
    "review",
    "revoke_grant",
    "rollout_id",
    "rollout_status",
    "run_status",
    "running_rollout",
    "start_rollout",
    "submit",
]
