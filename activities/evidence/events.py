"""Every kind of evidence event, as a type: built by the workflows, read by the CLI, telemetry and export.

An event is stored as ``(kind, payload)`` in a chained row; ``payload`` is the model's fields.
:func:`parse_event` reads a stored row back into its model, and is the only reader of payloads:
code that shows, counts or exports evidence works on these types, never on raw dicts.

Names: a run or rollout event is named for what happened (``run_started``, ``gate_expired``,
``paused``) or for the record it keeps (``proposal``, ``policy_decision``, ``touched_record``,
``breach``). Three rollout kinds were imperative (``resume``, ``rollback``, ``promote_refused``); they
are written as ``resumed``, ``rolled_back`` and ``promotion_refused`` now, and rows stored under the
old names parse to the same models (:data:`FORMER_KINDS`). Models ignore keys they do not know, so a
row written by a later version still reads here, and give defaults to what earlier versions left out.

Four kinds are also projected into a table of their own, whose columns are the model's fields
(``table``): decisions, approval attempts, touched records and quality scores.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from govflow.activities.connectors.guard import ReadLog
from govflow.activities.evidence.chain import Stream
from govflow.activities.evidence.records import Mode, RunRecord, RunReport
from govflow.policies import Action, Gate
from govflow.policies.stats import WindowVerdict

__all__ = ["RunRecord", "RunReport"]  # the run row and what a run reports, read with the events


class Event(BaseModel):
    """One evidence event; subclasses name their ``kind``."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    kind: ClassVar[str]
    stream: ClassVar[Stream] = "run"

    def payload(self) -> dict[str, Any]:
        """What is stored (and hashed) for this event."""
        return self.model_dump(mode="json", by_alias=True)


class ProjectedEvent(Event):
    """An event with a projection table of its own; its columns are exactly these fields."""

    table: ClassVar[str]


# --- a run's events, in the order a run writes them ---------------------------------------------------


class RunStarted(Event):
    kind: ClassVar[str] = "run_started"

    run_id: str
    task: str
    task_version: str
    item_key: str
    requester: str
    stage: str
    mode: Mode
    rollout_id: str | None = None
    policy_digest: str | None = None
    temporal_run_id: str = Field(
        default="", description="The Temporal execution this chain belongs to: its anchor is read from that one."
    )


class ContextRead(Event):
    kind: ClassVar[str] = "context_read"

    reads: list[ReadLog] = Field(default_factory=list)
    context: dict[str, Any] = Field(default_factory=dict)


class ModelCall(Event):
    kind: ClassVar[str] = "model_call"

    model: str
    latency_ms: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    text: str = ""


class ProposalMade(Event):
    """The task's proposal as it returned it: its actions, scores, and whatever fields the task adds."""

    model_config = ConfigDict(extra="allow")
    kind: ClassVar[str] = "proposal"

    actions: list[Action] = Field(default_factory=list)


class QualityScoreRecord(ProjectedEvent):
    kind: ClassVar[str] = "quality_score"
    table: ClassVar[str] = "quality_scores"

    metric: str
    score: float
    passed: bool | None = None


class QualityCheckFailed(Event):
    kind: ClassVar[str] = "quality_check_failed"

    check: str
    passed: bool = False
    reason: str = ""


class PolicyDecisionRecord(ProjectedEvent):
    kind: ClassVar[str] = "policy_decision"
    table: ClassVar[str] = "policy_decisions"

    action_id: str
    action_digest: str
    policy_digest: str
    decision: Literal["allow", "needs_approval", "deny"]
    rule: str | None = None
    reason: str
    gate: dict[str, Any] | None = None

    @property
    def gates(self) -> list[Gate]:
        """The gates a ``needs_approval`` decision opened (rule, quorum, eligible, expires_at)."""
        return _GATES.validate_python((self.gate or {}).get("gates", []))


_GATES = TypeAdapter(list[Gate])


class ScopeRefused(Event):
    """A read or write outside the policy's grants, refused at the boundary."""

    kind: ClassVar[str] = "scope_refusal"

    system: str | None = None
    resource: str | None = None
    operation: str | None = None
    record_id: str | None = None
    fields: list[str] = Field(default_factory=list)
    reason: str


class ExceptionRoute(BaseModel):
    model_config = ConfigDict(frozen=True)
    reviewers: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)


class ExceptionRaised(Event):
    """Input the run could not decide on; ``route`` None when no exception route handles it."""

    kind: ClassVar[str] = "exception_raised"

    problem: str = Field(alias="kind", description="incomplete_input, contradictory_input, invalid_model_output")
    detail: str
    route: ExceptionRoute | None = None
    expires_at: datetime | None = None


