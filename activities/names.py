"""The names Temporal knows govflow by: workflow types, their signals, updates and queries, and the
error types activities raise and workflows match on.

One place, used by both sides. A workflow declares its handlers with these names; code that cannot
import the workflow class (activities, which stand below workflows) calls them by these names; code
that can (the client API) calls the handler by method reference. Renaming one of these breaks every
recorded history and every running workflow: a new name needs a patch, not an edit here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

# Workflow types.
GOVERNED_RUN: Final = "GovernedRun"
ROLLOUT: Final = "Rollout"
NOTIFY: Final = "GovflowNotify"
STANDING_GRANT: Final = "GovflowStandingGrant"

# StandingGrant's handlers.
GRANT: Final = "grant"
REVOKE_GRANT: Final = "revoke"
GRANT_STATUS: Final = "grant_status"

# GovernedRun's handlers.
APPROVE: Final = "approve"
REJECT: Final = "reject"
REVIEW: Final = "review"
RESOLVE_EXCEPTION: Final = "resolve_exception"
RESOLVE_EXCEPTION_UPDATE: Final = "resolve_exception_update"
RUN_STATUS: Final = "status"

# Rollout's handlers.
ADMIT: Final = "admit"
"""A query: where would this item run now?"""
ADMIT_RUN: Final = "admit_run"
"""The Update a starting run is admitted by (its stage and mode are the rollout's answer)."""
LEASE: Final = "lease"
REPORT: Final = "report"
ROLLOUT_STATUS: Final = "status"
PAUSE: Final = "pause"
RESUME: Final = "resume"
PROMOTE: Final = "promote"
ROLLBACK: Final = "rollback"
CONTROLS: Final = (PAUSE, RESUME, PROMOTE, ROLLBACK)
"""Operator commands: each is a signal (the Temporal UI) and an Update named ``<command>_update`` (the CLI)."""


def control_update(command: str) -> str:
    """The Update that carries operator ``command`` and answers it."""
    if command not in CONTROLS:
        raise ValueError(f"no operator command {command!r} (commands: {', '.join(CONTROLS)})")
    return f"{command}_update"


class ErrorType(StrEnum):
    """``ApplicationError.type`` of every failure an activity raises on purpose.

    Raisers pass the member, catchers compare with it: a ``StrEnum`` member equals its string, so a
    failure recorded under the string in an old history still matches.
    """

    SCOPE_VIOLATION = "ScopeViolation"
    LEASE_REFUSED = "LeaseRefused"
    WINDOW_LIMIT = "WindowLimit"
    INCOMPLETE_INPUT = "incomplete_input"
    CONTRADICTORY_INPUT = "contradictory_input"
    INVALID_ACTION = "InvalidAction"
    UNKNOWN_TASK = "UnknownTask"
    CONNECTOR = "ConnectorError"
    MODEL = "ModelError"
    EVIDENCE_CONFLICT = "EvidenceConflictError"
    EVIDENCE_GAP = "EvidenceGapError"
    EVIDENCE_UNAVAILABLE = "EvidenceUnavailable"
    EVIDENCE_REJECTED = "EvidenceRejected"
    TASK_ERROR = "task_error"
    """The task's own code failed or returned what its types do not declare: the run's exception route."""
