"""The checks across a policy's fields that no single field can make: rules that name a missing window
rule, stages out of order, people without the role they need, and the like. Each problem is a path in
the document and what is wrong there; the loader reports them with their line numbers."""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Iterable

from govflow.policies.model import Policy

PathT = tuple[str | int, ...]


def cross_check(policy: Policy) -> list[tuple[PathT, str]]:
    """Problems no single field shows: undefined names, impossible quorums, stages, duplicates."""
    problems: list[tuple[PathT, str]] = []
    people = {p.id for p in policy.reviewers.people}
    roles = {r.id for r in policy.reviewers.roles}

    def duplicates(items: Iterable[str], path: PathT, what: str) -> None:
        for name, count in Counter(items).items():
            if count > 1:
                problems.append((path, f"{what} {name!r} is defined {count} times; names must be unique"))

    duplicates((p.id for p in policy.reviewers.people), ("reviewers", "people"), "person")
    duplicates((r.id for r in policy.reviewers.roles), ("reviewers", "roles"), "role")
    duplicates((g.name for g in policy.grants), ("grants",), "grant")
    duplicates((a.name for a in policy.actions), ("actions",), "action rule")
    duplicates((c.name for c in policy.quality.checks), ("quality", "checks"), "check")
    duplicates((w.name for w in policy.quality.window), ("quality", "window"), "window rule")
    duplicates((s.name for s in policy.rollout.stages), ("rollout", "stages"), "stage")

    def known_roles(names: Iterable[str], path: PathT) -> None:
        for name in names:
            if name not in roles:
                defined = ", ".join(sorted(roles)) or "none"
                problems.append((path, f"role {name!r} is not defined in reviewers.roles (defined: {defined})"))

    def known_people(names: Iterable[str], path: PathT) -> None:
        for name in names:
            if name not in people:
                problems.append((path, f"reviewer {name!r} is not in reviewers.people"))

    for i, person in enumerate(policy.reviewers.people):
        known_roles(person.roles, ("reviewers", "people", i, "roles"))
        if person.public_key is not None:
            try:
                raw = base64.b64decode(person.public_key, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                problems.append(
                    (
                        ("reviewers", "people", i, "public_key"),
                        "not an Ed25519 public key: expected base64 of 32 bytes",
                    )
                )

    granted = {(g.system, g.resource) for g in policy.grants}
    for i, rule in enumerate(policy.actions):
        at: PathT = ("actions", i)
        m = rule.match
        if not any(s == m.system and (m.resource is None or r == m.resource) for s, r in granted):
            target = f"{m.system}.{m.resource}" if m.resource else m.system
            problems.append(((*at, "match"), f"rule {rule.name!r} covers {target}, which no grant covers"))
        carried = {f for g in policy.grants if g.system == m.system and m.resource in (None, g.resource)
                   and (not m.operations or set(m.operations) & set(g.operations)) for f in g.fields}  # fmt: skip
        for key, tested in (("when", m.when), ("changes", m.changes)):
            for name in tested:
                if carried and name not in carried:
                    problems.append((
                        (*at, "match", key, name),
                        f"rule {rule.name!r} tests field {name!r}, which no action it covers can carry: a grant lets "
                        f"a run write {', '.join(sorted(carried))}",
                    ))  # fmt: skip
        if rule.approval is None:
            continue
        ap = rule.approval
        for k, name in enumerate(ap.not_by):
            resource = name.split(".", 1)[0]
            readable = {g.resource for g in policy.grants if "read" in g.operations} | {m.resource}
            if resource not in readable:
                problems.append((
                    (*at, "approval", "not_by", k),
                    f"{name}: no grant lets a run read {resource} records, and the rule does not cover {resource} "
                    f"(readable: {', '.join(sorted(r for r in readable if r)) or 'none'})",
                ))  # fmt: skip
        if ap.limits is not None:
            fields = {f for g in policy.grants if g.system == m.system and g.resource == m.resource for f in g.fields}
            keys = [("field", ap.limits.field), ("currency_field", ap.limits.currency_field)]
            if ap.limits.window is not None:
                keys.append(("window.by", ap.limits.window.by))
            for key, name in keys:
                if fields and name not in fields:
                    problems.append((
                        (*at, "approval", "limits", *key.split(".")),
                        f"{name!r} is not a field of {m.resource} any grant lets a run write "
                        f"(fields: {', '.join(sorted(fields))})",
                    ))  # fmt: skip
            for who in ap.limits.up_to:
                if who not in people and who not in roles:
                    problems.append(((*at, "approval", "limits", "up_to", who),
                                     f"{who!r} is neither a person nor a role of reviewers"))  # fmt: skip
        known_people(ap.reviewers, (*at, "approval", "reviewers"))
        known_roles(ap.roles, (*at, "approval", "roles"))
        eligible = policy.eligible(ap.reviewers, ap.roles)
        if ap.quorum > len(eligible):
            problems.append(
                (
                    (*at, "approval", "quorum"),
                    f"quorum {ap.quorum} is larger than the {len(eligible)} people who can approve "
                    f"({', '.join(sorted(eligible)) or 'nobody'})",
                )
            )
        if not isinstance(ap.on_expiry, str):
            known_roles([ap.on_expiry.to_role], (*at, "approval", "on_expiry", "to_role"))

    stages = policy.rollout.stages
    for i in range(1, len(stages)):
        if stages[i].live_fraction < stages[i - 1].live_fraction:
            problems.append(
                (
                    ("rollout", "stages", i, "live_fraction"),
                    f"{stages[i].live_fraction} is below the previous stage's "
                    f"{stages[i - 1].live_fraction}: stages must rise",
                )
            )
    if stages and stages[-1].live_fraction != 1.0:
        problems.append(
            (
                ("rollout", "stages", len(stages) - 1, "live_fraction"),
                f"the last stage has live fraction {stages[-1].live_fraction}; stages must rise to 1.0",
            )
        )
    for i, stage in enumerate(stages):
        known_people(stage.promoters, ("rollout", "stages", i, "promoters"))
    hold = policy.quality.hold_failed
    if hold is not None:
        known_people(hold.reviewers, ("quality", "hold_failed", "reviewers"))
        known_roles(hold.roles, ("quality", "hold_failed", "roles"))
        if hold.quorum > len(policy.eligible(hold.reviewers, hold.roles)):
            problems.append((("quality", "hold_failed", "quorum"), f"quorum {hold.quorum} is larger than the "
                             f"{len(policy.eligible(hold.reviewers, hold.roles))} people who can approve"))  # fmt: skip
    role_ids = {r.id for r in policy.reviewers.roles}
    for who in policy.rollout.restore_by:
        if policy.person(who) is None and who not in role_ids:
            problems.append((("rollout", "restore_by"), f"{who!r} is neither a person nor a role of reviewers"))

    window_rules = {w.name for w in policy.quality.window}
    for i, stop in enumerate(policy.stop_rules):
        if stop.when not in window_rules:
            problems.append(
                (
                    ("stop_rules", i, "when"),
                    f"{stop.when!r} is not a quality window rule "
                    f"(defined: {', '.join(sorted(window_rules)) or 'none'})",
                )
            )
    if policy.exceptions is not None:
        known_people(policy.exceptions.reviewers, ("exceptions", "reviewers"))
        known_roles(policy.exceptions.roles, ("exceptions", "roles"))
        if not policy.eligible(policy.exceptions.reviewers, policy.exceptions.roles):
            problems.append((("exceptions",), "nobody may decide an exception: no person in reviewers.people holds "
                             f"{', '.join(policy.exceptions.roles) or 'a role'} here, and none is named"))  # fmt: skip
    duplicates((n.name for n in policy.notifications), ("notifications",), "notification")
    gated = {r.name for r in policy.actions if r.approval is not None}
    for i, note in enumerate(policy.notifications):
        known_roles(note.roles, ("notifications", i, "roles"))
        for name in note.rules:
            if name not in gated:
                problems.append(
                    (
                        ("notifications", i, "rules"),
                        f"{name!r} is not an action rule that asks for approval "
                        f"(those are: {', '.join(sorted(gated)) or 'none'})",
                    )
                )
    return problems
