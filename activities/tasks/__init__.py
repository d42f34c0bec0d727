"""The task contract, and example tasks."""

from __future__ import annotations

from govflow.activities.tasks.contract import (
    ContradictoryInput,
    IncompleteInput,
    Proposal,
    Task,
    TaskInputError,
)

__all__ = ["ContradictoryInput", "IncompleteInput", "Proposal", "Task", "TaskInputError"]
