"""Population reports for auditors: every decision by approver, and every live write reconciled with the
system of record (`govflow report approvals | writes`). Read from the evidence; the writes report also
reads the system of record through the task's own connectors."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry

_DECISIONS = """
SELECT a.run_id, a.seq, a.action_id, a.reviewer, a.verdict, a.accepted, a.reason, a.signed, a.via,
       e.occurred_at AS at, r.task, r.task_version, r.item_key, r.requester, r.mode, d.rule,
       (SELECT x->'fields' FROM evidence_events p, jsonb_array_elements(p.payload->'actions') x
          WHERE p.stream = 'run' AND p.stream_id = a.run_id AND p.kind = 'proposal'
            AND x->>'action_id' = a.action_id LIMIT 1) AS fields
FROM approval_attempts a
JOIN runs r USING (run_id)
JOIN evidence_events e ON e.stream = 'run' AND e.stream_id = a.run_id AND e.seq = a.seq
LEFT JOIN policy_decisions d ON d.run_id = a.run_id AND d.action_id = a.action_id
WHERE ($1::text IS NULL OR r.task = $1) AND ($2::timestamptz IS NULL OR e.occurred_at >= $2)
ORDER BY e.occurred_at, a.run_id, a.seq
"""


@dataclass(frozen=True)
class Decision:
    """One approval attempt, accepted or refused, as the evidence holds it."""

    at: str
    run_id: str
    task: str
    task_version: str
    item_key: str
    requester: str
    action_id: str
    rule: str
    reviewer: str
    verdict: str
    accepted: bool
    signed: bool
    via: str
    amount: str
    currency: str
    reason: str


@dataclass
class ApproverTotals:
    reviewer: str
    approved: int = 0
    rejected: int = 0
    refused: int = 0
    amount_approved: Decimal = Decimal(0)
    share_of_approvals: float = 0.0


@dataclass
class ApprovalsReport:
    task: str | None
    since: str | None
    decisions: list[Decision]
    approvers: list[ApproverTotals] = field(default_factory=list)
    by_rule: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per rule: accepted approvals by approver (concentration)."""

    def lines(self) -> list[str]:
        out = [f"Approval decisions{' of ' + self.task if self.task else ''}"
               f"{' since ' + self.since if self.since else ''}: {len(self.decisions)} attempts"]  # fmt: skip
        out.append(f"  {'approver':<10} {'approved':>8} {'rejected':>8} {'refused':>8} {'amount approved':>18} share")
        for t in self.approvers:
            out.append(f"  {t.reviewer:<10} {t.approved:>8} {t.rejected:>8} {t.refused:>8} "
                       f"{t.amount_approved:>18,.2f} {t.share_of_approvals:.0%}")  # fmt: skip
        for rule, people in sorted(self.by_rule.items()):
            total = sum(people.values())
            top, n = max(people.items(), key=lambda kv: (kv[1], kv[0])) if people else ("-", 0)
            out.append(f"  rule {rule}: {total} approvals, {top} gave {n} ({n / total:.0%})" if total else
                       f"  rule {rule}: no accepted approvals")  # fmt: skip
        return out


def _amount(fields: Any) -> tuple[str, str]:
    values = json.loads(fields) if isinstance(fields, str) else (fields or {})
    raw = values.get("amount")
    try:
        return (str(Decimal(str(raw))) if raw is not None else "", str(values.get("currency", "")))
    except InvalidOperation:
        return "", str(values.get("currency", ""))


async def approvals_report(
    store: EvidenceStore, task: str | None = None, since: datetime | None = None
) -> ApprovalsReport:
    """Every approval attempt (accepted or refused) of ``task`` since ``since``, and totals by approver."""
    rows = await store.pool.fetch(_DECISIONS, task, since)
    decisions = []
    for r in rows:
        amount, currency = _amount(r["fields"])
        decisions.append(Decision(
            at=r["at"].isoformat(), run_id=r["run_id"], task=r["task"], task_version=r["task_version"],
            item_key=r["item_key"], requester=r["requester"], action_id=r["action_id"], rule=r["rule"] or "",
            reviewer=r["reviewer"], verdict=r["verdict"], accepted=r["accepted"], signed=r["signed"], via=r["via"],
            amount=amount, currency=currency, reason=r["reason"],
        ))  # fmt: skip
    totals: dict[str, ApproverTotals] = {}
    by_rule: dict[str, Counter[str]] = defaultdict(Counter)
    for d in decisions:
        t = totals.setdefault(d.reviewer, ApproverTotals(d.reviewer))
        if not d.accepted:
            t.refused += 1
        elif d.verdict == "approve":
            t.approved += 1
            t.amount_approved += Decimal(d.amount or 0)
            by_rule[d.rule or "-"][d.reviewer] += 1
        else:
            t.rejected += 1
    approvals = sum(t.approved for t in totals.values())
    for t in totals.values():
        t.share_of_approvals = t.approved / approvals if approvals else 0.0
    ordered = sorted(totals.values(), key=lambda t: (-t.approved, t.reviewer))
    return ApprovalsReport(task=task, since=since.isoformat() if since else None, decisions=decisions,
                           approvers=ordered, by_rule={k: dict(v) for k, v in by_rule.items()})  # fmt: skip


