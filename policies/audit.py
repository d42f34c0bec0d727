"""The production-readiness report a team reads before launch: one line per question."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict

from govflow.policies.conditions import Compare
from govflow.policies.durations import format_duration
from govflow.policies.model import ActionRule, Policy
from govflow.policies.stats import expected_delay, promise
from govflow.policies.terms import WRITE_OPERATIONS

Status = Literal["ok", "gap", "blocking"]


class AuditLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    question: str
    status: Status
    detail: str


def _line(question: str, problems: list[str], ok_detail: str, status: Status = "blocking") -> AuditLine:
    if problems:
        return AuditLine(question=question, status=status, detail="; ".join(problems))
    return AuditLine(question=question, status="ok", detail=ok_detail)


def _ranges_cover(rules: list[ActionRule]) -> bool:
    """Whether rules that restrict (approval or deny), each on one field by numeric bounds alone, cover
    every value of that field together: e.g. ``amount <= 10000`` and ``amount > 10000``. A value that
    cannot be compared (missing, not a number) applies every restricting rule, so it is covered too."""
    fields = set()
    ranges: list[tuple[float, bool, float, bool]] = []  # low, low included, high, high included
    for rule in rules:
        if (rule.approval is None and rule.deny is None) or len(rule.match.when) != 1:
            return False
        ((name, condition),) = rule.match.when.items()
        if not isinstance(condition, Compare) or condition.in_ is not None or condition.ne is not None:
            return False
        fields.add(name)
        low, low_in, high, high_in = -math.inf, True, math.inf, True
        if condition.gt is not None:
            low, low_in = condition.gt, False
        if condition.gte is not None and condition.gte > low:
            low, low_in = condition.gte, True
        if condition.lt is not None:
            high, high_in = condition.lt, False
        if condition.lte is not None and condition.lte < high:
            high, high_in = condition.lte, True
        ranges.append((low, low_in, high, high_in))
    if len(fields) != 1:
        return False
    reach, reach_in = -math.inf, True  # everything below reach (and reach itself if reach_in) is covered
    for low, low_in, high, high_in in sorted(ranges, key=lambda r: (r[0], not r[1])):
        if low > reach or (low == reach and not (low_in or reach_in)):
            return False
        if high > reach or (high == reach and high_in):
            reach, reach_in = high, high_in
    return reach == math.inf


def audit(policy: Policy) -> list[AuditLine]:
    lines: list[AuditLine] = []
    systems = {g.system for g in policy.grants}

    problems = []
    if policy.system_of_record not in systems:
        problems.append(f"system of record {policy.system_of_record!r} has no grant")
    lines.append(
        _line(
            "Is there a named owner and a system of record?",
            problems,
            f"owner {policy.owner.team} ({policy.owner.contact}); system of record {policy.system_of_record}",
        )
    )

    uncovered = []
    for grant in policy.grants:
        for op in grant.operations:
            if op not in WRITE_OPERATIONS:
                continue
            rules = [
                r for r in policy.actions
                if r.match.system == grant.system
                and r.match.resource in (None, grant.resource)
                and (not r.match.operations or op in r.match.operations)
            ]  # fmt: skip
            if not any(not r.match.when for r in rules) and not _ranges_cover(rules):
                uncovered.append(f"{grant.system}.{grant.resource}.{op} (grant {grant.name}) has no rule")
    lines.append(
        _line(
            "Does every write the grants allow have an action rule?",
            [*uncovered, "writes without a rule are denied"] if uncovered else [],
            "every granted write is covered by a rule",
            status="gap",
        )
    )

    high = [r for r in policy.actions if r.risk == "high" and r.deny is None]
    problems = [f"high-risk rule {r.name} needs no approval" for r in high if r.approval is None]
    gated = [
        f"{r.name}: {r.approval.quorum} of {'/'.join([*r.approval.reviewers, *r.approval.roles])}, "
        f"expires after {format_duration(r.approval.expires_after)}"
        for r in high
        if r.approval is not None
    ]
    lines.append(
        _line(
            "Does every high-risk action stop for approval by named authority, with expiry?",
            problems,
            "; ".join(gated) if gated else "no high-risk actions",
        )
    )

    problems = []
    for r in policy.actions:
        if r.approval is None or r.approval.separation_of_duties:
            continue
        if r.risk in ("high", "medium"):
            problems.append(f"{r.risk}-risk rule {r.name} lets the requester approve")
    lines.append(
        _line(
            "Is separation of duties on where the risk calls for it?",
            problems,
            "on for every medium- and high-risk approval",
        )
    )

    lines.append(_impersonation(policy))
    lines.append(_duties_from_data(policy))
    lines += _data_and_models(policy)

    windows = {w.name: w for w in policy.quality.window}
    stops = [
        f"{s.when} ({windows[s.when].metric}, min sample {windows[s.when].min_sample}) -> {s.action}"
        for s in policy.stop_rules
        if s.when in windows
    ]
    lines.append(
        _line(
            "Are there stop rules that pause or roll back, on which metrics, with what minimum sample?",
            [] if stops else ["no stop rules: nothing pauses the rollout when quality drops"],
            "; ".join(stops),
        )
    )

    promises, problems = [], []
    for w in policy.quality.window:
        promises.append(f"{w.name}: {promise(w)}")
        if w.method == "window":
            problems.append(f"{w.name} uses method window: its false-pause rate grows with every run checked")
        elif expected_delay(w) > w.false_pauses.per_runs:
            problems.append(
                f"{w.name}: a fall to the level worth catching takes ~{expected_delay(w):.0f} runs to pause, more than "
                f"the {w.false_pauses.per_runs:,} runs its false-pause rate is stated over: it promises nothing useful"
            )
    lines.append(
        AuditLine(
            question="What does each quality rule promise, checked after every run?",
            status="gap" if problems else "ok",
            detail="; ".join(problems + promises) if policy.quality.window else "no quality rules",
        )
    )
    bound = policy.quality.false_pause_bound()
    if bound is not None:
        chance, runs = bound
        sequential = [w for w in policy.quality.window if w.method == "cusum"]
        parts = " + ".join(f"{w.name} {w.false_pauses.at_most:.2%}" for w in sequential)
        budget = policy.quality.false_pauses
        stated = (
            f"; the policy's budget is {budget.at_most:.2%} per {budget.per_runs:,} runs" if budget is not None else
            "; state one budget for the whole policy with quality.false_pauses and it is split over the rules"
        )  # fmt: skip
        lines.append(
            AuditLine(
                question="What does the whole policy promise? (a pause by any rule pauses the rollout)",
                status="ok",
                detail=f"false pauses at most {chance:.2%} per {runs:,} runs while every metric is fine: the sum "
                f"over its {len(sequential)} sequential rules ({parts}){stated}",
            )
        )

    first = policy.rollout.stages[0]
    lines.append(
        _line(
            "Is there a rollout plan that starts in shadow?",
            [] if first.live_fraction == 0.0 else [f"the first stage {first.name!r} is {first.live_fraction:.0%} live"],
            " -> ".join(f"{s.name} {s.live_fraction:.0%}" for s in policy.rollout.stages),
        )
    )

    lines.append(
        _line(
            "Can a live write happen without a running rollout?",
            []
            if policy.rollout.required
            else ["rollout.required is false: with no rollout running, live runs write by hand"],
            "no: a live run needs a running rollout of its task version (rollout.required)",
            status="gap",
        )
    )

    unsigned = [a for a in ("submit", "vote", "exception", "resume", "promote") if not policy.signs(a)]
    lines.append(
        _line(
            "Must people sign their acts, so a typed name cannot stand in for someone else?",
            [f"unsigned: {', '.join(unsigned)} (a typed name is trusted; see identity.signed)"] if unsigned else [],
            "submit, vote, exception, resume and promote are signed (identity.signed)",
            status="gap",
        )
    )

    problems = []
    if policy.exceptions is None:
        problems.append("no exception route: incomplete or contradictory input has nowhere to go")
    else:
        missing = {"incomplete_input", "contradictory_input"} - set(policy.exceptions.handles)
        if missing:
            problems.append(f"the exception route does not handle {', '.join(sorted(missing))}")
    ex = policy.exceptions
    lines.append(
        _line(
            "Is there an exception route for incomplete or contradictory input?",
            problems,
            f"to {'/'.join([*ex.reviewers, *ex.roles])}, expires after {format_duration(ex.expires_after)}"
            if ex
            else "",
        )
    )

    ev = policy.evidence
    lines.append(
        _line(
            "Are evidence retention and redaction set?",
            [] if ev.redact_fields else ["no redacted fields: personal data would be stored as is"],
            f"kept {ev.retention_days} days; redacted: {', '.join(ev.redact_fields)}",
            status="gap",
        )
    )

    problems = []
    signers: set[str] = set()
    for r in policy.actions:
        if r.approval is None or not (r.approval.signature_required or policy.signs("vote")):
            continue
        for pid in sorted(policy.eligible(r.approval.reviewers, r.approval.roles)):
            signers.add(pid)
            person = policy.person(pid)
            if person is not None and person.public_key is None:
                problems.append(f"{pid} must sign for {r.name} but has no public key")
    if policy.identity.signed:
        for person in policy.reviewers.people:
            if person.public_key is None and person.id not in signers:
                problems.append(f"{person.id} must sign {'/'.join(policy.identity.signed)} but has no public key")
            signers.add(person.id)
    lines.append(
        _line(
            "Do the reviewers who must sign have keys?",
            problems,
            f"keys on file for {', '.join(sorted(signers))}" if signers else "no rule requires signatures",
        )
    )
    return lines


def blocking(lines: list[AuditLine]) -> bool:
    return any(line.status == "blocking" for line in lines)


def _impersonation(policy: Policy) -> AuditLine:
    """Whether whoever controls the reviewer console (or the Temporal API) can approve in a reviewer's name:
    only an approval signed by the reviewer's own key or passkey, checked by the run, rules it out."""
    question = "Can the reviewer console, or anyone who controls it, approve in a reviewer's name?"
    gated = [r for r in policy.actions if r.approval is not None and r.deny is None]
    unsigned = [r for r in gated if not (r.approval and r.approval.signature_required) and not policy.signs("vote")]
    risky = [f"{r.risk}-risk rule {r.name}" for r in unsigned if r.risk in ("high", "medium")]
    if risky:
        return AuditLine(
            question=question, status="gap",
            detail=f"yes: approvals are unsigned for {', '.join(risky)}: a console, or anyone who can send Temporal "
            "updates, can vote as any reviewer (sign votes: identity.signed [vote], identity.passkey [vote])",
        )  # fmt: skip
    if not gated:
        return AuditLine(question=question, status="ok", detail="no rule waits for approval")
    how = (
        "a passkey only (identity.passkey_only): each approval is an assertion of the reviewer's own device over "
        "that act, checked by the run"
        if not policy.key_signs("vote")
        else "the reviewer's passkey or Ed25519 key file, checked by the run; the console holds neither"
        if policy.passkey_signs("vote")
        else "the reviewer's Ed25519 key file, checked by the run; the console holds none"
    )
    low = [r.name for r in unsigned]
    detail = f"no: every signed approval needs {how}" + (f"; unsigned low-risk rules: {', '.join(low)}" if low else "")
    return AuditLine(question=question, status="ok", detail=detail)


