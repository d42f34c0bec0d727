"""A semantic diff of two policies: what changed, each line marked as raising or lowering exposure.

Exposure is what a run may write and how little review stands in its way: a wider grant, a lower
quorum, a dropped signature or a looser gate raise it; the opposite lowers it. Changes that neither
widen nor narrow (a renamed owner, a description) are ``neutral``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel

from policies.durations import format_duration
from policies.model import ActionRule, Grant, Policy, Stage, WindowRule

Exposure = Literal["raises", "lowers", "neutral"]


class DiffLine(BaseModel):
    section: str
    what: str
    exposure: Exposure

    def __str__(self) -> str:
        mark = {"raises": "+ raises", "lowers": "- lowers", "neutral": "  neutral"}[self.exposure]
        return f"[{mark:>9}] {self.section}: {self.what}"


def _sets(name: str, old: Iterable[str], new: Iterable[str], wider: Exposure) -> list[tuple[str, Exposure]]:
    """Added and removed members; ``wider`` is what an addition does to exposure."""
    narrower: Exposure = "lowers" if wider == "raises" else "raises"
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
    if old.risk != new.risk:
        out.append((f"risk {old.risk} -> {new.risk}", "neutral"))
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
    if old.exceptions != new.exceptions:
        out.append(DiffLine(section="exceptions", what="exception route changed", exposure="neutral"))
    if old.evidence.redact_fields != new.evidence.redact_fields:
        for what, _ in _sets("redacted fields", old.evidence.redact_fields, new.evidence.redact_fields, "lowers"):
            out.append(DiffLine(section="evidence", what=what, exposure="neutral"))
    return out