# --- live writes, reconciled ---------------------------------------------------------------------------

_WRITES = """
SELECT t.run_id, t.seq, t.action_id, t.system, t.resource, t.record_id, t.operation, t.idempotency_key,
       t.after_image, e.occurred_at AS at, r.task, r.task_version, r.requester,
       coalesce((SELECT array_agg(a.reviewer ORDER BY a.seq) FROM approval_attempts a WHERE a.run_id = t.run_id
                  AND a.action_id = t.action_id AND a.accepted AND a.verdict = 'approve'), '{}') AS approved_by
FROM touched_records t JOIN runs r USING (run_id)
JOIN evidence_events e ON e.stream = 'run' AND e.stream_id = t.run_id AND e.seq = t.seq
WHERE t.mode = 'live' AND r.task = $1
ORDER BY e.occurred_at, t.run_id, t.seq
"""


@dataclass(frozen=True)
class LiveWrite:
    at: str
    run_id: str
    action_id: str
    system: str
    resource: str
    record_id: str
    operation: str
    approved_by: list[str]
    in_system_of_record: bool


@dataclass
class WritesReport:
    task: str
    writes: list[LiveWrite]
    missing: list[LiveWrite] = field(default_factory=list)
    """Runs whose write the system of record does not hold (deleted, or never landed)."""
    without_a_run: list[dict[str, str]] = field(default_factory=list)
    """Records of the resources the task writes that no live run wrote (system, resource, record_id)."""

    def lines(self) -> list[str]:
        out = [f"Live writes of {self.task}: {len(self.writes)} (each with its run and approvals)"]
        out.append(f"  runs whose write the system of record does not hold: {len(self.missing)}")
        out += [f"    {w.system}.{w.resource} {w.record_id} (run {w.run_id}, {w.action_id})" for w in self.missing]
        out.append(f"  records in the system of record without a run: {len(self.without_a_run)}")
        out += [f"    {r['system']}.{r['resource']} {r['record_id']}" for r in self.without_a_run]
        return out


async def writes_report(store: EvidenceStore, registry: Registry, task: str, *, limit: int = 100_000) -> WritesReport:
    """Every live write of ``task`` with its run and approvals, reconciled with the system of record (read
    through the task's connectors): writes whose record is gone, and records no run wrote, in the resources
    the task's policy lets it create."""
    regs = [r for r in registry if r.task.name == task]
    if not regs:
        from govflow.policies.errors import GovflowError

        known = ", ".join(sorted({r.task.name for r in registry})) or "none"
        raise GovflowError(f"no task {task!r} is registered here (registered: {known})")
    connectors = {s: c for reg in regs for s, c in reg.connectors.items()}
    rows = await store.pool.fetch(_WRITES, task)
    writes: list[LiveWrite] = []
    written: set[tuple[str, str, str]] = set()
    for r in rows:
        key = (r["system"], r["resource"], r["record_id"])
        written.add(key)
        found = True
        if r["operation"] != "delete" and r["system"] in connectors:
            found = await connectors[r["system"]].read(r["resource"], r["record_id"]) is not None
        writes.append(LiveWrite(
            at=r["at"].isoformat(), run_id=r["run_id"], action_id=r["action_id"], system=r["system"],
            resource=r["resource"], record_id=r["record_id"], operation=r["operation"],
            approved_by=list(r["approved_by"]), in_system_of_record=found,
        ))  # fmt: skip
    created = {(g.system, g.resource) for reg in regs for g in reg.policy.grants if "create" in g.operations}
    without: list[dict[str, str]] = []
    for system, resource in sorted(created):
        finder = getattr(connectors.get(system), "find", None)
        if finder is None:
            continue
        for record_id in sorted(await finder(resource, {}, limit)):
            if (system, resource, record_id) not in written:
                without.append({"system": system, "resource": resource, "record_id": record_id})
    return WritesReport(task=task, writes=writes, missing=[w for w in writes if not w.in_system_of_record],
                        without_a_run=without)  # fmt: skip