class ExceptionExpired(Event):
    kind: ClassVar[str] = "exception_expired"

    problem: str = Field(alias="kind")


class ExceptionDecided(Event):
    """A person's decision on an exception, accepted or refused (``why``)."""

    kind: ClassVar[str] = "exception_decision"

    reviewer: str
    decision: Literal["retry", "discard"] | None
    reason: str = ""
    signature: str | None = None
    accepted: bool
    why: str = ""


class ApprovalAttemptRecord(ProjectedEvent):
    kind: ClassVar[str] = "approval_attempt"
    table: ClassVar[str] = "approval_attempts"

    action_id: str
    action_digest: str
    reviewer: str
    verdict: Literal["approve", "reject"]
    accepted: bool
    reason: str
    signed: bool = False
    via: Literal["signal", "update", "cli", "expiry", "grant"] = "signal"
    note: str | None = Field(default=None, description="The reviewer's own reason, as sent.")
    signature: str | None = Field(default=None, description="The base64 Ed25519 signature, as sent.")


class GateExpired(Event):
    kind: ClassVar[str] = "gate_expired"

    action_id: str
    rule: str
    result: str = "rejected"


class GateEscalated(Event):
    kind: ClassVar[str] = "gate_escalated"

    action_id: str
    rule: str
    to_roles: list[str]
    eligible: list[str]
    expires_at: datetime


class TouchedRecord(ProjectedEvent):
    kind: ClassVar[str] = "touched_record"
    table: ClassVar[str] = "touched_records"

    action_id: str
    system: str
    resource: str
    record_id: str
    operation: str
    mode: Mode
    idempotency_key: str
    before_image: dict[str, Any] | None = None
    after_image: dict[str, Any] | None = None


class LeaseRefused(Event):
    kind: ClassVar[str] = "lease_refused"

    rollout_id: str | None
    action_id: str
    reason: str


class ActionStatus(BaseModel):
    model_config = ConfigDict(frozen=True)
    action_id: str
    status: str


class RunFinished(Event):
    """The run's last row; ``report`` is what its rollout counts (only ever read from here)."""

    kind: ClassVar[str] = "run_finished"

    outcome: str
    reason: str = ""
    actions: list[ActionStatus] = Field(default_factory=list)
    report: RunReport | None = None


class EvidenceDiverged(Event):
    """The chain refused rows that differ from what it holds: the history and the chain disagree."""

    kind: ClassVar[str] = "evidence_diverged"

    detail: str
    refused: list[dict[str, Any]] = Field(default_factory=list)
    what_next: str = ""


# --- a rollout's events ----------------------------------------------------------------------------


class RolloutEvent(Event):
    stream: ClassVar[Stream] = "rollout"


class RolloutStarted(RolloutEvent):
    kind: ClassVar[str] = "rollout_started"

    task: str
    task_version: str
    policy_digest: str
    stage: str


class BreachDetected(RolloutEvent):
    kind: ClassVar[str] = "breach"

    stage: str
    action: Literal["pause", "rollback"]
    verdicts: list[WindowVerdict]
    leases_granted: int = 0
    trigger: str | None = None


class PromotionRequested(RolloutEvent):
    kind: ClassVar[str] = "promotion_requested"

    stage: str
    promoters: list[str]


class StageChanged(RolloutEvent):
    from_stage: str = Field(alias="from")
    to: str
    reason: str


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


class Paused(OperatorAct):
    kind: ClassVar[str] = "paused"


class Resumed(OperatorAct):
    kind: ClassVar[str] = "resumed"


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


# --- reading -----------------------------------------------------------------------------------------


class OtherEvent(Event):
    """A row of a kind this version does not know (a test's note, a later version's kind)."""

    model_config = ConfigDict(extra="allow")
    kind: ClassVar[str] = "other"


class UnreadableEvent(Event):
    """A row of a known kind whose payload does not fit its model: shown and counted, never guessed at."""

    kind: ClassVar[str] = "unreadable"

    stored_kind: str
    problem: str
    raw: dict[str, Any] = Field(default_factory=dict)


# --- a notification's events: one chain per message (its delivery workflow's id) -------------------------


class NotificationEvent(Event):
    stream: ClassVar[Stream] = "notification"


class NotificationRequested(NotificationEvent):
    """What is announced, to which target, for which run: the body sent (and signed) on every attempt."""

    kind: ClassVar[str] = "notification_requested"

    run_id: str
    task: str
    transition: Literal["waiting", "escalated", "decided"]
    target: str
    url: str
    body_sha256: str
    actions: list[str] = Field(default_factory=list)


