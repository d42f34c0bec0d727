"""Authority that reads the data: who the records a run read keep from approving (``approval.not_by``), and
how much each person may approve (``approval.limits``, a delegation-of-authority table). Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from govflow.policies.actions import Action, RunContext
from govflow.policies.model import Limits, Policy


def not_by(fields: Iterable[str], action: Action, ctx: RunContext) -> tuple[dict[str, str], tuple[str, ...]]:
    """Who the data excludes from approving (person -> the field and value that excludes them), and the
    fields the run read no record for. A field is ``resource.field`` of the records the run read, or of
    the action's own record (as the run read it, or as the action writes it)."""
    excluded: dict[str, str] = {}
    unchecked: list[str] = []
    for name in fields:
        resource, field = name.split(".", 1)
        records = list(ctx.reads.get(resource, ()))
        if action.resource == resource:
            records += [r for r in (ctx.record, action.fields) if r]
        if not any(field in r for r in records):
            unchecked.append(f"{name}: the run read no {resource} record with it")
            continue
        for record in records:
            person = record.get(field)
            if isinstance(person, str) and person and person not in excluded:
                excluded[person] = f"{name} is {person}"
    return excluded, tuple(unchecked)


def reads_by_resource(
    records: Mapping[tuple[str, str, str], Mapping[str, Any] | None],
) -> dict[str, tuple[dict[str, Any], ...]]:
    """The records a run read, by resource (``RunContext.reads``), from (system, resource, record id) -> values."""
    out: dict[str, tuple[dict[str, Any], ...]] = {}
    for (_, resource, _), values in records.items():
        if values is not None:
            out[resource] = (*out.get(resource, ()), dict(values))
    return out


@dataclass(frozen=True)
class Limited:
    eligible: set[str]
    roles: tuple[str, ...] = ()
    """When the amount is above everyone the rule names: the roles whose limit covers it (the gate goes there)."""
    over_limit: dict[str, str] = field(default_factory=dict)
    unchecked: tuple[str, ...] = ()
    amount: str = ""
    total: str = ""
    """The amount the limits were held to (the action's, with the window's), a decimal."""
    escalated: bool = False


def _money(value: Decimal, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def within_limits(
    policy: Policy,
    limits: Limits | None,
    action: Action,
    named: set[str],
    requester: str,
    prior: str = "0",
    quorum: int = 1,
) -> Limited:
    """Of ``named`` (who the rule names), those whose limit covers the action's amount (with ``prior``, what
    the limits' window already holds); when fewer than ``quorum`` of them do (the requester aside), everyone
    in the policy whose limit does, and their roles: the gate escalates (quorum and limits combine: each
    approver within their own limit)."""
    if limits is None:
        return Limited(eligible=named)
    raw, currency = action.fields.get(limits.field), action.fields.get(limits.currency_field, limits.currency)
    try:
        amount = Decimal(str(raw)) + Decimal(prior)
        if not amount.is_finite():
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        return Limited(eligible=named, unchecked=(f"limits: the action's {limits.field} is {raw!r}, not an amount",))
    if currency != limits.currency:
        why = f"limits: the action is in {currency}, the limits in {limits.currency}"
        return Limited(eligible=named, unchecked=(why,), amount=_money(amount, str(currency)))
    people = {p.id: p for p in policy.reviewers.people}
    can = {n for n in named if n in people and limits.of(people[n]) >= amount}
    shown = _money(amount, limits.currency)
    if limits.window is not None and Decimal(prior):
        shown += f" with {_money(Decimal(prior), limits.currency)} already written in the window"
    over = {
        n: f"may approve up to {_money(limits.of(people[n]), limits.currency)}; this is {shown}"
        for n in sorted(named - can) if n in people
    }  # fmt: skip
    total = str(amount)
    if len(can - {requester}) >= quorum:
        return Limited(eligible=can, over_limit=over, amount=shown, total=total)
    above = {p.id for p in policy.reviewers.people if limits.of(p) >= amount and p.id != requester}
    role_ids = {r.id for r in policy.reviewers.roles}
    roles = tuple(sorted(k for k, v in limits.up_to.items() if v >= amount and k in role_ids))
    return Limited(eligible=above, roles=roles, over_limit=over, amount=shown, total=total, escalated=True)


def covered(
    policy: Policy, limits: Limits | None, people: Iterable[str], total: str
) -> tuple[set[str], dict[str, str]]:
    """Of ``people``, those whose limit covers ``total`` (a decimal; "" when the limits were not read), and
    why each other may not: an expiry's escalation keeps to the limits as the first gate did."""
    if limits is None or not total:
        return set(people), {}
    by_id = {p.id: p for p in policy.reviewers.people}
    amount = Decimal(total)
    can = {n for n in people if n in by_id and limits.of(by_id[n]) >= amount}
    shown = _money(amount, limits.currency)
    over = {
        n: f"may approve up to {_money(limits.of(by_id[n]), limits.currency)}; this is {shown}"
        for n in sorted(set(people) - can) if n in by_id
    }  # fmt: skip
    return can, over