def _duties_from_data(policy: Policy) -> AuditLine:
    """Whether high-risk approvals keep out the people the records name (who ordered, who created), not
    only the run's requester: the first segregation-of-duties test an auditor runs."""
    question = "Do high-risk approvals keep out the people the records name (approval.not_by)?"
    high = [r for r in policy.actions if r.risk == "high" and r.approval is not None]
    drawn = [f"{r.name}: not by {', '.join(r.approval.not_by)}" for r in high if r.approval and r.approval.not_by]
    missing = [r.name for r in high if r.approval is not None and not r.approval.not_by]
    if missing:
        return AuditLine(
            question=question, status="gap",
            detail=f"{', '.join(missing)} keep(s) out the requester only: name the record fields whose people may "
            "not approve (e.g. purchase_order.requested_by)" + (f"; {'; '.join(drawn)}" if drawn else ""),
        )  # fmt: skip
    return AuditLine(question=question, status="ok", detail="; ".join(drawn) or "no high-risk approvals")


def _data_and_models(policy: Policy) -> list[AuditLine]:
    """Who may undo live writes, whether a failed run's writes wait for someone who sees the failures, and
    whether a new version must show a backtest before it rolls out."""
    restorers = ", ".join(policy.rollout.restore_by) or "whoever may resume (every stage's promoters)"
    signed = "signed" if policy.signs("restore") else "unsigned"
    high = [r.name for r in policy.actions if r.risk == "high"]
    hold = policy.quality.hold_failed
    bar = policy.rollout.backtest
    resumers = sorted(policy.rollout.resumers)
    return [
        AuditLine(question="Can a paused rollout be resumed? (any operator, and the stop rules, may pause it)",
                  status="ok" if resumers else "blocking",
                  detail=f"yes: by {', '.join(resumers)} (every stage's promoters)" if resumers else
                  "no: no stage names promoters, so a pause can never be lifted: name them on a stage "
                  "(rollout.stages[].promoters)"),
        AuditLine(question="Who may undo a rollout's live writes (rollback --data)?",
                  status="gap" if high and not policy.signs("restore") else "ok",
                  detail=f"{restorers}, {signed}" + ("; high-risk writes: require it signed (identity.signed "
                  "[restore])" if high and not policy.signs("restore") else "")),
        AuditLine(question="Do a failed run's live writes wait for someone who sees the failures?",
                  status="ok" if hold or not policy.quality.checks else "gap",
                  detail="yes: quality.hold_failed, to " + ", ".join([*hold.reviewers, *hold.roles]) if hold
                  else "no quality checks" if not policy.quality.checks else
                  "no: a run whose checks failed writes what its gates approve, failures unseen (quality.hold_failed)"),
        AuditLine(question="Must a new version show a backtest against the reviewers before it rolls out?",
                  status="ok" if bar else "gap",
                  detail=f"yes: agreement >= {bar.min_agreement} over >= {bar.min_decided} decisions, at most "
                  f"{bar.max_rejected_proposed if bar.max_rejected_proposed is not None else 'any'} rejected actions "
                  "proposed again" if bar else "no: rollout.backtest is unset (govflow backtest, README)"),
    ]  # fmt: skip
