"""`govflow backtest`: a candidate task version (its task, model and policy) run on the recorded inputs of
past runs, scored against what the reviewers decided and against the old version's proposals.

Every chain read is verified first (what-if's reader: a chain that does not verify stops the backtest, named).
Each past run's context is rebuilt from its ``context_read`` row (no live reads, no writes); the candidate's
``propose`` is called with the candidate's model, a bounded number at a time. The report is itself evidence:
a ``backtest`` chain holding what was tried, on which runs, and the figures.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence.backtests import backtest_on_record, bar_missed
from govflow.activities.evidence.chain import EvidenceEvent
from govflow.activities.evidence.events import (
    ApprovalAttemptRecord,
    ContextRead,
    ExceptionDecided,
    ExceptionRaised,
    PolicyDecisionRecord,
    ProposalMade,
    QualityScoreRecord,
    RunRecord,
    RunReport,
    parse_event,
)
from govflow.activities.registry import Registration, Registry, UnknownTask
from govflow.policies import Action, RunContext, decide, run_checks
from govflow.policies.authority import reads_by_resource
from govflow.policies.errors import GovflowError
from govflow.whatif.collect import WhatIfError, _read_verified
from govflow.whatif.report import replay


class BacktestError(GovflowError):
    """The backtest cannot run: an unknown candidate, no evidence, chains that do not verify, contexts
    the candidate cannot read."""


@dataclass
class PastRun:
    run: RunRecord
    context: dict[str, Any] | None = None
    reads: dict[tuple[str, str, str], dict[str, Any] | None] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)
    """By action id: the binding human verdict (approve or reject) of an accepted vote by a person."""
    rules: dict[str, str] = field(default_factory=dict)
    """By action id: the rule the run's decision names (as its evidence records it)."""
    exception: str = ""
    """The problem the run went to a person with (incomplete_input, ...); empty when it went to nobody."""
    exception_decision: str = "undecided"


@dataclass(frozen=True)
class Judged:
    run_id: str
    action_id: str
    verdict: str
    """What the reviewer decided: approve or reject."""
    candidate: str
    """What the candidate proposes for it: same, changed (fields), or absent."""
    detail: str = ""


@dataclass
class BacktestReport:
    task: str
    candidate: str
    candidate_policy: str
    model: str
    stream_id: str
    runs_used: int
    skipped: dict[str, int]
    against_humans: dict[str, dict[str, dict[str, int]]]
    """Per rule, per human verdict: how many the candidate proposes the same, changed, or not at all."""
    agreement_with_approved: float | None
    decided: int
    """The human decisions the comparison rests on."""
    rejected_reproposed: list[Judged]
    disagreements: list[Judged]
    changes: dict[str, int]
    """Against the old version's proposals: unchanged, changed, appeared, disappeared."""
    checks_old: dict[str, float]
    checks_new: dict[str, float]
    scores: dict[str, dict[str, list[float]]]
    """Per score: old and new, min / median / max."""
    workload: dict[str, int]
    exceptions: dict[str, int]
    """Runs that went to a person on the exception route: the problem, their decision, and whether the
    candidate proposes on the recorded context (only runs that recorded one: a gather that failed did not)."""
    gate: list[str]
    """The candidate's outcomes, oldest first, through its policy's gates in the first stage: where it would
    have paused, or after how many runs it would have been ready to promote."""
    calls: dict[str, float]
    caveat: str

    def lines(self) -> list[str]:
        agree = "n/a" if self.agreement_with_approved is None else f"{self.agreement_with_approved:.3f}"
        out = [
            f"Backtest of {self.task} v{self.candidate} (model {self.model}, policy {self.candidate_policy[:12]}) "
            f"on {self.runs_used} past runs; evidence: {self.stream_id}",
            f"  skipped: {', '.join(f'{k} {v}' for k, v in self.skipped.items()) or 'none'}",
            f"  agreement with approved actions: {agree}",
            f"  rejected actions the candidate proposes again: {len(self.rejected_reproposed)}",
        ]
        out += [f"    {j.run_id} {j.action_id}: {j.detail}" for j in self.rejected_reproposed[:20]]
        for rule, by in sorted(self.against_humans.items()):
            out.append(f"  rule {rule}: " + "; ".join(f"{v}: {', '.join(f'{k} {n}' for k, n in sorted(c.items()))}"
                                                      for v, c in sorted(by.items())))  # fmt: skip
        out.append("  against the old version: " + ", ".join(f"{k} {v}" for k, v in sorted(self.changes.items())))
        for check in sorted(set(self.checks_old) | set(self.checks_new)):
            out.append(
                f"  check {check}: pass rate {self.checks_old.get(check, 0):.2f} -> {self.checks_new.get(check, 0):.2f}"
            )
        out += [f"  the gate: {line}" for line in self.gate]
        out += [f"  exception route: {k}: {n}" for k, n in sorted(self.exceptions.items())]
        out.append(
            "  workload under the candidate's policy: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.workload.items()))
        )
        c = self.calls
        out.append(f"  model calls: {int(c['n'])}, failed {int(c['failed'])}, tokens {int(c['prompt_tokens'])} prompt "
                   f"+ {int(c['completion_tokens'])} completion, latency ms min/median/max "
                   f"{c['min_ms']:.1f}/{c['median_ms']:.1f}/{c['max_ms']:.1f}")  # fmt: skip
        return [*out, f"  caveat: {self.caveat}"]


