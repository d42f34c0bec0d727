"""What a run does for its reviewers beyond waiting for their votes: it claims a standing approval that
covers an action (policies/standing.py), and it announces its waits to the policy's notification targets
(workflows/notify.py). Workflow code: called from GovernedRunWorkflow, in its order.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import run_models as rm
    from activities.evidence import events as ev
    from activities.notify_models import Transition
    from activities.run_activities import RunActivities
    from policies import Policy
    from workflows import notify
    from workflows.approvals import ActionState
    from workflows.ledger import RETRY
    from workflows.notify import NotifyWorkflow
    from workflows.run_models import RunInput

_ACTIVITY = timedelta(seconds=60)


async def claim_standing(
    policy: Policy, inp: RunInput, run_id: str, actions: Mapping[str, ActionState]
) -> list[ev.Event]:
    """Approve, by a live standing approval, each action a grant covers (one use each, claimed in the
    evidence database); returns the approval attempts to record. Only for a live run with nothing denied
    (a refused proposal publishes nothing, so it spends no use), and a rule that allows grants."""
    if inp.mode != "live" or any(s.decision == "deny" for s in actions.values()):
        return []
    rules = {r.name for r in policy.actions if r.allows_standing}
    wanted = [(s, g) for s in actions.values() for g in s.gates[:1] if g.status == "open" and g.gate.rule in rules]
    if not wanted or not workflow.patched("standing-grants"):
        return []
    events: list[ev.Event] = []
    for state, gate in wanted:
        grant = await workflow.execute_activity_method(
            RunActivities.claim_grant,
            rm.GrantClaim(
                task=inp.task, task_version=inp.task_version, rule=gate.gate.rule, fields=state.action.fields,
                requester=inp.requester, run_id=run_id, action_id=state.action.action_id, at=workflow.now(),
            ),
            start_to_close_timeout=_ACTIVITY,
            retry_policy=RETRY,
        )  # fmt: skip
        if grant is None:
            continue
        gate.status, gate.approved_by, state.grant = "approved", [f"grant:{grant}"], grant
        events.append(
            ev.ApprovalAttemptRecord(
                action_id=state.action.action_id,
                action_digest=state.digest,
                reviewer=f"grant:{grant}",
                verdict="approve",
                accepted=True,
                via="grant",
                reason=f"standing approval {grant} covers it (rule {gate.gate.rule})",
            )
        )
    return events


class Announcer:
    """A run's announcements: which transition it is at, and who was told of which action's wait."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.count = 0
        self.announced: set[str] = set()

    async def announce(
        self, policy: Policy, inp: RunInput, actions: Mapping[str, ActionState], transition: Transition
    ) -> None:
        """Tell the policy's notification targets (none: nothing happens, no command is issued). Each
        message is delivered by a workflow of its own that outlives the run; only its start is awaited."""
        if not policy.notifications:
            return
        self.count += 1
        for message in notify.announcements(
            policy, run_id=self.run_id, task=inp.task, task_version=inp.task_version, requester=inp.requester,
            actions=actions, transition=transition, now=workflow.now(), counter=self.count,
            announced=self.announced,
        ):  # fmt: skip
            await workflow.start_child_workflow(
                NotifyWorkflow.run,
                message,
                id=message.notification_id,
                task_queue=workflow.info().task_queue,
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
