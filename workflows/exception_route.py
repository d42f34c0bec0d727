"""A governed run's exception route: input the run cannot decide on waits here for a person.

The run raises an exception (incomplete or contradictory input, model output that does not parse);
a person with the route's authority decides retry or discard before it expires. Workflow code (it
waits on workflow time); the judging itself is pure (workflows/approvals.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from govflow.activities.evidence import events as ev
    from govflow.activities.names import ErrorType
    from govflow.policies import AttemptOutcome, Policy
    from govflow.workflows import approvals
    from govflow.workflows.inputs import read
    from govflow.workflows.ledger import RunLedger
    from govflow.workflows.run_api import ExceptionDecision

_DECISION_EXAMPLE = '{"reviewer": "alice", "decision": "retry"}'


class ExceptionRoute:
    def __init__(self, run_id: str, ledger: RunLedger) -> None:
        self._run_id = run_id
        self._ledger = ledger
        self.problem: str | None = None
        """What waits for a decision now (``kind: detail``), None when nothing does."""
        self.expires_at: datetime | None = None
        self.eligible: list[str] = []
        """Who may decide what waits now."""
        self._decision: ExceptionDecision | None = None

    async def wait(self, policy: Policy, kind: str, detail: str, awaiting: Callable[[bool], None]) -> str:
        """Raise the exception and wait for a decision. Returns "" to retry, else why the run stops.
        ``awaiting`` is told when the run starts and stops waiting for a person."""
        route = policy.exceptions
        self.problem, self._decision = f"{kind}: {detail}", None
        # A task's own mistake goes to any route the policy has: a person retries once a fixed worker runs.
        if route is None or (kind not in route.handles and kind != ErrorType.TASK_ERROR):
            await self._ledger.record(ev.ExceptionRaised(problem=kind, detail=detail))
            return f"{kind} and no exception route handles it: {detail}"
        self.expires_at = expires = workflow.now() + route.expires_after
        routed = ev.ExceptionRoute(reviewers=list(route.reviewers), roles=list(route.roles),
                                   eligible=sorted(policy.eligible(route.reviewers, route.roles)))  # fmt: skip
        self.eligible = routed.eligible
        await self._ledger.record(ev.ExceptionRaised(problem=kind, detail=detail, expires_at=expires, route=routed))
        awaiting(True)
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: self._decision is not None, timeout=route.expires_after)
        awaiting(False)
        decision = self._decision
        if decision is None:
            await self._ledger.record(ev.ExceptionExpired(problem=kind))
            return f"{kind}: nobody decided before {expires.isoformat()}"
        self.problem = None
        if decision.decision == "discard":
            return f"{kind}: discarded by {decision.reviewer} ({decision.reason})"
        return ""

    async def decide(self, policy: Policy, args: Sequence[Any]) -> AttemptOutcome:
        """A person's decision, as sent (untrusted): judged, recorded, and applied when accepted."""
        got = read(ExceptionDecision, args, _DECISION_EXAMPLE)
        if got.value is None:
            outcome = AttemptOutcome(accepted=False, code="closed", reason=f"unreadable decision: {got.problem}")
            await self._ledger.record(approvals.unreadable_decision_event(args, got, outcome))
            return outcome
        waiting = self.problem is not None and self._decision is None
        outcome, event = approvals.judge_exception(
            policy, got.value, run_id=self._run_id, waiting=waiting, expires_at=self.expires_at
        )
        await self._ledger.record(event)
        if outcome.accepted:
            self._decision = got.value
        return outcome
