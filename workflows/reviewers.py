"""What a run does for its reviewers: it takes their votes and exception decisions (``Votes``, what its
signals and updates do), claims a standing approval that covers an action (policies/standing.py), and
announces its waits to the policy's notification targets (workflows/notify.py). Workflow code: called
from GovernedRunWorkflow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from govflow.activities import run_messages as rm
    from govflow.activities.evidence import events as ev
    from govflow.activities.notify_messages import Transition
    from govflow.activities.run_activities import RunActivities
    from govflow.policies import AttemptOutcome, Policy
    from govflow.workflows import approvals, notify
    from govflow.workflows.approvals import ActionState, Verdict, Via
    from govflow.workflows.exception_route import ExceptionRoute
    from govflow.workflows.inputs import read
    from govflow.workflows.ledger import RETRY, RunLedger
    from govflow.workflows.notify import NotifyWorkflow
    from govflow.workflows.passkey_votes import check_passkey
    from govflow.workflows.run_api import Review, ReviewRequest, RunInput
    from govflow.workflows.run_state import RunState

_ACTIVITY = timedelta(seconds=60)
_REVIEW_EXAMPLE = '{"reviewer": "alice", "action_digest": "<digest>", "reason": "..."}'
_REVIEW_UPDATE_EXAMPLE = '{"verdict": "approve", "reviewer": "alice", "action_digest": "<digest>"}'


async def claim_standing(
    policy: Policy, inp: RunInput, run_id: str, actions: Mapping[str, ActionState]
) -> list[ev.Event]:
    """Approve, by a live standing approval, each action a grant covers (one use each, claimed in the
    evidence database); returns the approval attempts to record. Only for a live run with nothing denied
    (a refused proposal publishes nothing, so it spends no use), and a rule that allows grants."""
    if inp.mode != "live" or any(s.decision == "deny" for s in actions.values()):
        return []
    rules = {r.name for r in policy.actions if r.allows_standing}
    # A gate that shows failed quality checks waits for a person who sees them: no grant approves it.
    wanted = [(s, g) for s in actions.values() for g in s.gates[:1]
              if g.status == "open" and g.gate.rule in rules and not g.gate.failed_checks]  # fmt: skip
    if not wanted:
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


class Votes:
    """What the run's signals and updates do with what reviewers send: each vote or exception decision
    read (untrusted), judged, recorded, and applied when accepted. Input that arrives before the run is
    set up waits for it; none is dropped."""

    def __init__(
        self, run_id: str, state: RunState, ledger: RunLedger, exceptions: ExceptionRoute, show: Callable[[], None]
    ) -> None:
        self._run_id, self._s, self._ledger, self._exceptions, self._show = run_id, state, ledger, exceptions, show

    async def vote(self, args: Sequence[Any], verdict: Verdict, via: Via) -> AttemptOutcome:
        """A signal's vote (the verdict is the signal's)."""
        if not await self._ready():
            return self._not_started()
        got = read(Review, args, _REVIEW_EXAMPLE)
        if got.value is not None:
            return await self._review(got.value, verdict, via)
        await self._ledger.record(approvals.unreadable_vote_event(args, verdict, via, got))
        return AttemptOutcome(accepted=False, code="closed", reason=f"unreadable vote: {got.problem}")

    async def review(self, args: Sequence[Any]) -> AttemptOutcome:
        """The review update's vote (the verdict is in the payload)."""
        if not await self._ready():
            return self._not_started()
        got = read(ReviewRequest, args, _REVIEW_UPDATE_EXAMPLE)
        if got.value is None:  # the validator refuses these
            return AttemptOutcome(accepted=False, code="closed", reason=f"unreadable vote: {got.problem}")
        return await self._review(got.value, got.value.verdict, "update")

    def validate_review(self, args: Sequence[Any]) -> None:
        """What cannot be recorded is refused, with the reason: a run that is not reviewing, or a payload
        without a readable verdict (the record needs one). Every other attempt is recorded."""
        if self._s.policy is None or self._s.phase == "finished":
            raise ValueError(f"run {self._run_id} is not reviewing anything (phase: {self._s.phase})")
        got = read(ReviewRequest, args, _REVIEW_UPDATE_EXAMPLE)
        if got.value is None:
            raise ValueError(f"review refused: {got.problem}")

    async def resolve(self, args: Sequence[Any]) -> AttemptOutcome:
        """A decision on the run's exception."""
        if not await self._ready():
            return self._not_started()
        assert self._s.policy is not None
        return await self._exceptions.decide(self._s.policy, args)

    async def _ready(self) -> bool:
        """Waits until the run is set up (policy loaded, admitted). False: the run's start was refused, and
        the input is answered without a record (the chain under this run id is another execution's)."""
        await workflow.wait_condition(lambda: self._s.started or self._s.refused_start)
        return not self._s.refused_start

    def _not_started(self) -> AttemptOutcome:
        return AttemptOutcome(accepted=False, code="closed", reason=f"run {self._run_id}: {self._s.refusal}")

    async def _review(self, review: Review, verdict: Verdict, via: Via) -> AttemptOutcome:
        s = self._s
        assert s.policy is not None
        state = approvals.find(s.actions, review)
        passkey: str | bool | None = False
        record: dict[str, Any] | None = None
        proof = review.passkey if isinstance(review, ReviewRequest) else None
        if proof is not None and state is not None and s.live and state.open:
            digest = review.action_digest or state.digest
            passkey, record = await check_passkey(
                s.policy, self._run_id, review.reviewer, proof, digest, verdict, s.used_assertions
            )
            state = approvals.find(s.actions, review)  # as it is now, after the checks' activities
        judged = state is not None and s.live and state.open  # reaches a gate: a change, accepted or not
        late = s.phase in ("publishing", "finished")
        outcome = approvals.judge_vote(
            s.policy, state, review, verdict, run_id=self._run_id, live=s.live,
            now=workflow.now(), late=f"arrived after the run's decision, while {s.phase}" if late else "",
            passkey=passkey if proof is not None and record is not None else False,
        )  # fmt: skip
        if judged:
            s.changes += 1
        self._show()
        event = approvals.vote_event(review, verdict, outcome, state, via, record)
        if judged and not any(a.open for a in s.actions.values()) and self._ledger.idle:
            # The vote that closes the last gate: its row is committed with what follows at once (the
            # publish, or run_finished), one activity sooner than a commit of its own.
            self._ledger.defer(event)
        else:
            await self._ledger.record(event)
        return outcome
