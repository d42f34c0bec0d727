"""The policy document, as pydantic models. Strict: unknown keys are errors.

A policy is what security, legal and operations sign off before a workflow
ships. See ``policies/examples/`` for two complete ones.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from govflow.policies.durations import Duration

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=80)]
"""Identifiers: lower case letters, digits, ``-``, ``_`` and ``.``."""

Operation = Literal["read", "create", "update", "delete", "reply", "pay"]
WRITE_OPERATIONS: frozenset[str] = frozenset({"create", "update", "delete", "reply", "pay"})
Risk = Literal["low", "medium", "high"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class Compare(Strict):
    """A comparison on a proposed field's value, e.g. ``{gt: 10000}`` or ``{in: [EUR, USD]}``.

    Every given bound must hold. The ordering bounds need a number; a value that cannot be compared (the
    field is missing, or not a number) is undecidable, and an undecidable comparison applies a rule that
    restricts (approval, deny) and never one that only permits (see ``policies.engine.rule_matches``).
    """

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    ne: StrictBool | int | float | str | None = None
    in_: tuple[StrictBool | int | float | str, ...] | None = Field(default=None, alias="in")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _something(self) -> Compare:
        if all(v is None for v in (self.gt, self.gte, self.lt, self.lte, self.ne, self.in_)):
            raise ValueError("a comparison needs at least one of gt, gte, lt, lte, ne, in")
        return self


class Match(Strict):
    """Which actions a rule covers. ``when`` tests proposed field values: a plain value must be equal;
    a comparison (``{gt: 10000}``) must hold."""

    system: Name
    resource: Name | None = None
    operations: tuple[Operation, ...] = ()
    when: dict[str, StrictBool | int | float | str | Compare] = Field(default_factory=dict)


class Escalation(Strict):
    to_role: Name
    expires_after: Duration


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


class ScoreCheck(Strict):
    """A per-run check on one of the task's quality scores."""

    name: Name
    score: Name
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bound(self) -> ScoreCheck:
        if self.min is None and self.max is None:
            raise ValueError(f"check {self.name!r} sets neither min nor max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"check {self.name!r}: min {self.min} is above max {self.max}")
        return self


Metric = Literal["pass_rate", "mean_score", "override_rate", "error_rate"]


class FalsePauses(Strict):
    """What a sequential rule tolerates, in an operator's terms: at most ``at_most`` chance of a pause
    by noise within ``per_runs`` runs while quality is at the threshold plus the margin (or better)."""

    at_most: float = Field(default=0.01, gt=0.0, lt=1.0)
    per_runs: int = Field(default=10_000, ge=10)


class WindowRule(Strict):
    """A quality rule over a stage's runs.

    ``method: cusum`` (the default) watches every run with a CUSUM and promotes on an anytime-valid
    bound, both valid however often they are checked (``policies.stats``). ``method: window`` is the
    earlier sliding window re-tested after each run, kept for comparison; its error rates grow with
    every check.
    """

    name: Name
    metric: Metric
    score: Name | None = Field(default=None, description="For mean_score: which score.")
    threshold: float
    window: int = Field(ge=1, description="How many recent runs the rule looks at.")
    min_sample: int = Field(ge=1, description="Fewer runs than this is inconclusive, never pass.")
    statistic: Literal["wilson", "normal"] = "wilson"
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    method: Literal["cusum", "window"] = "cusum"
    margin: float = Field(
        default=0.05, gt=0.0, lt=1.0, description="cusum: quality this far on the good side of the threshold is fine."
    )
    drop: float = Field(
        default=0.10, gt=0.0, lt=1.0, description="cusum: the smallest fall past the threshold worth catching fast."
    )
    false_pauses: FalsePauses = FalsePauses()
    wrong_promotions: float = Field(
        default=0.01, gt=0.0, lt=1.0, description="cusum: chance of promoting while quality is on the bad side."
    )

    @model_validator(mode="after")
    def _coherent(self, info: ValidationInfo) -> WindowRule:
        if self.metric == "mean_score":
            if self.score is None:
                raise ValueError(f"rule {self.name!r}: mean_score needs `score`")
            if self.statistic != "normal":
                raise ValueError(f"rule {self.name!r}: mean_score uses statistic normal (wilson is for rates)")
        else:
            if self.score is not None:
                raise ValueError(f"rule {self.name!r}: `score` is only for mean_score")
            if self.statistic != "wilson":
                raise ValueError(f"rule {self.name!r}: rates use statistic wilson")
            if not 0.0 <= self.threshold <= 1.0:
                raise ValueError(f"rule {self.name!r}: threshold {self.threshold} is a rate and must lie in [0, 1]")
        if self.min_sample > self.window:
            raise ValueError(f"rule {self.name!r}: min_sample {self.min_sample} is larger than window {self.window}")
        # Checked for policy files (the loader asks for it), not for policy JSON read back from a running
        # workflow's history: a policy written before `method` existed must still replay.
        if self.method == "cusum" and (info.context or {}).get("new_policy"):
            good = self.threshold + self.margin if self.higher_is_better else self.threshold - self.margin
            bad = self.threshold - self.drop if self.higher_is_better else self.threshold + self.drop
            lo, hi = (0.0, 1.0)
            if self.metric != "mean_score" or 0.0 <= self.threshold <= 1.0:
                for what, value in (("the level judged fine (threshold and margin)", good),
                                    ("the level to catch (threshold and drop)", bad)):  # fmt: skip
                    if not lo < value < hi:
                        raise ValueError(
                            f"rule {self.name!r}: {what} is {value:.3f}, outside (0, 1): nothing could be "
                            "told apart; choose a smaller margin or drop"
                        )
            else:
                raise ValueError(f"rule {self.name!r}: method cusum reads mean scores in [0, 1]; threshold is not")
        return self

    @property
    def higher_is_better(self) -> bool:
        return self.metric in ("pass_rate", "mean_score")


class Quality(Strict):
    checks: tuple[ScoreCheck, ...] = ()
    window: tuple[WindowRule, ...] = ()
    false_pauses: FalsePauses | None = Field(
        default=None,
        description="One false-pause budget for the whole policy: split evenly over the sequential rules that "
        "state none of their own (what the rules state adds up: a pause by any rule pauses the rollout).",
    )

    @model_validator(mode="after")
    def _split_budget(self) -> Quality:
        budget = self.false_pauses
        if budget is None:
            return self
        sequential = [w for w in self.window if w.method == "cusum"]
        own = [w for w in sequential if "false_pauses" in w.model_fields_set]
        taken = sum(w.false_pauses.at_most for w in own)
        if taken > budget.at_most * (1 + 1e-9):
            raise ValueError(
                f"the rules' own false_pauses add up to {taken:.4%}, more than the policy's budget of "
                f"{budget.at_most:.4%}: lower them, or raise quality.false_pauses.at_most"
            )
        if any(w.false_pauses.per_runs < budget.per_runs for w in own):
            raise ValueError(
                f"a rule states its false pauses over fewer runs than the policy's budget ({budget.per_runs:,}): "
                "state them over at least as many"
            )
        rest = [w for w in sequential if w not in own]
        if not rest:
            return self
        if taken >= budget.at_most * (1 - 1e-9):
            raise ValueError(f"the rules' own false_pauses spend the whole budget; {rest[0].name} would have none")
        share = FalsePauses(at_most=(budget.at_most - taken) / len(rest), per_runs=budget.per_runs)
        # Each share is the rule's own from here on (stated in the policy's JSON, so it reads back the same).
        window = tuple(w.model_copy(update={"false_pauses": share}) if w in rest else w for w in self.window)
        for w in window:
            w.model_fields_set.add("false_pauses")
        object.__setattr__(self, "window", window)
        return self

    def false_pause_bound(self) -> tuple[float, int] | None:
        """The whole policy's false-pause bound: ``(chance, runs)``, the sum over its sequential rules (a pause
        by any one pauses the rollout) within the fewest runs any of them states; None without such rules."""
        sequential = [w for w in self.window if w.method == "cusum"]
        if not sequential:
            return None
        return sum(w.false_pauses.at_most for w in sequential), min(w.false_pauses.per_runs for w in sequential)


class Stage(Strict):
    name: Name
    live_fraction: float = Field(ge=0.0, le=1.0)
    min_runs: int = Field(default=0, ge=0)
    min_duration: Duration | None = None
    gate: Literal["auto", "approval", "auto+approval"] = "auto"
    promoters: tuple[Name, ...] = ()

    @model_validator(mode="after")
    def _promoters(self) -> Stage:
        if "approval" in self.gate and not self.promoters:
            raise ValueError(f"stage {self.name!r} asks for promotion approval but names no promoters")
        return self


class Rollout(Strict):
    stages: tuple[Stage, ...] = Field(min_length=1)
    required: StrictBool = Field(
        default=True,
        description="A live run needs a running rollout of its task version; without one it is refused. "
        "The default: set false only where live runs by hand are meant (a walkthrough, a back-office tool).",
    )


SignedAct = Literal["submit", "vote", "exception", "resume", "promote"]


class Identity(Strict):
    """Which human acts must carry the person's Ed25519 signature (``reviewers.people[].public_key``).

    A signature binds the act to one run or rollout and one moment of it, so separation of duties
    holds against someone typing another person's name. Acts that only reduce exposure (a reject,
    a pause, a rollback) are never refused for want of a signature.
    """

    signed: tuple[SignedAct, ...] = Field(default=(), description="Acts refused unless signed.")


class StopRule(Strict):
    when: Name = Field(description="A quality window rule; its breach triggers this stop rule.")
    action: Literal["pause", "rollback"]


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


class SecretRef(Strict):
    """Where a webhook's signing secret is kept: an environment variable or a file, never the policy."""

    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    file: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("name the secret by exactly one of env (a variable) or file (a path)")
        return self


_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class Notification(Strict):
    """Where pending approvals are announced: an HTTPS webhook, for the gates of some rules or roles.

    One message when a run starts waiting, one when a gate escalates, one when the wait ends (approved,
    rejected, expired); each signed with HMAC-SHA256 over the timestamp and the body.
    """

    name: Name
    url: str = Field(description="https://..., or http:// only to localhost (a receiver on this machine).")
    format: Literal["json", "slack"] = Field(
        default="json", description="json: govflow's message; slack: a Slack-compatible incoming-webhook body."
    )
    secret: SecretRef
    rules: tuple[Name, ...] = Field(default=(), description="Announce the gates of these action rules.")
    roles: tuple[Name, ...] = Field(default=(), description="Announce the gates these roles may decide.")

    @field_validator("secret", mode="before")
    @classmethod
    def _by_reference(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("a webhook secret goes by reference, {env: NAME} or {file: PATH}, never in the policy")
        return value

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        parts = urllib.parse.urlsplit(value)
        host = (parts.hostname or "").lower()
        if not host:
            raise ValueError(f"{value!r} is not a URL with a host")
        if parts.scheme == "https" or (parts.scheme == "http" and host in _LOCAL_HOSTS):
            return value
        raise ValueError(f"webhook url {value!r} must be https (plain http only to localhost)")

    @model_validator(mode="after")
    def _announces_something(self) -> Notification:
        if not self.rules and not self.roles:
            raise ValueError(f"notification {self.name!r} names no rules and no roles to announce")
        return self

    def announces(self, rule: str, roles: tuple[str, ...]) -> bool:
        return rule in self.rules or any(r in self.roles for r in roles)


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
        for rule in doc["actions"]:
            if rule.get("approval") and rule["approval"].get("standing") is None:
                rule["approval"].pop("standing", None)
        return doc
