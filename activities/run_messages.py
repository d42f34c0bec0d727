"""What a governed run's activities take and return: its opening, gathers, proposals, evidence and writes."""

from __future__ import annotations

import base64
import zlib
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from govflow.activities.connectors.guard import ReadLog
from govflow.activities.evidence.events import DataRestoration, Event, RunReport, RunStarted
from govflow.activities.evidence.records import Mode
from govflow.activities.models.chat import ModelResponse
from govflow.activities.names import ErrorType
from govflow.activities.rollout_messages import RunAdmission
from govflow.policies import Action


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class StartRun(RunStarted):
    """A run's opening (the facts of its ``run_started`` event) and when it started. ``policy_digest`` is
    the policy the run decides under (from its setup): the run row takes it from here, not from the
    appending worker, whose policy may be newer in a rolling deploy."""

    at: datetime


def compress_text(text: str) -> str:
    """``text`` deflated and base64-encoded: what ``decompress_text`` reads back."""
    return base64.b64encode(zlib.compress(text.encode(), 9)).decode()


def decompress_text(packed: str) -> str:
    return zlib.decompress(base64.b64decode(packed, validate=True)).decode()


class RunSetup(_Model):
    """The policy a workflow decides under, as canonical JSON: ``policy_json`` in histories from before
    ``policy_zlib``, which carries it deflated (3.6 KB of JSON, 4.2 KB escaped in a payload, is 1.6 KB so:
    a governed run's history is 15 KB). Its digest stays readable. The workflow parses it once per text."""

    policy_json: str = ""
    policy_zlib: str = ""
    policy_digest: str
    next_seq: int
    console: str | None = Field(
        default=None,
        description="The reviewer console's origin, where one serves reviewers: the run's details link there.",
    )

    def policy_text(self) -> str:
        return decompress_text(self.policy_zlib) if self.policy_zlib else self.policy_json


class GatherInput(_Model):
    run_id: str
    task: str
    task_version: str
    item: dict[str, Any]


class GatherResult(_Model):
    context: dict[str, Any]
    reads: list[ReadLog] = Field(default_factory=list)


class ProposeInput(_Model):
    run_id: str
    task: str
    task_version: str
    context: dict[str, Any]


class ProposeResult(_Model):
    """A valid proposal (actions and scores), or why the output was invalid; model calls either way."""

    actions: list[Action] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    proposal: dict[str, Any] | None = None
    invalid: str | None = None
    task_error: str | None = Field(
        default=None, description="The task's propose failed or returned what its types do not declare."
    )
    calls: list[ModelResponse] = Field(default_factory=list)


class EvidenceItem(_Model):
    kind: str
    payload: dict[str, Any]
    at: datetime | None = Field(default=None, description="When it happened, if not when it is recorded.")

    @classmethod
    def of(cls, event: Event, at: datetime | None = None) -> EvidenceItem:
        """The item that records ``event`` (see activities/evidence/events.py)."""
        return cls(kind=event.kind, payload=event.payload(), at=at)


class WindowTotal(_Model):
    """What a limits' window already holds for one group (``by`` = ``value``): the amounts in ``amount_field``
    written live to ``system``/``resource`` since ``since``."""

    system: str
    resource: str
    amount_field: str
    by: str
    value: str
    since: datetime


class WindowCheck(WindowTotal):
    """The window checked again at the write, under a lock on its group, so two runs racing cannot both
    stay under it: refused when the window with this write holds more than ``cap`` (the lowest limit
    among who approved it, under ``rule``)."""

    amount: str
    cap: str
    currency: str
    rule: str


class PlannedWrite(_Model):
    action: Action
    grant: str | None = Field(default=None, description="The standing approval the write relies on, if any.")
    window: WindowCheck | None = Field(default=None, description="A limits' window to hold the write to.")