# --- coverage: the items the system of record holds, against the items that went through a run ---------


@dataclass(frozen=True)
class ItemCoverage:
    item_key: str
    runs: int
    live: int
    outcomes: list[str]


@dataclass
class CoverageReport:
    task: str
    system: str
    resource: str
    items: list[ItemCoverage]
    not_in_system: list[str] = field(default_factory=list)
    """Item keys that went through a run but that the system of record does not hold."""

    @property
    def ran(self) -> int:
        return sum(1 for i in self.items if i.runs)

    def lines(self) -> list[str]:
        never = [i.item_key for i in self.items if not i.runs]
        live = sum(1 for i in self.items if i.live)
        out = [f"Coverage of {self.task}: {len(self.items)} items in {self.system}.{self.resource}, "
               f"{self.ran} went through a run ({live} live), {len(never)} never did"]  # fmt: skip
        outcomes = Counter(o for i in self.items for o in i.outcomes)
        out += [f"  run outcomes: {', '.join(f'{o} {n}' for o, n in sorted(outcomes.items()))}"] if outcomes else []
        out.append(f"  never run: {', '.join(never[:20])}{' ...' if len(never) > 20 else ''}" if never else
                   "  never run: none")  # fmt: skip
        if self.not_in_system:
            out.append(f"  runs of items the system of record does not hold: {', '.join(self.not_in_system)}")
        return out


_RUNS_BY_ITEM = """
SELECT r.item_key, count(*) AS runs, count(*) FILTER (WHERE r.mode = 'live') AS live,
       array_agg(coalesce(f.payload->>'outcome', 'running') ORDER BY r.started_at) AS outcomes
FROM runs r LEFT JOIN evidence_events f ON f.stream = 'run' AND f.stream_id = r.run_id AND f.kind = 'run_finished'
WHERE r.task = $1 GROUP BY r.item_key
"""


async def coverage_report(
    store: EvidenceStore, registry: Registry, task: str, *, limit: int = 100_000
) -> CoverageReport:
    """Every item the system of record holds for ``task`` (its ``population``), with the runs it went
    through; and runs of items the system does not hold."""
    from govflow.policies.errors import GovflowError

    regs = [r for r in registry if r.task.name == task]
    said = next((r.task.population for r in regs if r.task.population), None)
    if not regs or said is None:
        raise GovflowError(f"task {task!r} does not say how to count its items (Task.population): "
                           "no coverage to report" if regs else f"no task {task!r} is registered here")  # fmt: skip
    system, resource = said
    connector = next(r.connectors[system] for r in regs if system in r.connectors)
    finder = getattr(connector, "find", None)
    if finder is None:
        raise GovflowError(f"{system}'s connector cannot list {resource} records (it has no find)")
    held = sorted(await finder(resource, {}, limit))
    ran = {r["item_key"]: r for r in await store.pool.fetch(_RUNS_BY_ITEM, task)}
    none: dict[str, Any] = {"runs": 0, "live": 0, "outcomes": []}
    items = [
        ItemCoverage(item_key=k, runs=int(ran.get(k, none)["runs"]), live=int(ran.get(k, none)["live"]),
                     outcomes=list(ran.get(k, none)["outcomes"]))
        for k in held
    ]  # fmt: skip
    return CoverageReport(task=task, system=system, resource=resource, items=items,
                          not_in_system=sorted(set(ran) - set(held)))  # fmt: skip


def as_csv(rows: list[Any]) -> str:
    """Dataclass rows as CSV (lists joined with ';')."""
    if not rows:
        return ""
    buf = io.StringIO()
    dicts = [{k: ";".join(v) if isinstance(v, list) else v for k, v in asdict(r).items()} for r in rows]
    writer = csv.DictWriter(buf, fieldnames=list(dicts[0]))
    writer.writeheader()
    writer.writerows(dicts)
    return buf.getvalue()


def as_json(report: ApprovalsReport | WritesReport | CoverageReport) -> str:
    return json.dumps(asdict(report), indent=2, default=str) + "\n"
