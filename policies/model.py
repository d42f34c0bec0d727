"""The policy document, as pydantic models. Strict: unknown keys are errors.

A policy is what security, legal and operations sign off before a workflow
ships. See ``policies/examples/`` for two complete ones.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from iso4217 import Currency
from pydantic import (
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from govflow.policies.conditions import Match
from govflow.policies.durations import Duration
from govflow.policies.gates import Quality, Rollout, StopRule
from govflow.policies.notification import Notification
from govflow.policies.terms import WRITE_OPERATIONS, Name, Operation, Risk, Strict


class Owner(Strict):
    team: str = Field(min_length=1)
    contact: str = Field(min_length=3, description="Where to reach the owner (email, channel).")


class Person(Strict):
    id: Name
    name: str = Field(min_length=1)
    roles: tuple[Name, ...] = ()
    public_key: str | None = Field(default=None, description="Ed25519 public key, base64 of the 32 raw bytes.")


class Role(Strict):
    id: Name
    description: str = ""


class Reviewers(Strict):
    people: tuple[Person, ...] = Field(min_length=1)
    roles: tuple[Role, ...] = ()


class RecordFilter(Strict):
    """Which records a grant covers: the record's ``field`` must be one of ``in``."""

    field: str = Field(min_length=1)
    in_: tuple[StrictBool | int | str, ...] = Field(alias="in", min_length=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Grant(Strict):
    """What a run may touch: one resource of one system, some operations, some fields."""

    name: Name
    system: Name
    resource: Name
    operations: tuple[Operation, ...] = Field(min_length=1)
    fields: tuple[str, ...] = Field(default=(), description="Writable fields; required when any operation writes.")
    records: RecordFilter | None = None
    void: dict[str, StrictBool | int | float | str | None] | None = Field(
        default=None,
        description="How a rollback undoes a record a run created under this grant: the fields it sets "
        "(e.g. {status: cancelled}). Systems of record like a ledger void, never delete. Without it a "
        "rollback leaves created records for review.",
    )

    @model_validator(mode="after")
    def _writes_name_fields(self) -> Grant:
        if WRITE_OPERATIONS.intersection(self.operations) and not self.fields:
            raise ValueError(
                f"grant {self.name!r} allows writes ({', '.join(self.operations)}) but lists no "
                "fields: name every field the run may write"
            )
        if self.void is not None:
            if "create" not in self.operations or "update" not in self.operations:
                raise ValueError(
                    f"grant {self.name!r} says how to void a created record, so it needs both create and "
                    f"update among its operations (it has {', '.join(self.operations)})"
                )
            if not self.void:
                raise ValueError(f"grant {self.name!r}: void names no field to set")
            outside = sorted(set(self.void) - set(self.fields))
            if outside:
                raise ValueError(
                    f"grant {self.name!r}: void sets {', '.join(outside)}, outside the grant's fields "
                    f"({', '.join(self.fields)})"
                )
        return self


class Escalation(Strict):
    to_role: Name
    expires_after: Duration


RecordField = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$", max_length=120),
]
"""A field of a resource's records: ``resource.field``."""


class Window(Strict):
    """Limits counted over a rolling window: the amounts already written for the same ``by`` value (the same
    vendor, customer or record) within ``over`` count with the action's own."""

    by: Name = Field(description="The action's field that names what the window groups by, e.g. vendor_id.")
    over: Duration = Field(description="How far back the window reaches, e.g. 1d or 12h (rolling).")


