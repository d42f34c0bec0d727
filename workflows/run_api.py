"""Inputs, results, signals and queries of GovernedRunWorkflow."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from govflow.activities.evidence.records import Mode
from govflow.policies import AttemptOutcome, act_message, digest
from govflow.policies.passkeys import PasskeyProof
from govflow.workflows.inputs import Note, PersonName, Token

Outcome = Literal["published", "partial", "shadowed", "rejected", "refused", "exception"]


class RunInput(BaseModel):
    """One item through one task. New fields get defaults."""

    model_config = ConfigDict(frozen=True)

    task: Token
    task_version: Token = "1"
    item_key: Token
    item: dict[str, Any]
    requester: PersonName
    mode: Mode = Field(default="shadow", description="What the requester asks for; a rollout may run it as shadow.")
    stage: Token = "manual"
    rollout_id: Token | None = Field(
        default=None, description="The rollout to ask for admission; by default the task version's own."
    )
    signature: Token | None = Field(
        default=None,
        description="The requester's base64 Ed25519 signature of the submit (submit_message), where the policy "
        "requires signed submits.",
    )


class ActionOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    action_id: str
    target: str
    decision: Literal["allow", "needs_approval", "deny"]
    status: Literal["written", "would_write", "rejected", "expired", "denied", "not_published"]
    reason: str = ""
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class RunResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    outcome: Outcome
    mode: Mode
    actions: list[ActionOutcome] = Field(default_factory=list)
    reason: str = ""
    evidence_rows: int
    chain_head: str | None = Field(
        default=None,
        description="The hash of the run's last evidence row: an anchor outside the database (see evidence verify).",
    )


class Review(BaseModel):
    """A reviewer's vote, as one JSON payload (what the Temporal UI sends with a Signal).

    Example: ``{"reviewer": "alice", "action_digest": "9c1f...", "reason": "looks right"}``.
    Name the action by ``action_digest`` (shown in the run's details); ``action_id``
    may be given too. ``signature`` is base64 Ed25519 where the policy requires it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    reviewer: PersonName
    action_digest: Token | None = None
    action_id: Token | None = None
    reason: Note = ""
    signature: Token | None = None


class ReviewRequest(Review):
    """A vote sent as an Update (the CLI, the console): the verdict is part of the payload."""

    verdict: Literal["approve", "reject"]
    session: Token | None = Field(
        default=None,
        description="The reviewer console's session the act was sent from (recorded as the console says it; "
        "the reviewer chain's signed_in row names it).",
    )
    passkey: PasskeyProof | None = Field(
        default=None, description="The reviewer's passkey signing this act (checked by the run, never trusted)."
    )


class ExceptionDecision(BaseModel):
    """A human's decision on input the run could not decide on: retry it, or discard it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reviewer: PersonName
    decision: Literal["retry", "discard"]
    reason: Note = ""
    signature: Token | None = None
    session: Token | None = Field(default=None, description="The console session it was sent from, if any.")


class GateView(BaseModel):
    rule: str
    quorum: int
    eligible: list[str]
    approved_by: list[str]
    expires_at: datetime
    signature_required: bool
    status: Literal["open", "approved", "rejected", "expired"]
    escalated: bool = Field(default=False, description="Gone to whoever may approve above the rule's people.")
    failed_checks: list[str] = Field(default_factory=list, description="The run's failed quality checks, to see.")


class PendingAction(BaseModel):
    action_id: str
    target: str
    record_id: str | None
    fields: dict[str, Any]
    digest: str
    gates: list[GateView]


class RunStatus(BaseModel):
    run_id: str
    task: str
    item_key: str
    requester: str
    mode: Mode
    stage: str
    phase: str
    pending: list[PendingAction] = Field(default_factory=list)
    exception: str | None = None
    exception_expires_at: datetime | None = Field(
        default=None, description="Pins a signed exception decision to this exception (exception_message)."
    )
    exception_eligible: list[str] = Field(default_factory=list, description="Who may decide the exception.")
    outcome: Outcome | None = None


def submit_message(run_id: str, inp: RunInput) -> bytes:
    """What a requester signs to submit: the run id and everything the run is asked to do."""
    return act_message(
        "submit",
        run_id,
        task=inp.task,
        task_version=inp.task_version,
        item_key=inp.item_key,
        item_digest=digest(inp.item),
        requester=inp.requester,
        mode=inp.mode,
    )


def exception_message(run_id: str, decision: str, expires_at: datetime | None) -> bytes:
    """What a person signs to decide an exception: the run, the decision, and which exception
    (its expiry, from the run's status: a later exception of the same run needs a new signature)."""
    pinned = expires_at.astimezone(UTC).isoformat(timespec="microseconds") if expires_at else ""
    return act_message("exception", run_id, decision=decision, exception_expires_at=pinned)


__all__ = [
    "ActionOutcome",
    "AttemptOutcome",
    "ExceptionDecision",
    "GateView",
    "Mode",
    "PendingAction",
    "Review",
    "ReviewRequest",
    "RunInput",
    "RunResult",
    "RunStatus",
    "exception_message",
    "submit_message",
]