def candidate_registration(registry: Registry, task: str, version: str) -> Registration:
    try:
        return registry.get(task, version)
    except UnknownTask as exc:
        raise BacktestError(f"unknown candidate: {exc}") from None


async def past_runs(store: EvidenceStore, task: str, exclude: str, since: datetime | None, limit: int) -> list[PastRun]:
    """The task's runs (not the candidate version's own), newest first, each chain verified."""
    runs = [r for r in await store.task_runs(task, None, since, limit) if r.task_version != exclude]
    if not runs:
        raise BacktestError(f"no evidence of runs of task {task} (other than v{exclude}) to backtest on")
    by_id = {r.run_id: PastRun(r) for r in runs}

    def take(run_id: str, rows: list[dict[str, Any]]) -> None:
        past = by_id[run_id]
        for row in rows:
            event = parse_event(row["kind"], row["payload"])
            if isinstance(event, ContextRead):
                past.context = event.context
                past.reads.update({(r.system, r.resource, r.record_id): r.values for r in event.reads})
            elif isinstance(event, ProposalMade):
                past.actions = {a.action_id: a for a in event.actions}
            elif isinstance(event, QualityScoreRecord):
                past.scores[event.metric] = event.score
            elif isinstance(event, ApprovalAttemptRecord) and event.accepted and event.via not in ("grant", "expiry"):
                past.verdicts[event.action_id] = event.verdict
            elif isinstance(event, PolicyDecisionRecord):
                past.rules[event.action_id] = event.rule or event.decision
            elif isinstance(event, ExceptionRaised):
                past.exception = event.problem
            elif isinstance(event, ExceptionDecided) and event.accepted and event.decision:
                past.exception_decision = event.decision

    try:
        await _read_verified(store, "run", list(by_id), take)
    except WhatIfError as exc:
        raise BacktestError(str(exc).replace("what-if will not compute", "the backtest will not run")) from None
    return list(by_id.values())


def _same(old: Action, new: Action | None) -> tuple[str, str]:
    if new is None:
        return "absent", "the candidate proposes nothing for it"
    where = (old.system, old.resource, old.operation, old.record_id)
    if where != (new.system, new.resource, new.operation, new.record_id):
        return "changed", f"{old.target} {old.record_id} -> {new.target} {new.record_id}"
    diff = sorted(k for k in set(old.fields) | set(new.fields) if old.fields.get(k) != new.fields.get(k))
    return ("same", "the same action") if not diff else ("changed", f"fields differ: {', '.join(diff)}")


def _spread(values: list[float]) -> list[float]:
    return [min(values), statistics.median(values), max(values)] if values else []


