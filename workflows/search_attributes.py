"""govflow's custom search attributes.

The server must know every one of them before a workflow sets it: an unknown
attribute fails the workflow task and retries it forever. `govflow stack up`,
the test fixtures and the deploy guide all register this list.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair

TASK = SearchAttributeKey.for_keyword("GovflowTask")
STAGE = SearchAttributeKey.for_keyword("GovflowStage")
MODE = SearchAttributeKey.for_keyword("GovflowMode")
PAUSED = SearchAttributeKey.for_bool("GovflowPaused")
AWAITING_APPROVAL = SearchAttributeKey.for_bool("GovflowAwaitingApproval")

ALL: tuple[SearchAttributeKey[str] | SearchAttributeKey[bool], ...] = (
    TASK,
    STAGE,
    MODE,
    PAUSED,
    AWAITING_APPROVAL,
)


def run_start(task: str, stage: str, mode: str) -> list[SearchAttributePair[str]]:
    """What a governed run starts with (``govflow.client.submit``), and sets itself if its start did not: the
    keys people filter runs by. ``GovflowAwaitingApproval`` is the run's to set, once it waits."""
    return [SearchAttributePair(TASK, task), SearchAttributePair(STAGE, stage), SearchAttributePair(MODE, mode)]