class PublishAll(_Model):
    """Every approved write of a live run, in order, under one lease and one hold of the fence; the run's
    pending rows, each write's touched record and ``then`` in one commit."""

    run_id: str
    task: str
    task_version: str
    writes: list[PlannedWrite]
    seq: int = Field(description="The evidence sequence number of the first row this activity appends.")
    at: datetime
    before: list[EvidenceItem] = Field(default_factory=list, description="The run's pending rows, first.")
    start: StartRun | None = Field(default=None, description="Register the run with ``before`` (its first rows).")
    rollout_id: str | None = Field(default=None, description="Lease publish authority from it right before writing.")
    stage: str = ""
    then: list[EvidenceItem] = Field(
        default_factory=list, description="Rows after the touched records, when every write is written (run_finished)."
    )
    report: RunReport | None = Field(
        default=None, description="Once ``then`` (run_finished) commits: the report nudge to send the rollout."
    )
    fence_generation: int | None = Field(
        default=None, description="Admitted while no rollout ran: the version's fence generation then."
    )


class Written(_Model):
    action_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    replayed: bool


class PublishRefusal(_Model):
    """The write that was refused (the writes after it were not attempted) and why; recorded in the chain."""

    action_id: str
    reason: str
    window_rule: str = Field(default="", description="Refused by this rule's limits' window (its write waits).")
    window_prior: str = Field(default="", description="What that window held without the write, counted at it.")


class PublishedAll(_Model):
    written: list[Written]
    refused: PublishRefusal | None = None
    reported: bool = Field(default=False, description="The rollout was sent ``report``: the run need not.")
    next_seq: int
    head: str


class Appended(_Model):
    """Where a run's chain stands after an append."""

    next_seq: int
    head: str


class AdmitInput(_Model):
    run_id: str
    task: str
    task_version: str
    item_key: str
    requested: Mode
    rollout_id: str | None = Field(default=None, description="Named by the run's input; else the version's own.")
    stage: str = "manual"


class RecordEvidence(_Model):
    run_id: str
    task: str
    task_version: str
    seq: int
    at: datetime
    items: list[EvidenceItem]
    start: StartRun | None = Field(default=None, description="With the first rows: register the run too.")


RestoredRecord = DataRestoration
"""The data rollback activity's answer per live write; recorded as ``data_restored`` or ``data_conflict``."""


class GrantClaim(_Model):
    """Ask for a use of a standing approval covering one action of a live run."""

    task: str
    task_version: str
    rule: str
    fields: dict[str, Any]
    requester: str
    run_id: str
    action_id: str
    at: datetime


class OpenRun(_Model):
    """A new run's setup, admission, first gather and first proposal, in one activity. ``submit_message`` is
    what the requester signs: a submit the policy refuses for its signature is not admitted (it takes no
    slot), and a refused run reads nothing."""

    start: StartRun
    admit: AdmitInput
    submit_signature: str | None = None
    submit_message: str
    gather: GatherInput = Field(
        description="Gathered once admitted, then proposed from. A model that fails leaves the proposal to the "
        "run's propose activity, with its own retries; the run's admission and reads are not repeated for it."
    )


GATHER_FAILURES = frozenset(
    {ErrorType.SCOPE_VIOLATION, ErrorType.INCOMPLETE_INPUT, ErrorType.CONTRADICTORY_INPUT, ErrorType.TASK_ERROR}
)


class GatherFailure(_Model):
    """Why a gather could not give a context, as data (the run's setup came back with it): a scope
    refusal, or input a person must decide on. The workflow handles it as the gather activity's error."""

    type: str
    message: str
    details: list[Any] = Field(default_factory=list)


class RunOpened(_Model):
    setup: RunSetup
    admission: RunAdmission | None = Field(default=None, description="None: the submit was refused, not admitted.")
    gathered: GatherResult | None = Field(default=None, description="Asked to gather and admitted: the context.")
    gather_failure: GatherFailure | None = None
    proposed: ProposeResult | None = Field(
        default=None, description="Asked to propose and gathered: the proposal (None: the model failed)."
    )
    refused_start: str = Field(
        default="", description="Why the run may not start at all (its run id already has evidence); recorded."
    )
