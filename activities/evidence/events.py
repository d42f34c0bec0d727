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

Each kind lives beside the workflow that writes it (``run_events``, ``rollout_events``, ``notify_events``,
``grant_events``) with its line for ``evidence show`` (``describe``); adding a kind is a model there
and a line in ``EVENTS`` here.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from govflow.activities.evidence.event import Event, OtherEvent, ProjectedEvent, UnreadableEvent, changes, short
from govflow.activities.evidence.grant_events import GrantAct, GrantActivated, GrantEnded, GrantEvent, GrantProposed
from govflow.activities.evidence.notify_events import (
    NotificationAbandoned,
    NotificationDelivered,
    NotificationEvent,
    NotificationFailed,
    NotificationRequested,
)
from govflow.activities.evidence.policy_events import PolicyRecorded, PolicyUsed
from govflow.activities.evidence.records import RunRecord, RunReport
from govflow.activities.evidence.reviewer_events import (
    EnrollmentIssued,
    PasskeyEnrolled,
    PasskeyRevoked,
    ReviewerEvent,
    SignedIn,
)
from govflow.activities.evidence.rollout_events import (
    BreachDetected,
    DataConflict,
    DataRestoration,
    DataRestored,
    OperatorAct,
    Paused,
    Promoted,
    PromotionRefused,
    PromotionRequested,
    ReportRefused,
    RestoreRequested,
    Resumed,
    RolledBack,
    RolloutEvent,
    RolloutRefused,
    RolloutStarted,
    RunReleased,
    StageChanged,
)
from govflow.activities.evidence.run_events import (
    ActionStatus,
    ApprovalAttemptRecord,
    ContextRead,
    EvidenceDiverged,
    ExceptionDecided,
    ExceptionExpired,
    ExceptionRaised,
    ExceptionRoute,
    GateEscalated,
    GateExpired,
    LeaseRefused,
    ModelCall,
    PolicyDecisionRecord,
    ProposalMade,
    QualityCheckFailed,
    QualityScoreRecord,
    RunFinished,
    RunStarted,
    RunStartRefused,
    ScopeRefused,
    TouchedRecord,
    WindowLimitRefused,
)

EVENTS: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted, ContextRead, ModelCall, ProposalMade, QualityScoreRecord, QualityCheckFailed,
        PolicyDecisionRecord, ScopeRefused, ExceptionRaised, ExceptionExpired, ExceptionDecided,
        ApprovalAttemptRecord, GateExpired, GateEscalated, TouchedRecord, LeaseRefused, RunFinished,
        EvidenceDiverged, RolloutStarted, BreachDetected, PromotionRequested, Promoted, RolledBack, Paused,
        Resumed, PromotionRefused, ReportRefused, DataRestored, DataConflict, NotificationRequested,
        NotificationDelivered, NotificationFailed, NotificationAbandoned, GrantProposed, GrantAct, GrantActivated,
        GrantEnded, RunStartRefused, RunReleased, EnrollmentIssued, PasskeyEnrolled, PasskeyRevoked, SignedIn,
        WindowLimitRefused, PolicyRecorded, PolicyUsed, RestoreRequested, RolloutRefused,
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


def describe(kind: str, payload: Any) -> str:
    """One line for one stored row, in words: its kind's own ``describe``."""
    event = parse_event(kind, payload)
    if isinstance(event, OtherEvent):
        return f"{kind.replace('_', ' ')}: {short(payload, 100)}"
    return event.describe()


__all__ = [
    "EVENTS",
    "FORMER_KINDS",
    "PROJECTED",
    "ActionStatus",
    "ApprovalAttemptRecord",
    "BreachDetected",
    "ContextRead",
    "DataConflict",
    "DataRestoration",
    "DataRestored",
    "EnrollmentIssued",
    "Event",
    "EvidenceDiverged",
    "ExceptionDecided",
    "ExceptionExpired",
    "ExceptionRaised",
    "ExceptionRoute",
    "GateEscalated",
    "GateExpired",
    "GrantAct",
    "GrantActivated",
    "GrantEnded",
    "GrantEvent",
    "GrantProposed",
    "LeaseRefused",
    "ModelCall",
    "NotificationAbandoned",
    "NotificationDelivered",
    "NotificationEvent",
    "NotificationFailed",
    "NotificationRequested",
    "OperatorAct",
    "OtherEvent",
    "PasskeyEnrolled",
    "PasskeyRevoked",
    "Paused",
    "PolicyDecisionRecord",
    "PolicyRecorded",
    "PolicyUsed",
    "ProjectedEvent",
    "Promoted",
    "PromotionRefused",
    "PromotionRequested",
    "ProposalMade",
    "QualityCheckFailed",
    "QualityScoreRecord",
    "ReportRefused",
    "RestoreRequested",
    "Resumed",
    "ReviewerEvent",
    "RolledBack",
    "RolloutEvent",
    "RolloutRefused",
    "RolloutStarted",
    "RunFinished",
    "RunRecord",
    "RunReleased",
    "RunReport",
    "RunStartRefused",
    "RunStarted",
    "ScopeRefused",
    "SignedIn",
    "StageChanged",
    "TouchedRecord",
    "UnreadableEvent",
    "WindowLimitRefused",
    "canonical_kind",
    "changes",
    "describe",
    "event_kind",
    "parse_event",
    "short",
]
