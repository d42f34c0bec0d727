"""Scope grants: may this run touch this system, resource, operation, fields and record?"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from govflow.policies.model import Grant, Policy
from govflow.policies.terms import WRITE_OPERATIONS


@dataclass(frozen=True)
class ScopeResult:
    allowed: bool
    reason: str
    grant: str | None = None


def check_scope(
    policy: Policy,
    system: str,
    resource: str,
    operation: str,
    fields: Iterable[str] = (),
    record: Mapping[str, Any] | None = None,
    *,
    check_records: bool = True,
) -> ScopeResult:
    """Allowed only if one grant covers the operation, every written field and the record.

    A grant that filters records needs the record's current values; without
    them the answer is no (fail closed). ``check_records=False`` skips record
    filters, for a first check before the record has been read.
    """
    target = f"{system}.{resource}.{operation}"
    wanted = sorted(set(fields))
    candidates = [g for g in policy.grants if g.system == system and g.resource == resource]
    if not candidates:
        return ScopeResult(False, f"no grant covers {system}.{resource}")
    with_op = [g for g in candidates if operation in g.operations]
    if not with_op:
        allowed_ops = sorted({op for g in candidates for op in g.operations})
        return ScopeResult(
            False,
            f"no grant allows {target} (grants for {system}.{resource} allow: {', '.join(allowed_ops)})",
        )
    reasons: list[str] = []
    for grant in with_op:
        problem = _fields_problem(grant, operation, wanted) or (
            _record_problem(grant, record) if check_records else None
        )
        if problem is None:
            return ScopeResult(True, f"grant {grant.name} allows {target}", grant.name)
        reasons.append(problem)
    return ScopeResult(False, "; ".join(reasons))


def _fields_problem(grant: Grant, operation: str, fields: list[str]) -> str | None:
    if operation not in WRITE_OPERATIONS:
        return None
    outside = [f for f in fields if f not in grant.fields]
    if outside:
        return (
            f"field {', '.join(repr(f) for f in outside)} is outside grant {grant.name} "
            f"(writable: {', '.join(grant.fields)})"
        )
    return None


def _record_problem(grant: Grant, record: Mapping[str, Any] | None) -> str | None:
    flt = grant.records
    if flt is None:
        return None
    if record is None:
        return (
            f"grant {grant.name} covers only records whose {flt.field} is one of "
            f"{list(flt.in_)}, and the record's current values are not known"
        )
    value = record.get(flt.field)
    if value not in flt.in_:
        return f"record is outside grant {grant.name}: its {flt.field} is {value!r}, the grant covers {list(flt.in_)}"
    return None


def record_images(
    operation: str, current: Mapping[str, Any] | None, fields: Mapping[str, Any]
) -> list[Mapping[str, Any] | None]:
    """The records a call is judged on by record filters.

    A record being created: the values it would get. Any other write to a known record: the record as it
    is and as it would be, so a write can neither touch a record outside the grant nor move one out of it
    (a payment re-pointed to another vendor). A read, a delete, or a record not known: as it is.
    """
    if operation == "create":
        return [dict(fields)]
    if current is None or operation not in WRITE_OPERATIONS or operation == "delete":
        return [current]
    return [current, {**current, **fields}]