async def backtest(
    store: EvidenceStore, registry: Registry, task: str, candidate: str, *, since: datetime | None = None,
    runs: int = 1_000_000, concurrency: int = 8,
) -> BacktestReport:  # fmt: skip
    reg = candidate_registration(registry, task, candidate)
    pasts = await past_runs(store, task, candidate, since, runs)
    skipped: Counter[str] = Counter()
    usable: list[tuple[PastRun, Any]] = []
    mismatch = ""
    for past in pasts:
        if past.context is None:
            skipped["no recorded context"] += 1
            continue
        try:
            usable.append((past, reg.task.context_model.model_validate(past.context)))
        except ValidationError as exc:
            skipped["context incomplete, redacted or of another type"] += 1
            mismatch = mismatch or str(exc.errors()[0]["loc"]) + ": " + exc.errors()[0]["msg"]
    if not usable:
        raise BacktestError(f"none of the {len(pasts)} recorded contexts reads as the candidate's "
                            f"{reg.task.context_model.__name__}" + (f" ({mismatch})" if mismatch else ""))  # fmt: skip
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    failed = 0
    model = _Counting(reg.model)

    async def one(context: Any) -> tuple[list[Action], dict[str, float]] | None:
        nonlocal failed
        async with gate:
            started = time.perf_counter()
            try:
                proposal = await reg.task.propose(context, model)
            except Exception:  # a failed proposal is a figure of the backtest, not its end
                failed += 1
                return None
            finally:
                latencies.append((time.perf_counter() - started) * 1000)
            return list(proposal.actions), dict(proposal.scores)

    answers = await asyncio.gather(*(one(context) for _, context in usable))
    report = await _report(store, reg, task, candidate, usable, answers, skipped, latencies, failed, model.tokens)
    return report


