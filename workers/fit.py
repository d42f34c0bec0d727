"""`policy check --app`: each task's policy held against the task as a worker serves it.

A policy can be valid and still not fit its task: a grant names a field its table does not have (the write
fails on the first live run), or no stage names promoters (the first pause can never be lifted). Each
finding names the policy file, the path in it and the line; a worker logs the same findings as it starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from govflow.activities.connectors import ConnectorError
from govflow.activities.registry import Registration, Registry
from govflow.policies import PolicyIssue
from govflow.policies.checks import PathT
from govflow.policies.loader import format_path, issues_at


async def fit(registry: Registry) -> list[tuple[Registration, list[PolicyIssue]]]:
    """What each registered task's policy gets wrong about the task and its data, task by task."""
    return [(reg, await fit_one(reg)) for reg in registry]


async def fit_one(reg: Registration) -> list[PolicyIssue]:
    """What ``reg``'s policy gets wrong about its task and its data (nothing: an empty list)."""
    policy = reg.policy
    found: list[tuple[PathT, str]] = []
    if not policy.rollout.resumers:
        found.append((("rollout", "stages"), "no stage names promoters, so a pause (an operator's, or a stop rule's) "
                      "can never be resumed: name who may on a stage, e.g. promoters: [alice]"))  # fmt: skip
    columns_of: dict[tuple[str, str], set[str] | str | None] = {}
    for i, grant in enumerate(policy.grants):
        key = (grant.system, grant.resource)
        if key not in columns_of:
            columns_of[key] = await _columns(getattr(reg.connectors.get(grant.system), "columns", None), grant.resource)
        columns = columns_of[key]
        if isinstance(columns, str):
            found.append((("grants", i, "resource"), columns))
            continue
        if columns is None:
            continue  # a connector that cannot say (an HTTP API)
        have = f"{grant.system}.{grant.resource} has {', '.join(sorted(columns))}"
        for k, name in enumerate(grant.fields):
            if name not in columns:
                found.append((("grants", i, "fields", k), f"{name!r} is not a field of {grant.system}.{grant.resource}"
                              f" ({have})"))  # fmt: skip
        if grant.records is not None and grant.records.field not in columns:
            found.append((("grants", i, "records", "field"), f"{grant.records.field!r} is not a field of "
                          f"{grant.system}.{grant.resource} ({have})"))  # fmt: skip
    where = f"task {reg.task.name} v{reg.task.version}"
    if reg.source is not None:
        return [_named(issue, where) for issue in issues_at(reg.source, found)]
    return [PolicyIssue(source=f"{policy.name} ({where}, registered without a file)", path=format_path(path),
                        line=None, message=message) for path, message in found]  # fmt: skip


def _named(issue: PolicyIssue, where: str) -> PolicyIssue:
    return issue.model_copy(update={"source": f"{Path(issue.source)} ({where})"})


async def _columns(columns: Callable[[str], Awaitable[set[str]]] | None, resource: str) -> set[str] | str | None:
    """The resource's fields as its connector reads them; a message when it cannot; None when it cannot say."""
    if columns is None:
        return None
    try:
        return await columns(resource)
    except ConnectorError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot reach the system of record to check its fields: {exc}"
