"""Recorded histories replay cleanly against the current workflow code.

Regenerate after an intended change to workflow logic (then review the diff):
``RECORD_HISTORIES=1 .venv/bin/pytest tests/workflows`` rewrites tests/replay/histories/.
A change that breaks replay of a history already in production needs a patch
(``workflow.patched``), not new histories; keep a history from before the patch
(``pre-settle-*``: GovernedRun before ``settle-before-closing``; ``pre-patch-rollout-*``:
Rollout before ``rollout-chain-continues``; ``landed-33639db-rollout-*``: a Rollout run that
continued-as-new, and the run after it, from the code that first landed, before
``careful-continue-as-new``; ``pre-v2-*``: both workflows before ``evidence-v2``, which moved
evidence appends from local activities to activities, added admission, and reads every input as
untrusted; ``rollout-breach`` and ``rollout-continued``: Rollout before ``sequential-gates``, with its
sliding-window gates; ``pre-fence-rollout-sequential``: a CUSUM pause before ``pause-fence``;
``pre-fence-reset-rollout-sequential``: the same before ``fence-reset-at-start``;
``pre-lean-*``: GovernedRun before ``local-admit``, which opens the run in one local activity and
publishes every write in one activity; ``pre-local-fence-rollout-*``: Rollout before ``local-fence``,
which reads outcomes and sets the fence by local activities; ``pre-open-gathers-*``: GovernedRun before
``open-gathers``, which opens the run and gathers in one activity instead of a local activity and a
gather; ``submitted-*``: a run started by ``govflow.client.submit``, which names its workflow revision in
its input and records no patch marker; ``pre-awaiting-submitted-*``: the same at revision 1, which
started with ``GovflowAwaitingApproval`` false (revision 2 sets it once the run waits);
``pre-proposes-submitted-*``: the same at revision 2, before the opening activity proposed too
(revision 3); the unprefixed ones: the current code).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workers.worker import workflow_runner
from workflows.governed_run import GovernedRunWorkflow
from workflows.payloads import data_converter
from workflows.rollout import RolloutWorkflow

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
