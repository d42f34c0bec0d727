"""A rollout's evidence kinds, each with its line for `evidence show`."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from govflow.activities.evidence.chain import Stream
from govflow.activities.evidence.event import Event
from govflow.policies.stats import WindowVerdict


class RolloutEvent(Event):
    stream: ClassVar[Stream] = "rollout"


class RolloutStarted(RolloutEvent):
    kind: ClassVar[str] = "rollout_started"

    task: str
    task_version: str
    policy_digest: str
    stage: str
    backtest: str | None = Field(default=None, description="The backtest it relied on (rollout.backtest).")

    def describe(self) -> str:
        policy = self.policy_digest[:12]
        relied = f", relying on backtest {self.backtest}" if self.backtest else ""
        return f"rollout of {self.task} v{self.task_version} started at stage {self.stage}, policy {policy}{relied}"


class RolloutRefused(RolloutEvent):
    """A rollout that may not start: its policy asks for a backtest on record this candidate does not have."""

    kind: ClassVar[str] = "rollout_refused"

    task: str
    task_version: str
    policy_digest: str
    reason: str

    def describe(self) -> str:
        return f"rollout of {self.task} v{self.task_version} refused to start: {self.reason}"


class BreachDetected(RolloutEvent):
    kind: ClassVar[str] = "breach"

    stage: str
    action: Literal["pause", "rollback"]
    verdicts: list[WindowVerdict]
    leases_granted: int = 0
    trigger: str | None = None

    def describe(self) -> str:
        figures = "; ".join(
            f"{v.rule} {v.estimate:.2f} over {v.n} runs (needs {v.threshold})"
            + (
                f", evidence of a drop {v.statistic:.1f} of {v.limit:.1f}"
                if v.limit is not None and v.statistic is not None
                else ""
            )
            for v in self.verdicts
            if v.estimate is not None
        )
        return f"BREACH at stage {self.stage} -> {self.action}: {figures}"


class PromotionRequested(RolloutEvent):
    kind: ClassVar[str] = "promotion_requested"

    stage: str
    promoters: list[str]


class StageChanged(RolloutEvent):
    from_stage: str = Field(alias="from")
    to: str
    reason: str

    def describe(self) -> str:
        return f"{self.kind.replace('_', ' ')} from {self.from_stage} to {self.to}: {self.reason}"


class Promoted(StageChanged):
    kind: ClassVar[str] = "promoted"


class RolledBack(StageChanged):
    kind: ClassVar[str] = "rolled_back"


class OperatorAct(RolloutEvent):
    """An operator's command and its answer; ``payload`` keeps an unreadable command as it came."""

    operator: str
    reason: str = ""
    via: str = "signal"
    accepted: bool = True
    payload_sent: str | None = Field(default=None, alias="payload")

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def describe(self) -> str:
        refused = "" if self.accepted else " (refused)"
        return f"{self.kind.replace('_', ' ')} by {self.operator} via {self.via}{refused}: {self.reason}"


class Paused(OperatorAct):
    kind: ClassVar[str] = "paused"


class Resumed(OperatorAct):
    kind: ClassVar[str] = "resumed"


class RestoreRequested(OperatorAct):
    """An operator asked to undo the rollout's live writes (rollback --data): whether they had the authority
    the policy names for it (and signed, where it asks), before anything is written back."""

    kind: ClassVar[str] = "restore_requested"
    signed: bool = False

    def describe(self) -> str:
        verdict = "accepted" if self.accepted else "REFUSED"
        return f"{self.operator} asked to undo the live writes via {self.via}: {verdict} ({self.reason})"


class PromotionRefused(OperatorAct):
    kind: ClassVar[str] = "promotion_refused"
    accepted: bool = False


class ReportRefused(RolloutEvent):
    kind: ClassVar[str] = "report_refused"

    run_id: str | None
    reason: str
    payload_sent: str = Field(default="", alias="payload")


class RunReleased(RolloutEvent):
    """An admitted run ended without a report (it failed, or was terminated), as Temporal says: its slot
    is released and its outcome not counted."""

    kind: ClassVar[str] = "run_released"

    run_id: str
    reason: str


class DataRestoration(RolloutEvent):
    """One live write undone by a data rollback, or left for review (``data_conflict``)."""

    run_id: str
    action_id: str
    system: str
    resource: str
    record_id: str
    outcome: Literal["restored", "conflict", "already_restored"]
    detail: str
    fields: dict[str, Any] = Field(default_factory=dict)


class DataRestored(DataRestoration):
    kind: ClassVar[str] = "data_restored"


class DataConflict(DataRestoration):
    kind: ClassVar[str] = "data_conflict"
