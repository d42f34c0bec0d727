"""A semantic diff of two policies: what changed, each line marked as raising or lowering exposure.

Exposure is what a run may write and how little review stands in its way: a wider grant, a lower
quorum, a dropped signature or a looser gate raise it; the opposite lowers it. Changes that neither
widen nor narrow (a renamed owner, a description) are ``neutral``.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, Union

from pydantic import BaseModel

from govflow.policies.durations import format_duration
from govflow.policies.gates import Stage, WindowRule
from govflow.policies.model import ActionRule, Grant, Limits, Policy

Exposure = Literal["raises", "lowers", "neutral"]


class DiffLine(BaseModel):
    section: str
    what: str
    exposure: Exposure

    def __str__(self) -> str:
        mark = {"raises": "+ raises", "lowers": "- lowers", "neutral": "  neutral"}[self.exposure]
        return f"[{mark:>9}] {self.section}: {self.what}"


def _sets(name: str, old: Iterable[str], new: Iterable[str], wider: Exposure) -> list[tuple[str, Exposure]]:
    """Added and removed members; ``wider`` is what an addition does to exposure (a removal does the opposite)."""
    narrower: Exposure = "lowers" if wider == "raises" else "raises" if wider == "lowers" else "neutral"
    a, b = set(old), set(new)
    out: list[tuple[str, Exposure]] = []
    if b - a:
        out.append((f"{name} added: {', '.join(sorted(b - a))}", wider))
    if a - b:
        out.append((f"{name} removed: {', '.join(sorted(a - b))}", narrower))
    return out


def _grant(old: Grant, new: Grant) -> list[tuple[str, Exposure]]:
    out = _sets("operations", old.operations, new.operations, "raises")
    out += _sets("fields", old.fields, new.fields, "raises")
    if old.records != new.records:
        if new.records is None:
            out.append(("record filter dropped: every record", "raises"))
        elif old.records is None:
            out.append((f"record filter added: {new.records.field} in {list(new.records.in_)}", "lowers"))
        else:
            wider = set(map(str, new.records.in_)) >= set(map(str, old.records.in_))
            what = f"record filter {old.records.field} in {list(old.records.in_)} -> " \
                   f"{new.records.field} in {list(new.records.in_)}"  # fmt: skip
            out.append((what, "raises" if wider and old.records.field == new.records.field else "lowers"))
    return out


def _rule(old: ActionRule, new: ActionRule, policy_old: Policy, policy_new: Policy) -> list[tuple[str, Exposure]]:
    out: list[tuple[str, Exposure]] = []
    if old.match != new.match:
        out.append((f"match {old.match.model_dump(exclude_defaults=True)} -> "
                    f"{new.match.model_dump(exclude_defaults=True)}", "neutral"))  # fmt: skip
    if old.deny != new.deny:
        out.append(("no longer denies" if new.deny is None else f"now denies: {new.deny}",
                    "raises" if new.deny is None else "lowers"))  # fmt: skip
    a, b = old.approval, new.approval
    if a is None and b is not None:
        out.append(
            (f"now needs approval ({b.quorum} of {sorted(policy_new.eligible(b.reviewers, b.roles))})", "lowers")
        )
    elif a is not None and b is None:
        out.append(("no longer needs approval", "raises"))
    elif a is not None and b is not None:
        if b.quorum != a.quorum:
            out.append((f"quorum {a.quorum} -> {b.quorum}", "lowers" if b.quorum > a.quorum else "raises"))
        who_a, who_b = policy_old.eligible(a.reviewers, a.roles), policy_new.eligible(b.reviewers, b.roles)
        out += [(f"approvers {w}", "neutral") for w, _ in _sets("", who_a, who_b, "raises")]
        if a.separation_of_duties != b.separation_of_duties:
            on = b.separation_of_duties
            out.append((f"separation of duties {'on' if on else 'off'}", "lowers" if on else "raises"))
        if a.expires_after != b.expires_after:
            longer = b.expires_after > a.expires_after
            out.append((f"expires after {format_duration(a.expires_after)} -> {format_duration(b.expires_after)}",
                        "neutral" if longer else "lowers"))  # fmt: skip
        if a.signature_required != b.signature_required:
            on = b.signature_required
            out.append((f"signature {'required' if on else 'no longer required'}", "lowers" if on else "raises"))
        if a.on_expiry != b.on_expiry:
            out.append((f"on expiry {a.on_expiry} -> {b.on_expiry}", "neutral"))
        out += _sets("kept out by the data (not_by)", a.not_by, b.not_by, "lowers")
        out += _limits(a.limits, b.limits)
    if old.risk != new.risk:
        out.append((f"risk {old.risk} -> {new.risk}", "neutral"))
    return out


def _limits(old: Limits | None, new: Limits | None) -> list[tuple[str, Exposure]]:
    """Limits added (lowers), removed (raises), or each person's or role's limit moved."""
    if old == new:
        return []
    if old is None or new is None:
        return [("limits added", "lowers")] if new is not None else [("limits removed", "raises")]
    if (old.field, old.currency, old.currency_field) != (new.field, new.currency, new.currency_field):
        return [(f"limits read {new.field} in {new.currency} (were {old.field} in {old.currency})", "neutral")]
    out: list[tuple[str, Exposure]] = []
    if old.window != new.window:

        def shown(w: Any) -> str:
            return f"by {w.by} over {format_duration(w.over)}" if w is not None else "none"

        counts: Exposure = "lowers" if old.window is None else "raises" if new.window is None else "neutral"
        out.append((f"limits' window {shown(old.window)} -> {shown(new.window)}", counts))
    for who in sorted({*old.up_to, *new.up_to, "(default)"}):
        a = old.default if who == "(default)" else old.up_to.get(who, old.default)
        b = new.default if who == "(default)" else new.up_to.get(who, new.default)
        if a != b:
            out.append((f"limit of {who}: {a:,} -> {b:,} {new.currency}", "raises" if b > a else "lowers"))
    return out


def _stage(old: Stage, new: Stage) -> list[tuple[str, Exposure]]:
    out: list[tuple[str, Exposure]] = []
    if old.live_fraction != new.live_fraction:
        more = new.live_fraction > old.live_fraction
        out.append(
            (f"live fraction {old.live_fraction:.0%} -> {new.live_fraction:.0%}", "raises" if more else "lowers")
        )
    if old.min_runs != new.min_runs:
        out.append(
            (f"min runs {old.min_runs} -> {new.min_runs}", "raises" if new.min_runs < old.min_runs else "lowers")
        )
    if old.min_duration != new.min_duration:
        out.append((f"min duration {old.min_duration} -> {new.min_duration}", "neutral"))
    if old.gate != new.gate:
        looser = "approval" in old.gate and "approval" not in new.gate
        out.append((f"gate {old.gate} -> {new.gate}", "raises" if looser else "lowers"))
    out += _sets("promoters", old.promoters, new.promoters, "raises")
    return out


def _window(old: WindowRule, new: WindowRule) -> list[tuple[str, Exposure]]:
    out: list[tuple[str, Exposure]] = []
    if old.threshold != new.threshold:
        # For a rate that must stay high (pass rate, mean score) a lower threshold is looser; for a rate
        # that must stay low (override, error) a higher one is.
        looser = new.threshold < old.threshold if old.metric in ("pass_rate", "mean_score") else (
            new.threshold > old.threshold)  # fmt: skip
        out.append((f"threshold {old.threshold} -> {new.threshold}", "raises" if looser else "lowers"))
    if old.method != new.method:
        out.append((f"method {old.method} -> {new.method}", "neutral"))
    if old.min_sample != new.min_sample:
        out.append((f"min sample {old.min_sample} -> {new.min_sample}", "neutral"))
    if old.window != new.window:
        out.append((f"window {old.window} -> {new.window}", "neutral"))
    return out


def _by_name(section: str, old: Iterable[Grant] | Iterable[ActionRule] | Iterable[Stage] | Iterable[WindowRule],
             new: Iterable[Grant] | Iterable[ActionRule] | Iterable[Stage] | Iterable[WindowRule],
             added: Exposure, compare: object) -> list[DiffLine]:  # fmt: skip
    a = {x.name: x for x in old}
    b = {x.name: x for x in new}
    removed: Exposure = "lowers" if added == "raises" else "raises" if added == "lowers" else "neutral"
    out = [DiffLine(section=section, what=f"{n} added", exposure=added) for n in b if n not in a]
    out += [DiffLine(section=section, what=f"{n} removed", exposure=removed) for n in a if n not in b]
    for n in [n for n in a if n in b]:  # policy order, not a set's
        for what, exposure in compare(a[n], b[n]):  # type: ignore[operator]
            out.append(DiffLine(section=f"{section} {n}", what=what, exposure=exposure))
    return out


# --- every other field: one table names what each field of the policy model does to exposure ------------

Judge = Exposure | Literal["covered"] | Callable[[Any, Any], Exposure]


def _standing(old: Any, new: Any) -> Exposure:
    return "raises" if new is True or (new is None and old is False) else "lowers" if new is False else "neutral"


def _more(old: Any, new: Any) -> Exposure:
    """A number whose rise raises exposure."""
    return "raises" if (new or 0) > (old or 0) else "lowers"


def _held(old: Any, new: Any) -> Exposure:  # a safeguard: removing it raises exposure, adding it lowers it
    return "raises" if new is None else "lowers" if old is None else "neutral"


def _less(old: Any, new: Any) -> Exposure:
    """A number whose fall raises exposure."""
    return "lowers" if (new or 0) > (old or 0) else "raises"


FIELDS: dict[str, Judge] = {
    # For a list of members or of values: what adding one does (removing one does the opposite).
    # A member's name is its identity: a new name is a member added, and says so.
    "grants[].name": "covered", "actions[].name": "covered", "rollout.stages[].name": "covered",
    "quality.window[].name": "covered", "quality.checks[].name": "covered", "notifications[].name": "covered",
    "reviewers.people[].id": "covered", "reviewers.roles[].id": "covered",
    # Covered by the comparisons above, with words of their own.
    "grants": "covered", "grants[].records": "covered", "actions[].approval": "covered",
    "grants[].operations": "covered", "grants[].fields": "covered",
    "grants[].records.field": "covered", "grants[].records.in": "covered",
    "actions": "covered", "actions[].match.system": "covered", "actions[].match.resource": "covered",
    "actions[].match.operations": "covered", "actions[].match.when": "covered", "actions[].match.changes": "covered",
    "actions[].deny": "covered",
    "actions[].risk": "covered", "actions[].approval.reviewers": "covered", "actions[].approval.roles": "covered",
    "actions[].approval.quorum": "covered", "actions[].approval.separation_of_duties": "covered",
    "actions[].approval.expires_after": "covered", "actions[].approval.on_expiry": "covered",
    "actions[].approval.on_expiry.to_role": "covered", "actions[].approval.on_expiry.expires_after": "covered",
    "actions[].approval.signature_required": "covered", "actions[].approval.not_by": "covered",
    "actions[].approval.limits": "covered", "actions[].approval.limits.field": "covered",
    "actions[].approval.limits.currency": "covered", "actions[].approval.limits.currency_field": "covered",
    "actions[].approval.limits.up_to": "covered", "actions[].approval.limits.default": "covered",
    "actions[].approval.limits.window": "covered", "actions[].approval.limits.window.by": "covered",
    "actions[].approval.limits.window.over": "covered",
    "rollout.stages": "covered", "rollout.stages[].live_fraction": "covered", "rollout.stages[].min_runs": "covered",
    "rollout.stages[].min_duration": "covered", "rollout.stages[].gate": "covered",
    "rollout.stages[].promoters": "covered", "rollout.required": "covered",
    "quality.window": "covered", "quality.window[].threshold": "covered", "quality.window[].method": "covered",
    "quality.window[].min_sample": "covered", "quality.window[].window": "covered",
    "stop_rules": "covered", "stop_rules[].when": "covered", "stop_rules[].action": "covered",
    "identity.signed": "covered", "evidence.redact_fields": "covered", "identity.passkey": "covered",
    "identity.passkey_only": "covered", "identity.user_verification": "covered",
    "exceptions": "covered", "exceptions.handles": "covered", "exceptions.reviewers": "covered",
    "exceptions.roles": "covered", "exceptions.expires_after": "covered",
    # Authority: who someone is, what they may sign as, what a rule lets approvers delegate.
    "reviewers.people": "raises", "reviewers.people[].roles": "raises",
    "reviewers.people[].public_key": "raises",  # a replaced key: whoever holds the new one signs as that person
    "reviewers.roles": "neutral", "reviewers.roles[].description": "neutral",
    "reviewers.people[].name": "neutral",
    "actions[].approval.standing": _standing,
    "grants[].system": "raises", "grants[].resource": "raises", "grants[].void": "raises",
    # Who hears of a wait: a target gone or narrowed means fewer eyes; one redirected sends the news elsewhere.
    "notifications": "lowers", "notifications[].url": "raises", "notifications[].secret.env": "raises",
    "notifications[].secret.file": "raises", "notifications[].format": "neutral",
    "notifications[].rules": "lowers", "notifications[].roles": "lowers",
    # Quality gates: what they check and what they promise.
    "quality.checks": "lowers", "quality.checks[].score": "raises", "quality.checks[].min": _less,
    "quality.checks[].max": _more, "quality.window[].metric": "raises", "quality.window[].score": "raises",
    "quality.window[].statistic": "neutral", "quality.window[].confidence": _less,
    "quality.window[].margin": "neutral", "quality.window[].drop": _more,
    "quality.window[].false_pauses.at_most": "neutral", "quality.window[].false_pauses.per_runs": "neutral",
    "quality.window[].wrong_promotions": _more,
    "quality.false_pauses": "neutral", "quality.false_pauses.at_most": "neutral",
    "quality.false_pauses.per_runs": "neutral",
    "evidence.retention_days": _less,
    # A failed run's writes wait for someone who sees the failures (who may clear them); who may undo writes.
    "quality.hold_failed": _held, "quality.hold_failed.reviewers": "raises", "quality.hold_failed.roles": "raises",
    "quality.hold_failed.quorum": _less, "quality.hold_failed.expires_after": "neutral", "rollout.restore_by": "raises",
    "rollout.backtest": _held, "rollout.backtest.min_agreement": _less, "rollout.backtest.min_decided": _less,
    "rollout.backtest.max_rejected_proposed": _more,
    # What names the policy and who owns it.
    "version": "neutral", "name": "neutral", "description": "neutral", "owner.team": "neutral",
    "owner.contact": "neutral", "system_of_record": "neutral",
}  # fmt: skip
"""Every field of the policy model, by its path (``[]``: each member of a list): ``covered`` by a comparison
above, or what changing it does to exposure. A test walks the model, so a field added later is named here
before it ships; a field missing here anyway is reported as raising exposure."""


_FREE_FORM = ("actions[].match.when", "grants[].void")  # the author's own keys (a condition, a void image): whole


def _keyed(item: Any, index: int) -> str:
    for key in ("id", "name"):
        value = item.get(key) if isinstance(item, dict) else None
        if isinstance(value, str):
            return value
    return str(index)


def _leaves(value: Any, path: str = "", shape: str = "") -> Iterator[tuple[str, str, Any]]:
    """``(path, shape, value)`` of every leaf of a policy's JSON: ``actions[reply].approval.quorum`` is of the
    shape ``actions[].approval.quorum``; a list of named members is a leaf of its own (its membership)."""
    if isinstance(value, dict) and shape not in _FREE_FORM:
        for key, sub in value.items():
            yield from _leaves(sub, f"{path}.{key}" if path else key, f"{shape}.{key}" if shape else key)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        yield path, shape, sorted(_keyed(v, i) for i, v in enumerate(value))
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{_keyed(item, i)}]", f"{shape}[]")
    else:
        yield path, shape, value


def _fields(policy: Policy) -> dict[str, tuple[str, Any]]:
    return {path: (shape, value) for path, shape, value in _leaves(policy.model_dump(mode="json", by_alias=True))}


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _every_field(old: Policy, new: Policy) -> list[DiffLine]:
    """A line for every changed field that the comparisons above do not cover, judged by ``FIELDS``."""
    a, b = _fields(old), _fields(new)
    out: list[DiffLine] = []
    for path in [*a, *(p for p in b if p not in a)]:
        shape = (a.get(path) or b[path])[0]
        before = a[path][1] if path in a else None
        after = b[path][1] if path in b else None
        judge = FIELDS.get(shape, "raises")
        if before == after or judge == "covered" or _in_a_member_one_side_lacks(path, a, b):
            continue
        if isinstance(before, list) and isinstance(after, list):  # members: named, or plain values
            wider: Exposure = judge if judge == "raises" or judge == "lowers" else "neutral"
            for what, exposure in _sets("", map(str, before), map(str, after), wider):
                out.append(DiffLine(section=path, what=what.strip(), exposure=exposure))
            continue
        exposure = judge(before, after) if callable(judge) else judge
        out.append(DiffLine(section=path, what=f"{_shown(before)} -> {_shown(after)}", exposure=exposure))
    return out


def _in_a_member_one_side_lacks(path: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    """A field of a member (``actions[reply]``) only one policy has: the member's own line says it."""
    for end in (i for i, ch in enumerate(path) if ch == "]"):
        member = path[: end + 1]
        if any(k.startswith(member) for k in a) != any(k.startswith(member) for k in b):
            return True
    return False


