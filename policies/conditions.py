"""What a rule covers: ``match`` names the system, resource and operations, ``when`` tests the proposed
values and ``changes`` what an update does to the record."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictBool, Tag, model_validator

from govflow.policies.terms import Name, Operation, Strict


def _known_keys(data: Any, what: str, keys: tuple[str, ...]) -> Any:
    """One clear error for a misspelt operator (``greater_than``) that lists the ones there are."""
    unknown = [k for k in data if k not in keys] if isinstance(data, dict) else []
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(map(repr, unknown))}: the {what}s are {', '.join(keys)}")
    return data


def _condition_kind(value: Any) -> str:
    return "Compare" if isinstance(value, dict | BaseModel) else "Value"


class Compare(Strict):
    """A comparison on a proposed field's value, e.g. ``{gt: 10000}`` or ``{in: [EUR, USD]}``.

    Every given bound must hold. The ordering bounds need a number; a value that cannot be compared (the
    field is missing, or not a number) is undecidable, and an undecidable comparison applies a rule that
    restricts (approval, deny) and never one that only permits (see ``policies.matching.why``).
    """

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    ne: StrictBool | int | float | str | None = None
    in_: tuple[StrictBool | int | float | str, ...] | None = Field(default=None, alias="in")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _known(cls, data: Any) -> Any:
        return _known_keys(data, "comparison", ("gt", "gte", "lt", "lte", "ne", "in"))

    @model_validator(mode="after")
    def _something(self) -> Compare:
        if all(v is None for v in (self.gt, self.gte, self.lt, self.lte, self.ne, self.in_)):
            raise ValueError("a comparison needs at least one of gt, gte, lt, lte, ne, in")
        return self


class Change(Strict):
    """A test of what an update does to a field: the record as the run read it against the proposed value,
    e.g. ``{rises_by: 20}``, ``{grows_by_pct: 10}``, ``{from: active, to: closed}``. Every given test must
    hold; without a record to compare with (a create), it cannot be told (see ``Compare``)."""

    rises_by: float | None = Field(default=None, description="The proposed value exceeds the current by more.")
    falls_by: float | None = Field(default=None, description="The proposed value is below the current by more.")
    grows_by_pct: float | None = Field(default=None, description="The proposed value grows by more than this %.")
    from_: StrictBool | int | float | str | None = Field(default=None, alias="from")
    to: StrictBool | int | float | str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _known(cls, data: Any) -> Any:
        return _known_keys(data, "change test", ("rises_by", "falls_by", "grows_by_pct", "from", "to"))

    @model_validator(mode="after")
    def _something(self) -> Change:
        if all(v is None for v in (self.rises_by, self.falls_by, self.grows_by_pct, self.from_, self.to)):
            raise ValueError("a change test needs at least one of rises_by, falls_by, grows_by_pct, from, to")
        return self


Condition = Annotated[
    Annotated[Compare, Tag("Compare")] | Annotated[StrictBool | int | float | str, Tag("Value")],
    Discriminator(_condition_kind),
]
"""A ``when`` test: a plain value (must be equal), or a mapping of comparisons (``{gt: 80}``); a mapping is
only ever read as comparisons, so a misspelt one gets one error, not one per kind of value."""


class Match(Strict):
    """Which actions a rule covers. ``when`` tests proposed field values: a plain value must be equal;
    a comparison (``{gt: 10000}``) must hold. ``changes`` tests what an update does to the record."""

    system: Name
    resource: Name | None = None
    operations: tuple[Operation, ...] = ()
    when: dict[str, Condition] = Field(default_factory=dict)
    changes: dict[str, Change] = Field(default_factory=dict)
