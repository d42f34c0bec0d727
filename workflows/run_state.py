"""The state of one governed run, in one object (as ``RolloutState`` is the rollout's).

Workflow state: held by ``GovernedRunWorkflow`` for its one execution (a run never continues-as-new),
read by its query, its details and its handlers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from govflow.activities.connectors.guard import ReadLog
from govflow.policies import Policy
from govflow.workflows.approvals import ActionState
from govflow.workflows.run_api import Outcome, RunInput


@dataclass
class RunState:
    inp: RunInput
    """The run's input; once admitted, with the stage, mode and rollout its admission gave."""
    policy: Policy | None = None
    """Loaded by the opening activity, before anything reads it."""
    phase: str = "starting"
    actions: dict[str, ActionState] = field(default_factory=dict)
    reads: list[ReadLog] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    checks_passed: bool = False
    outcome: Outcome | None = None
    refusal: str = ""
    """Why the run was refused (or why its exception was discarded)."""
    changes: int = 0
    """Counts what may change a wait: a vote that reached a gate, an expiry, a claimed standing approval."""
    awaiting: bool = False
    """GovflowAwaitingApproval, as last set."""
    started: bool = False
    """Set up and admitted: input that arrived earlier is handled from here on."""
    refused_start: bool = False
    """A second start under this run id: nothing of it goes in the run's chain."""
    finish_recorded: bool = False
    """run_finished went with the publish's commit."""
    reported: bool = False
    """The publish sent the rollout its report nudge."""
    fence_generation: int | None = None
    """Admitted while no rollout ran: the fence's generation then."""
    console: str | None = None
    """The reviewer console's origin, as the opening activity gave it: the details link to its pages."""
    used_assertions: set[str] = field(default_factory=set)
    """The passkey assertions this run accepted: each signs an act once."""

    @property
    def live(self) -> bool:
        return self.inp.mode == "live"
