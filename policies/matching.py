"""Which action rules cover an action, and why: the match's system, resource and operations, its tests of
proposed values (``when``) and of the change an update makes to the record as read (``changes``). Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from govflow.policies.actions import Action
from govflow.policies.conditions import Change, Compare
from govflow.policies.model import ActionRule


def rule_matches(rule: ActionRule, action: Action, record: Mapping[str, Any] | None = None) -> bool:
    """Whether ``rule`` covers ``action`` (``record``: the record as the run read it, for ``changes``)."""
    return all(holds for holds, _ in why(rule, action, record, words=False))


def why(
    rule: ActionRule, action: Action, record: Mapping[str, Any] | None = None, *, words: bool = True
) -> list[tuple[bool, str]]:
    """Each test of the rule's match on ``action``: whether it holds, and in words (empty without
    ``words``: deciding needs none). An undecidable test (a field absent, not a number, no record to
    compare with) holds for a rule that restricts (approval, deny) and never for one that only permits."""
    m = rule.match
    restricts = rule.approval is not None or rule.deny is not None
    out: list[tuple[bool, str]] = [(m.system == action.system, f"system {action.system}")]
    if m.resource is not None:
        out.append((m.resource == action.resource, f"resource {action.resource}"))
    if m.operations:
        out.append((action.operation in m.operations, f"operation {action.operation}"))
    for name, condition in m.when.items():
        value = action.fields.get(name, _MISSING)
        if not isinstance(condition, Compare):
            out.append((value == condition, f"{name} is {_shown(value)} (must be {condition!r})"))
            continue
        said = f"{name} is {_shown(value)}" if words else ""
        out.append(_decided(compares(condition, value), restricts, said, condition))
    for name, change in m.changes.items():
        before = (record or {}).get(name, _MISSING) if record is not None else _NO_RECORD
        after = action.fields.get(name, _MISSING)
        if after is _MISSING:
            out.append((False, f"{name} is not changed by the action"))
            continue
        said = f"{name} {_shown(before)} -> {_shown(after)}" if words else ""
        out.append(_decided(changed(change, before, after), restricts, said, change))
    return out


def _decided(holds: bool | None, restricts: bool, said: str, condition: Any) -> tuple[bool, str]:
    if not said:
        return (restricts if holds is None else holds), ""
    test = condition.model_dump(by_alias=True, exclude_none=True)
    if holds is None:
        verdict = "applies: a rule that restricts" if restricts else "does not apply: a rule that only permits"
        return restricts, f"{said}: {test} cannot be told, so it {verdict}"
    return holds, f"{said}: {test} {'holds' if holds else 'does not hold'}"


def _shown(value: Any) -> str:
    if value is _MISSING:
        return "absent"
    if value is _NO_RECORD:
        return "(no record read)"
    return repr(value)


_MISSING = object()
_NO_RECORD = object()


def _number(value: Any) -> float | None:
    if value is _MISSING or value is _NO_RECORD or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def changed(change: Change, before: Any, after: Any) -> bool | None:
    """Whether the change from ``before`` (the record now) to ``after`` (proposed) meets ``change``; None
    when it cannot be told (no record, the field absent from it, not numbers where a delta needs them)."""
    if before is _MISSING or before is _NO_RECORD:
        return None
    if change.from_ is not None and before != change.from_:
        return False
    if change.to is not None and after != change.to:
        return False
    deltas = (change.rises_by, change.falls_by, change.grows_by_pct)
    if all(d is None for d in deltas):
        return True
    old, new = _number(before), _number(after)
    if old is None or new is None:
        return None
    if change.rises_by is not None and not new - old > change.rises_by:
        return False
    if change.falls_by is not None and not old - new > change.falls_by:
        return False
    if change.grows_by_pct is not None:
        if old == 0:
            return new > 0
        if not (new - old) / abs(old) * 100 > change.grows_by_pct:
            return False
    return True


def compares(condition: Compare, value: Any) -> bool | None:
    """Whether ``value`` meets ``condition``; None when it cannot be told (missing, or not a number
    where a bound needs one)."""
    if value is _MISSING:
        return None
    if condition.in_ is not None and value not in condition.in_:
        return False
    if condition.ne is not None and value == condition.ne:
        return False
    bounds = [(condition.gt, float.__gt__), (condition.gte, float.__ge__), (condition.lt, float.__lt__),
              (condition.lte, float.__le__)]  # fmt: skip
    if all(bound is None for bound, _ in bounds):
        return True
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            number = float(value) if isinstance(value, str) and not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or math.isnan(number):
            return None
    else:
        number = float(value)
    return all(op(number, float(bound)) for bound, op in bounds if bound is not None)
