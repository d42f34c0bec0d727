"""Recorded histories replay cleanly against the current workflow code.

Regenerate after an intended change to workflow logic (then review the diff):
``RECORD_HISTORIES=1 .venv/bin/pytest tests/workflows`` rewrites tests/replay/histories/.

GovernedRun is PINNED (Worker Versioning): a run finishes on the build it started on, so its
histories are one generation, the current code's (``started-shadow`` from a raw start, as the Temporal
UI starts one; ``submitted-*`` from ``govflow.client.submit``; the others from the tests that keep
them), re-recorded when the run's code changes; no patch, and no history of an older run kept.

Rollout is AUTO_UPGRADE: a rollout moves to new code mid-flight, so a change that breaks replay
of one of its histories needs a patch (``workflow.patched``), and a history from before each patch is
kept: ``pre-patch-rollout-*`` before ``rollout-chain-continues``; ``landed-33639db-rollout-*`` a rollout
that continued-as-new, and the run after it, from the code that first landed, before
``careful-continue-as-new``; ``pre-v2-rollout-*`` before ``evidence-v2`` (appends by activities,
admission); ``rollout-breach`` and ``rollout-continued`` before ``sequential-gates``, with the sliding
window; ``pre-fence-rollout-sequential`` a CUSUM pause before ``pause-fence``;
``pre-fence-reset-rollout-sequential`` the same before ``fence-reset-at-start``;
``pre-local-fence-rollout-*`` before ``local-fence``; ``rollout-sequential`` the current code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from govflow.workers.worker import workflow_runner
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.payloads import data_converter
from govflow.workflows.rollout import RolloutWorkflow

FOLDER = Path(__file__).parent / "histories"
HISTORIES = sorted(p for p in FOLDER.glob("*.json") if p.name != "workflow-ids.json")
IDS = json.loads((FOLDER / "workflow-ids.json").read_text())


def test_there_are_histories_to_replay() -> None:
    assert len(HISTORIES) >= 24, "record them: RECORD_HISTORIES=1 .venv/bin/pytest tests/workflows"


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path) -> None:
    replayer = Replayer(
        workflows=[GovernedRunWorkflow, RolloutWorkflow],
        workflow_runner=workflow_runner(),
        data_converter=data_converter,
    )
    history = WorkflowHistory.from_json(IDS[path.stem], path.read_text())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
