"""Closing a workflow (complete or continue-as-new) without losing evidence.

The server refuses a closing command when new events (a signal, an update) arrived
while the workflow task ran ("UnhandledCommand"). The task is then run again from
history, and a local activity in it runs again too, at a new ``workflow.now()``:
the evidence it wrote the first time no longer matches, and the store refuses the
second write as a conflict. So a closing command must never share a workflow task
with an evidence write. :func:`settle` ends the current task (a one-millisecond
timer) and returns only once a task has begun in which no handler runs and no
evidence was written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

_TICK = timedelta(milliseconds=1)


async def settle(evidence_seq: Callable[[], int]) -> None:
    """Wait until the workflow may close: handlers finished, every evidence write in history."""
    while True:
        await workflow.wait_condition(workflow.all_handlers_finished)
        seen = evidence_seq()
        await workflow.sleep(_TICK)
        if workflow.all_handlers_finished() and evidence_seq() == seen:
            return