class NotificationDelivered(NotificationEvent):
    kind: ClassVar[str] = "notification_delivered"

    target: str
    attempt: int
    status: int
    run_id: str = ""


class NotificationFailed(NotificationEvent):
    """One attempt that did not deliver; the next waits ``retry_in_s``."""

    kind: ClassVar[str] = "notification_failed"

    target: str
    attempt: int
    detail: str
    status: int | None = None
    retry_in_s: float | None = None
    run_id: str = ""


class NotificationAbandoned(NotificationEvent):
    kind: ClassVar[str] = "notification_abandoned"

    target: str
    attempts: int
    detail: str
    run_id: str = ""


# --- a standing approval's events: one chain per grant (its workflow's id) ---------------------------------


class GrantEvent(Event):
    stream: ClassVar[Stream] = "grant"


class GrantProposed(GrantEvent):
    kind: ClassVar[str] = "grant_proposed"

    task: str
    task_version: str
    rule: str
    match: dict[str, Any]
    max_uses: int
    expires_at: datetime
    proposed_by: str
    reason: str = ""
    quorum: int = 1


class GrantAct(GrantEvent):
    """One person's act on a grant (grant or revoke), accepted or refused, as sent."""

    kind: ClassVar[str] = "grant_act"

    person: str
    act: Literal["grant", "revoke"]
    accepted: bool
    reason: str
    signed: bool = False
    signature: str | None = None
    note: str = ""


class GrantActivated(GrantEvent):
    kind: ClassVar[str] = "grant_activated"

    granted_by: list[str]


class GrantEnded(GrantEvent):
    kind: ClassVar[str] = "grant_ended"

    status: Literal["revoked", "expired", "refused"]
    by: str = ""
    reason: str = ""


class RunStartRefused(Event):
    """A run started under a run id that already has evidence: refused before admission, nothing read or
    written, recorded in a chain of its own (``refused_start``, ``<run id>@<Temporal run id>``)."""

    stream: ClassVar[Stream] = "refused_start"
    kind: ClassVar[str] = "run_start_refused"

    run_id: str
    temporal_run_id: str
    first_temporal_run_id: str = Field(default="", description="The execution whose evidence the id holds.")
    task: str
    task_version: str
    item_key: str
    requester: str
    reason: str


EVENTS: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted, ContextRead, ModelCall, ProposalMade, QualityScoreRecord, QualityCheckFailed,
        PolicyDecisionRecord, ScopeRefused, ExceptionRaised, ExceptionExpired, ExceptionDecided,
        ApprovalAttemptRecord, GateExpired, GateEscalated, TouchedRecord, LeaseRefused, RunFinished,
        EvidenceDiverged, RolloutStarted, BreachDetected, PromotionRequested, Promoted, RolledBack, Paused,
        Resumed, PromotionRefused, ReportRefused, DataRestored, DataConflict, NotificationRequested,
        NotificationDelivered, NotificationFailed, NotificationAbandoned, GrantProposed, GrantAct, GrantActivated,
        GrantEnded, RunStartRefused, RunReleased,
    )
}  # fmt: skip
"""Every event kind a stored row may carry, to its model."""

FORMER_KINDS: dict[str, str] = {"resume": "resumed", "rollback": "rolled_back", "promote_refused": "promotion_refused"}
"""Kinds stored by earlier versions, to the kind they are written as now."""

PROJECTED: dict[str, type[ProjectedEvent]] = {
    cls.kind: cls for cls in (PolicyDecisionRecord, ApprovalAttemptRecord, TouchedRecord, QualityScoreRecord)
}


def canonical_kind(kind: str) -> str:
    return FORMER_KINDS.get(kind, kind)


def parse_event(kind: str, payload: Any) -> Event:
    """A stored row as its model; never raises (an unknown kind is an OtherEvent, a payload that does
    not fit its kind an UnreadableEvent naming the problem)."""
    model = EVENTS.get(canonical_kind(kind))
    raw = payload if isinstance(payload, dict) else {"value": payload}
    if model is None:
        return OtherEvent.model_validate(raw)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or kind}: {e['msg']}" for e in exc.errors())
        return UnreadableEvent(stored_kind=kind, problem=problem, raw=raw)


def event_kind(event: Event, stored_kind: str) -> str:
    """The kind to show for a parsed row: its model's, or the stored one where the model has none of its own."""
    return stored_kind if isinstance(event, OtherEvent | UnreadableEvent) else event.kind