class _Counting:
    """The candidate's model, counting the tokens its answers report (a local model reports none)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)
        self.tokens = Counter[str]()

    async def complete(self, request: Any) -> Any:
        response = await self._inner.complete(request)
        self.tokens["prompt"] += response.prompt_tokens or 0
        self.tokens["completion"] += response.completion_tokens or 0
        return response


async def _report(store: EvidenceStore, reg: Registration, task: str, candidate: str,
                  usable: list[tuple[PastRun, Any]], answers: list[Any], skipped: Counter[str],
                  latencies: list[float], failed: int, tokens: Counter[str]) -> BacktestReport:  # fmt: skip
    humans: dict[str, dict[str, Counter[str]]] = {}
    rejected, disagree = [], []
    changes: Counter[str] = Counter()
    old_checks: dict[str, list[bool]] = {}
    new_checks: dict[str, list[bool]] = {}
    scores: dict[str, dict[str, list[float]]] = {}
    workload: Counter[str] = Counter()
    exceptions: Counter[str] = Counter()
    stage = reg.policy.rollout.stages[0].name
    reports: list[RunReport] = []
    for (past, _), answer in zip(usable, answers, strict=True):
        if past.exception:  # what a person decided, and whether the candidate now proposes
            now = "fails" if answer is None else "proposes"
            exceptions[f"{past.exception}: {past.exception_decision}; the candidate {now}"] += 1
        if answer is None:
            reports.append(RunReport(run_id=past.run.run_id, stage=stage, mode="shadow", checks_passed=False,
                                     error=True))  # fmt: skip
            continue
        new_actions, new_scores = answer
        new = {a.action_id: a for a in new_actions}
        for r in run_checks(reg.policy, past.scores):
            old_checks.setdefault(r.check, []).append(r.passed)
        for r in run_checks(reg.policy, new_scores):
            new_checks.setdefault(r.check, []).append(r.passed)
        for name, value in past.scores.items():
            scores.setdefault(name, {"old": [], "new": []})["old"].append(value)
        for name, value in new_scores.items():
            scores.setdefault(name, {"old": [], "new": []})["new"].append(value)
        for action_id, old in past.actions.items():
            same, detail = _same(old, new.get(action_id))
            changes["unchanged" if same == "same" else "changed" if same == "changed" else "disappeared"] += 1
            verdict = past.verdicts.get(action_id)
            if verdict is None:
                continue
            rule = past.rules.get(action_id, "-")
            humans.setdefault(rule, {}).setdefault(verdict, Counter())[same] += 1
            judged = Judged(past.run.run_id, action_id, verdict, same, detail)
            if verdict == "reject" and same == "same":
                rejected.append(judged)
            elif verdict == "approve" and same != "same":
                disagree.append(judged)
        changes["appeared"] += len(set(new) - set(past.actions))
        overridden = any(j.run_id == past.run.run_id for j in rejected)
        passed = all(r.passed for r in run_checks(reg.policy, new_scores))
        reports.append(RunReport(run_id=past.run.run_id, stage=stage, mode="shadow", checks_passed=passed,
                                 scores=new_scores, overridden=overridden))  # fmt: skip
        ctx = RunContext(run_id=past.run.run_id, requester=past.run.requester, now=past.run.started_at,
                         reads=reads_by_resource(past.reads))  # fmt: skip
        for action in new.values():
            record = past.reads.get((action.system, action.resource, action.record_id or ""))
            workload[decide(reg.policy, action, ctx.model_copy(update={"record": record})).kind] += 1
    approved = sum(c.get("same", 0) for by in humans.values() for v, c in by.items() if v == "approve")
    approved_all = sum(sum(c.values()) for by in humans.values() for v, c in by.items() if v == "approve")
    decided = sum(sum(c.values()) for by in humans.values() for c in by.values())
    caveat = (f"reviewers saw the old version's proposals: agreement rests on {decided} human decisions about "
              f"them ({approved_all} approvals), so it leans towards the old version; an action the old version "
              "never proposed has no human verdict here")  # fmt: skip
    calls = {"n": float(len(latencies)), "failed": float(failed), "prompt_tokens": float(tokens["prompt"]),
             "completion_tokens": float(tokens["completion"]), **{f"{k}_ms": v for k, v in
             zip(("min", "median", "max"), _spread(latencies) or [0.0, 0.0, 0.0], strict=True)}}  # fmt: skip
    report = BacktestReport(
        task=task, candidate=candidate, candidate_policy=reg.digest,
        model=getattr(reg.model, "name", type(reg.model).__name__),
        stream_id=f"backtest-{task}-v{candidate}-{uuid.uuid4().hex[:8]}", runs_used=len(usable), skipped=dict(skipped),
        against_humans={r: {v: dict(c) for v, c in by.items()} for r, by in humans.items()},
        agreement_with_approved=approved / approved_all if approved_all else None, decided=decided,
        rejected_reproposed=rejected, disagreements=disagree, changes=dict(changes),
        checks_old={k: sum(v) / len(v) for k, v in old_checks.items()},
        checks_new={k: sum(v) / len(v) for k, v in new_checks.items()},
        scores={k: {w: _spread(x) for w, x in v.items()} for k, v in scores.items()},
        workload=dict(workload), calls=calls, caveat=caveat, exceptions=dict(exceptions),
        gate=replay(reg.policy, "backtest", [], list(reversed(reports))).candidate,
    )  # fmt: skip
    await _record(store, report, [p.run.run_id for p, _ in usable])
    return report


async def _record(store: EvidenceStore, report: BacktestReport, run_ids: list[str]) -> None:
    """The backtest as evidence: what was tried (candidate, policy digest, model), on which runs, the figures."""
    at = datetime.now(UTC)
    payloads = [
        ("backtest_started", {"task": report.task, "candidate": report.candidate, "model": report.model,
                              "policy_digest": report.candidate_policy, "runs": run_ids}),
        ("backtest_reported", {k: v for k, v in asdict(report).items() if k not in ("stream_id",)}),
    ]  # fmt: skip
    batch = [(EvidenceEvent(stream="backtest", stream_id=report.stream_id, seq=i + 1, kind=kind, occurred_at=at,
                            payload=payload), None) for i, (kind, payload) in enumerate(payloads)]  # fmt: skip
    await store.append_many(batch)


__all__ = ["BacktestError", "BacktestReport", "backtest", "backtest_on_record", "bar_missed"]