class Limits(Strict):
    """A delegation-of-authority table for one rule: how much each person or role may approve, read from a
    field of the action (``field``, in ``currency``). An approver above their limit is refused; when nobody
    the rule names may approve the amount, the gate goes to whoever the table lets (the role that can)."""

    field: Name = Field(description="The action's field holding the amount (a number or a decimal string).")
    currency: str = Field(description="ISO 4217 code of the limits; the action's currency must be it.")
    currency_field: Name = Field(default="currency", description="The action's field naming its currency.")
    up_to: dict[Name, Decimal] = Field(min_length=1, description="Person or role -> the most they may approve.")
    default: Decimal = Field(default=Decimal(0), description="What anyone else may approve.")
    window: Window | None = Field(default=None, description="Count what was written in a window, too.")

    @field_validator("currency")
    @classmethod
    def _iso4217(cls, value: str) -> str:
        try:
            Currency(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 4217 currency code (e.g. EUR, USD, GBP)") from None
        return value

    @model_validator(mode="after")
    def _not_negative(self) -> Limits:
        negative = [k for k, v in self.up_to.items() if v < 0] + (["default"] if self.default < 0 else [])
        if negative:
            raise ValueError(f"a limit cannot be negative: {', '.join(negative)}")
        return self

    def of(self, person: Person) -> Decimal:
        """The most ``person`` may approve: their own line, or their roles' highest, or the default."""
        mine = [self.up_to[k] for k in (person.id, *person.roles) if k in self.up_to]
        return max(mine, default=self.default)


class Approval(Strict):
    reviewers: tuple[Name, ...] = Field(default=(), description="Named people who may approve.")
    roles: tuple[Name, ...] = Field(default=(), description="Roles whose members may approve.")
    quorum: int = Field(default=1, ge=1)
    separation_of_duties: StrictBool = Field(
        default=True, description="The run's requester can never approve its actions."
    )
    expires_after: Duration
    on_expiry: Literal["reject"] | Escalation = "reject"
    signature_required: StrictBool = False
    standing: StrictBool | None = Field(
        default=None,
        description="May its approvers grant a bounded standing approval for a class of these actions? "
        "Unset: yes, unless the rule is high risk.",
    )
    not_by: tuple[RecordField, ...] = Field(
        default=(),
        description="Separation of duties from the data: fields (resource.field) of the records the run read, "
        "or the action's own record, whose person may not approve, e.g. purchase_order.requested_by.",
    )
    limits: Limits | None = Field(default=None, description="How much each person or role may approve.")

    @model_validator(mode="after")
    def _someone(self) -> Approval:
        if not self.reviewers and not self.roles:
            raise ValueError("an approval names no reviewers and no roles: nobody could approve")
        return self


class ActionRule(Strict):
    name: Name
    match: Match
    risk: Risk
    approval: Approval | None = None
    deny: str | None = Field(default=None, description="Deny matching actions, with this reason.")

    @property
    def allows_standing(self) -> bool:
        """Whether standing approvals may be granted for this rule (high-risk rules forbid them by default)."""
        if self.approval is None:
            return False
        return self.approval.standing if self.approval.standing is not None else self.risk != "high"

    @model_validator(mode="after")
    def _one_effect(self) -> ActionRule:
        if self.approval is not None and self.deny is not None:
            raise ValueError(f"rule {self.name!r} has both approval and deny; choose one")
        return self


SignedAct = Literal["submit", "vote", "exception", "resume", "promote", "restore"]
"""``restore``: a rollback that also undoes a rollout's live writes (``rollout rollback --data``)."""


class Identity(Strict):
    """Which human acts must carry the person's Ed25519 signature (``reviewers.people[].public_key``).

    A signature binds the act to one run or rollout and one moment of it, so separation of duties
    holds against someone typing another person's name. Acts that only reduce exposure (a reject,
    a pause, a stage rollback) are never refused for want of a signature; undoing live writes
    (``restore``, a rollback with ``--data``) writes to the system of record, so it can be.
    """

    signed: tuple[SignedAct, ...] = Field(default=(), description="Acts refused unless signed.")
    passkey: tuple[Literal["vote"], ...] = Field(
        default=(),
        description="Signed acts a reviewer may sign with a passkey in the reviewer console (a WebAuthn "
        "assertion whose challenge is the act, checked by the run).",
    )
    passkey_only: tuple[Literal["vote"], ...] = Field(
        default=(), description="Of those, the acts an Ed25519 key file may not sign: a passkey only."
    )
    user_verification: Literal["required", "preferred"] = Field(
        default="required",
        description="Whether a passkey's assertion must show the device verified its user (PIN, biometrics).",
    )

    @model_validator(mode="after")
    def _only_among_passkey(self) -> Identity:
        extra = [act for act in self.passkey_only if act not in self.passkey]
        if extra:
            raise ValueError(f"identity.passkey_only names {', '.join(extra)}, which identity.passkey does not")
        return self


class ExceptionRoute(Strict):
    """Where incomplete or contradictory input, or invalid model output, goes."""

    handles: tuple[Literal["incomplete_input", "contradictory_input", "invalid_model_output"], ...] = (
        "incomplete_input",
        "contradictory_input",
        "invalid_model_output",
    )
    reviewers: tuple[Name, ...] = ()
    roles: tuple[Name, ...] = ()
    expires_after: Duration

    @model_validator(mode="after")
    def _someone(self) -> ExceptionRoute:
        if not self.reviewers and not self.roles:
            raise ValueError("the exception route names no reviewers and no roles")
        return self


class Evidence(Strict):
    retention_days: int = Field(ge=1)
    redact_fields: tuple[str, ...] = ()


class Policy(Strict):
    version: Literal[1]
    name: Name
    description: str = ""
    owner: Owner
    system_of_record: Name
    reviewers: Reviewers
    grants: tuple[Grant, ...] = Field(min_length=1)
    actions: tuple[ActionRule, ...] = ()
    quality: Quality = Quality()
    rollout: Rollout
    stop_rules: tuple[StopRule, ...] = ()
    exceptions: ExceptionRoute | None = None
    evidence: Evidence
    identity: Identity = Identity()
    notifications: tuple[Notification, ...] = ()

    def signs(self, act: SignedAct) -> bool:
        """Whether the policy refuses ``act`` unless it is signed."""
        return act in self.identity.signed

    def passkey_signs(self, act: str) -> bool:
        """Whether a passkey (in the reviewer console) may sign ``act``."""
        return act in self.identity.passkey

    def key_signs(self, act: str) -> bool:
        """Whether an Ed25519 key file may sign ``act`` (every signed act, unless identity.passkey_only)."""
        return act not in self.identity.passkey_only

    def person(self, person_id: str) -> Person | None:
        return next((p for p in self.reviewers.people if p.id == person_id), None)

    def rule(self, name: str) -> ActionRule | None:
        """The action rule of that name, if there is one."""
        return next((r for r in self.actions if r.name == name), None)

    def members(self, role: str) -> set[str]:
        return {p.id for p in self.reviewers.people if role in p.roles}

    def eligible(self, reviewers: tuple[str, ...], roles: tuple[str, ...]) -> set[str]:
        """The people who may act: those named plus the members of the roles."""
        out = set(reviewers)
        for role in roles:
            out |= self.members(role)
        return out

    def as_json(self) -> dict[str, Any]:
        doc = self.model_dump(mode="json", by_alias=True)
        # Fields added after policies were first digested are left out while unset, so a policy's digest
        # (recorded with every run, compared by `policy audit --task`) does not change when govflow learns
        # a field the policy does not use.
        for grant in doc["grants"]:
            if grant.get("void") is None:
                grant.pop("void", None)
        if not doc.get("notifications"):
            doc.pop("notifications", None)
        if doc["quality"].get("false_pauses") is None:
            doc["quality"].pop("false_pauses", None)
        if doc["quality"].get("hold_failed") is None:
            doc["quality"].pop("hold_failed", None)
        for key in ("restore_by", "backtest"):
            if not doc["rollout"].get(key):
                doc["rollout"].pop(key, None)
        for rule in doc["actions"]:
            if rule.get("approval") and rule["approval"].get("standing") is None:
                rule["approval"].pop("standing", None)
            if rule.get("approval") and not rule["approval"].get("not_by"):
                rule["approval"].pop("not_by", None)
            if rule.get("approval") and rule["approval"].get("limits") is None:
                rule["approval"].pop("limits", None)
            elif rule.get("approval") and rule["approval"]["limits"].get("window") is None:
                rule["approval"]["limits"].pop("window", None)
            if not rule["match"].get("changes"):
                rule["match"].pop("changes", None)
        identity = doc["identity"]
        for key, unset in (("passkey", []), ("passkey_only", []), ("user_verification", "required")):
            if identity.get(key) == unset:
                identity.pop(key, None)
        return doc