def model_fields(model: type[BaseModel] = Policy, prefix: str = "") -> set[str]:
    """Every field path of the policy model (the shapes ``FIELDS`` names), from its definition: each leaf,
    each list of members, and each optional part (present or not)."""
    out: set[str] = set()
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}.{key}" if prefix else key
        inner = _models_in(field.annotation)
        # A leaf too where the field may hold something that is not a model (None, "reject").
        either = any(not _models_in(arg) for arg in typing.get_args(field.annotation)) and typing.get_origin(
            field.annotation
        ) in (Union, types.UnionType)
        if not inner or any(member for _, member in inner) or either or path in _FREE_FORM:
            out.add(path)
        if path not in _FREE_FORM:
            for sub, member in inner:
                out |= model_fields(sub, f"{path}[]" if member else path)
    return out


def _models_in(annotation: Any) -> list[tuple[type[BaseModel], bool]]:
    """The models a field holds, and whether as members of a tuple."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, False)]
    if origin in (Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    if origin is tuple:
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return [(m, True) for arg in args for m, _ in _models_in(arg)]
    return []


def diff(old: Policy, new: Policy) -> list[DiffLine]:
    """Every semantic change from ``old`` to ``new``, in policy order."""
    out = _by_name("grant", old.grants, new.grants, "raises", _grant)
    # A new rule may add review (approval) or remove it (an allow-all); a removed rule lets its actions
    # fall to the next rule or to "no rule: denied": the per-field lines say which.
    out += _by_name("rule", old.actions, new.actions, "neutral", lambda a, b: _rule(a, b, old, new))
    out += _by_name("stage", old.rollout.stages, new.rollout.stages, "neutral", _stage)
    if old.rollout.required != new.rollout.required:
        on = new.rollout.required
        out.append(DiffLine(section="rollout", what=f"required {'on' if on else 'off'}",
                            exposure="lowers" if on else "raises"))  # fmt: skip
    out += _by_name("quality rule", old.quality.window, new.quality.window, "lowers", _window)
    a_stop = {(s.when, s.action) for s in old.stop_rules}
    b_stop = {(s.when, s.action) for s in new.stop_rules}
    out += [DiffLine(section="stop rule", what=f"{w} -> {act} added", exposure="lowers") for w, act in b_stop - a_stop]
    out += [
        DiffLine(section="stop rule", what=f"{w} -> {act} removed", exposure="raises") for w, act in a_stop - b_stop
    ]
    a_sig, b_sig = set(old.identity.signed), set(new.identity.signed)
    for what, exposure in _sets("signed acts", a_sig, b_sig, "lowers"):
        out.append(DiffLine(section="identity", what=what, exposure=exposure))
    a_id, b_id = old.identity, new.identity
    for what, exposure in [
        *_sets("acts a passkey may sign", a_id.passkey, b_id.passkey, "neutral"),
        *_sets("acts only a passkey may sign", a_id.passkey_only, b_id.passkey_only, "lowers"),
    ]:
        out.append(DiffLine(section="identity", what=what, exposure=exposure))
    if a_id.user_verification != b_id.user_verification:
        looser: Exposure = "raises" if b_id.user_verification == "preferred" else "lowers"
        uv = f"passkey user verification {a_id.user_verification} -> {b_id.user_verification}"
        out.append(DiffLine(section="identity", what=uv, exposure=looser))
    if old.exceptions != new.exceptions:
        out.append(DiffLine(section="exceptions", what="exception route changed", exposure="neutral"))
    if old.evidence.redact_fields != new.evidence.redact_fields:
        for what, _ in _sets("redacted fields", old.evidence.redact_fields, new.evidence.redact_fields, "lowers"):
            out.append(DiffLine(section="evidence", what=what, exposure="neutral"))
    return out + _every_field(old, new)
