"""Announcing pending approvals: what a run tells which target at each transition, and the delivery.

A run announces three transitions (it starts waiting, a gate escalates, the wait ends), one message per
target that the policy routes the gates to, never one per poll. Each message is a child workflow of
its own (``NotifyWorkflow``, abandoned by the run when the run closes), so a receiver that is down
delays nothing: the run approves and publishes meanwhile, and the delivery keeps trying with backoff,
every attempt recorded in the message's own evidence chain (stream ``notification``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from govflow.activities import names
    from govflow.activities.notify_activities import NotifyActivities
    from govflow.activities.notify_messages import Abandon, AnnouncedAction, Announcement, DeliveryAttempt, Transition
    from govflow.policies import Policy
    from govflow.policies.notification import Notification
    from govflow.workflows.approvals import ActionState, GateState

FIRST_WAIT_S = 1.0
LONGEST_WAIT_S = 60.0
GIVE_UP_AFTER = timedelta(hours=1)
_ATTEMPT = timedelta(seconds=30)
# For the activity itself (the evidence store away), not for the receiver: its answers are results.
_INFRA_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


def action_status(state: ActionState) -> str:
    if state.open:
        return "open"
    if state.approved:
        return "approved"
    return "expired" if state.expired else "rejected"


def announcements(
    policy: Policy,
    *,
    run_id: str,
    task: str,
    task_version: str,
    requester: str,
    actions: Mapping[str, ActionState],
    transition: Transition,
    now: datetime,
    counter: int,
    announced: set[str],
) -> list[Announcement]:
    """The messages for one transition, one per target with something to say. ``announced``: which target
    was told of which action's wait (``target:action_id``, updated here): they are told when it ends."""

    def chosen(gate: GateState, target: Notification) -> bool:
        if transition == "decided":  # everyone told of this action's wait hears that it ended
            return f"{target.name}:{gate.gate.action_id}" in announced
        if not target.announces(gate.gate.rule, gate.gate.roles) or gate.status != "open":
            return False
        return transition == "waiting" or gate.gate.escalated

    out: list[Announcement] = []
    for target in policy.notifications:
        items = []
        for state in actions.values():
            gate = next((g for g in state.gates if chosen(g, target)), None)
            if gate is None:
                continue
            rule = policy.rule(gate.gate.rule)
            items.append(
                AnnouncedAction(
                    action_id=state.action.action_id,
                    target=state.action.target,
                    record_id=state.action.record_id,
                    digest=state.digest,
                    rule=gate.gate.rule,
                    risk=rule.risk if rule else "unknown",
                    quorum=gate.gate.quorum,
                    approved_by=list(gate.approved_by),
                    eligible=list(gate.gate.eligible),
                    expires_at=gate.gate.expires_at,
                    signature_required=gate.gate.signature_required,
                    status=action_status(state),
                )
            )
        if not items:
            continue
        if transition != "decided":
            announced.update(f"{target.name}:{item.action_id}" for item in items)
        out.append(
            Announcement(
                notification_id=f"notify-{run_id}-{counter}-{target.name}",
                run_id=run_id,
                task=task,
                task_version=task_version,
                requester=requester,
                transition=transition,
                target=target.name,
                at=now,
                actions=items,
            )
        )
    return out


@workflow.defn(name=names.NOTIFY)
class NotifyWorkflow:
    """Deliver one announcement: attempt, wait (1 s, doubling to 60 s), attempt again, for an hour at most."""

    @workflow.run
    async def run(self, announcement: Announcement) -> str:
        seq, attempt, wait = 1, 1, FIRST_WAIT_S
        give_up = workflow.now() + GIVE_UP_AFTER
        while True:
            retry_in = min(wait, LONGEST_WAIT_S)
            result = await workflow.execute_activity_method(
                NotifyActivities.deliver,
                DeliveryAttempt(announcement=announcement, attempt=attempt, seq=seq, retry_in_s=retry_in),
                start_to_close_timeout=_ATTEMPT,
                retry_policy=_INFRA_RETRY,
            )
            seq = result.next_seq
            if result.delivered:
                return f"delivered on attempt {attempt}"
            if workflow.now() + timedelta(seconds=retry_in) > give_up:
                await workflow.execute_activity_method(
                    NotifyActivities.abandon,
                    Abandon(announcement=announcement, attempts=attempt, seq=seq, detail=result.detail),
                    start_to_close_timeout=_ATTEMPT,
                    retry_policy=_INFRA_RETRY,
                )
                return f"abandoned after {attempt} attempts: {result.detail}"
            await workflow.sleep(timedelta(seconds=retry_in))
            attempt, wait = attempt + 1, wait * 2
