"""A governed run's evidence kinds, in the order a run writes them, each with its line for `evidence show`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from govflow.activities.connectors.guard import ReadLog
from govflow.activities.evidence.chain import Stream
from govflow.activities.evidence.event import Event, ProjectedEvent, changes, short
from govflow.activities.evidence.records import Mode, RunReport
from govflow.policies import Action, Gate


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
    submit_signature: str | None = Field(
        default=None, description="The requester's Ed25519 signature of submit_message (base64), as sent."
    )
    submit_message: str = Field(default="", description="What the requester signed (govflow-submit-v1), UTF-8.")

    def describe(self) -> str:
        return (
            f"started {self.task} v{self.task_version} for item {self.item_key}, requested by {self.requester}; "
            f"mode {self.mode}, stage {self.stage}, policy {str(self.policy_digest)[:12]}"
        )


class ContextRead(Event):
    kind: ClassVar[str] = "context_read"

    reads: list[ReadLog] = Field(default_factory=list)
    context: dict[str, Any] = Field(default_factory=dict)

    def describe(self) -> str:
        return "read " + ", ".join(f"{r.system}/{r.resource} {r.record_id}" for r in self.reads)


class ModelCall(Event):
    kind: ClassVar[str] = "model_call"

    model: str
    latency_ms: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    text: str = ""

    def describe(self) -> str:
        tokens = f"{self.prompt_tokens} + {self.completion_tokens} tokens"
        return f"model {self.model} answered in {self.latency_ms:.1f} ms ({tokens})"


class ProposalMade(Event):
    """The task's proposal as it returned it: its actions, scores, and whatever fields the task adds."""

    model_config = ConfigDict(extra="allow")
    kind: ClassVar[str] = "proposal"

    actions: list[Action] = Field(default_factory=list)

    def describe(self) -> str:
        listed = "; ".join(
            f"{a.action_id}: {a.operation} {a.system}/{a.resource} {a.record_id or ''} {short(a.fields, 50)}".replace(
                "  ", " "
            )
            for a in self.actions
        )
        return f"proposed {len(self.actions)} action(s): {listed}"


class QualityScoreRecord(ProjectedEvent):
    kind: ClassVar[str] = "quality_score"
    table: ClassVar[str] = "quality_scores"

    metric: str
    score: float
    passed: bool | None = None

    def describe(self) -> str:
        return f"score {self.metric} = {self.score} ({'passed' if self.passed else 'failed'})"


class QualityCheckFailed(Event):
    kind: ClassVar[str] = "quality_check_failed"

    check: str
    passed: bool = False
    reason: str = ""

    def describe(self) -> str:
        return f"quality check {self.check} failed: {self.reason}"


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

    def describe(self) -> str:
        who = "; ".join(", ".join(g.eligible) for g in self.gates)
        return f"decided {self.action_id}: {self.decision} ({self.reason})" + (f"; eligible: {who}" if who else "")


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
    eligible: list[str] = Field(default_factory=list, description="Everyone who may decide, roles resolved.")


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
    session: str | None = Field(default=None, description="The console session it was sent from, if any.")


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
    via: Literal["signal", "update", "cli", "expiry", "grant", "console"] = "signal"
    note: str | None = Field(default=None, description="The reviewer's own reason, as sent.")
    signature: str | None = Field(default=None, description="The base64 Ed25519 signature, as sent.")
    failed_checks_seen: list[str] | None = Field(
        default=None, description="The run's failed quality checks its gate showed the reviewer (quality.hold_failed)."
    )
    session: str | None = Field(
        default=None, description="via console: the signed-in session it came from (the reviewer chain's signed_in)."
    )
    passkey: dict[str, Any] | None = Field(
        default=None,
        description="A passkey-signed vote: the proof as sent (the assertion, its nonce and acts), the credential "
        "the run read, the counter, and whether user verification was required; evidence verify re-checks it.",
    )

    def describe(self) -> str:
        signed = ", signed by passkey" if self.passkey else ", signed" if self.signed else ""
        verdict = "accepted" if self.accepted else "REFUSED"
        via = f"console session {self.session}" if self.session else self.via
        vote = f"{self.reviewer} voted {self.verdict} on {self.action_id} via {via}{signed}"
        return f"{vote}: {verdict} ({self.reason})"


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
    reason: str = ""
    """Why (empty: the gate expired): a limits' window that filled before the write, with its new total."""


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

    def describe(self) -> str:
        verb = "wrote" if self.mode == "live" else "would write (shadow)"
        return (
            f"{verb} {self.system}/{self.resource} {self.record_id} ({self.operation}): "
            f"{changes(self.before_image, self.after_image)}"
        )


class LeaseRefused(Event):
    kind: ClassVar[str] = "lease_refused"

    rollout_id: str | None
    action_id: str
    reason: str


class WindowLimitRefused(Event):
    """A write refused at the last moment: its limits' window, counted under a lock, now holds more than the
    people who approved it may approve (another run wrote to the same group first)."""

    kind: ClassVar[str] = "window_limit_refused"

    action_id: str
    rule: str
    reason: str
    prior: str = ""
    """What the window held without the write, counted under the lock (the run asks again with it)."""

    def describe(self) -> str:
        return f"refused to write {self.action_id} (rule {self.rule}): {self.reason}"


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

    def describe(self) -> str:
        actions = ", ".join(f"{a.action_id} {a.status}" for a in self.actions)
        why = f" - {self.reason}" if self.reason else ""
        return f"finished: {self.outcome}" + (f" [{actions}]" if actions else "") + why


class EvidenceDiverged(Event):
    """The chain refused rows that differ from what it holds: the history and the chain disagree."""

    kind: ClassVar[str] = "evidence_diverged"

    detail: str
    refused: list[dict[str, Any]] = Field(default_factory=list)
    what_next: str = ""


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
