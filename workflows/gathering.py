"""A governed run's gather and propose steps, with the exception route between them: what the run's
opening activity gathered and proposed, or, after a person decides to retry, the gather and propose
activities. Workflow code: called from GovernedRunWorkflow.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from govflow.activities import run_messages as rm
    from govflow.activities.evidence import events as ev
    from govflow.activities.names import ErrorType
    from govflow.activities.run_activities import RunActivities
    from govflow.workflows.exception_route import ExceptionRoute
    from govflow.workflows.ledger import RETRY, RunLedger, scope_refusal
    from govflow.workflows.run_state import RunState

_ACTIVITY = timedelta(seconds=60)


def gather_request(run_id: str, state: RunState) -> rm.GatherInput:
    inp = state.inp
    return rm.GatherInput(run_id=run_id, task=inp.task, task_version=inp.task_version, item=inp.item)


class Gathering:
    """Gathers and proposes until there is a valid proposal, or the run ends (refused by the scope guard,
    or an exception a person discarded or let expire). ``phase`` and ``awaiting`` show where it stands."""

    def __init__(
        self, run_id: str, state: RunState, ledger: RunLedger, exceptions: ExceptionRoute,
        phase: Callable[[str], None], awaiting: Callable[[bool], None],
    ) -> None:  # fmt: skip
        self._run_id, self._s, self._ledger, self._exceptions = run_id, state, ledger, exceptions
        self._phase, self._awaiting = phase, awaiting

    async def proposal(self, opened: rm.RunOpened | None) -> rm.ProposeResult | None:
        """The valid proposal, or None (``state.outcome`` / ``state.refusal`` say why)."""
        s = self._s
        while True:
            self._phase("gathering")
            gathered = await self._gather(opened)
            proposed = opened.proposed if opened is not None else None
            opened = None  # a gather (and proposal) after an exception decision is the activities'
            if isinstance(gathered, ApplicationError):
                if gathered.type == ErrorType.SCOPE_VIOLATION:
                    await self._ledger.record(scope_refusal(gathered))
                    s.outcome, s.refusal = "refused", gathered.message
                    return None
                kind, detail = str(gathered.type), gathered.message
            else:
                s.reads = gathered.reads
                # Recorded with the proposal's rows, in one commit.
                self._ledger.defer(ev.ContextRead(reads=gathered.reads, context=gathered.context))
                self._phase("proposing")
                proposal = proposed or await self._propose(gathered.context)
                self._ledger.defer(*(ev.ModelCall(**c.model_dump(mode="json")) for c in proposal.calls))
                if proposal.task_error is not None:
                    kind, detail = str(ErrorType.TASK_ERROR), proposal.task_error
                elif proposal.invalid is None:
                    return proposal
                else:
                    kind, detail = "invalid_model_output", proposal.invalid
            if not await self._exception_route(kind, detail):
                return None

    async def _gather(self, opened: rm.RunOpened | None) -> rm.GatherResult | ApplicationError:
        """The context, or the gather's failure: what the run's opening gathered, else the gather activity."""
        if opened is not None and opened.gathered is not None:
            return opened.gathered
        if opened is not None and opened.gather_failure is not None:
            failure = opened.gather_failure
            return ApplicationError(failure.message, *failure.details, type=failure.type, non_retryable=True)
        try:
            return await workflow.execute_activity_method(
                RunActivities.gather,
                gather_request(self._run_id, self._s),
                start_to_close_timeout=_ACTIVITY,
                retry_policy=RETRY,
            )
        except ActivityError as err:
            if isinstance(err.cause, ApplicationError) and err.cause.type in rm.GATHER_FAILURES:
                return err.cause
            raise

    async def _propose(self, context: dict[str, Any]) -> rm.ProposeResult:
        inp = self._s.inp
        return await workflow.execute_activity_method(
            RunActivities.propose,
            rm.ProposeInput(run_id=self._run_id, task=inp.task, task_version=inp.task_version, context=context),
            start_to_close_timeout=_ACTIVITY,
            retry_policy=RETRY,
        )

    async def _exception_route(self, kind: str, detail: str) -> bool:
        """Wait for a human decision on input the run cannot decide on. True means retry."""

        def awaiting(value: bool) -> None:
            if value:
                self._s.phase = "awaiting exception decision"
            self._awaiting(value)

        assert self._s.policy is not None
        why = await self._exceptions.wait(self._s.policy, kind, detail, awaiting)
        if why:
            self._s.refusal = why
        return not why
