"""`govflow evidence show|export`: evidence an auditor can read, with or without govflow.

``show`` prints a run's timeline: what was read, proposed, decided, approved by
whom, and written with before and after. ``export`` writes a JSON bundle (every
event with its hashes, the run rows, the verification result) and a Markdown
report next to it. The report says how to recompute the chain without govflow.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence import checkpoint as cp
from govflow.activities.evidence.chain import GENESIS, Stream
from govflow.activities.evidence.events import (
    ApprovalAttemptRecord,
    BreachDetected,
    ContextRead,
    Event,
    GrantAct,
    GrantActivated,
    GrantEnded,
    GrantProposed,
    ModelCall,
    NotificationAbandoned,
    NotificationDelivered,
    NotificationFailed,
    NotificationRequested,
    OperatorAct,
    OtherEvent,
    PolicyDecisionRecord,
    ProposalMade,
    QualityCheckFailed,
    QualityScoreRecord,
    RolloutStarted,
    RunFinished,
    RunStarted,
    StageChanged,
    TouchedRecord,
    UnreadableEvent,
    parse_event,
)
from govflow.policies.errors import GovflowError

HOW_TO_VERIFY = f"""Each event's `hash` is the SHA-256 (hex) of the RFC 8785 canonical JSON of
`{{"stream", "stream_id", "seq", "kind", "occurred_at", "payload", "prev_hash"}}`, where
`occurred_at` is the UTC ISO 8601 text with microseconds (`2026-01-31T09:00:00.000000+00:00`)
and `prev_hash` is the previous event's `hash` (`{GENESIS[:8]}...`, 64 zeros, for seq 1).
Sequence numbers start at 1 and have no gaps. Any edit, deletion or reordering breaks it."""


class EvidenceNotFound(GovflowError):
    """No evidence under that id."""


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    before, after = before or {}, after or {}
    keys = [k for k in after if before.get(k) != after.get(k)]
    return "; ".join(f"{k}: {_short(before.get(k), 30)} -> {_short(after.get(k), 40)}" for k in keys) or "no change"


def describe(kind: str, payload: Any) -> str:
    """One line for one stored event, in words."""
    match parse_event(kind, payload):
        case RunStarted() as e:
            return (
                f"started {e.task} v{e.task_version} for item {e.item_key}, requested by {e.requester}; "
                f"mode {e.mode}, stage {e.stage}, policy {str(e.policy_digest)[:12]}"
            )
        case ContextRead() as e:
            return "read " + ", ".join(f"{r.system}/{r.resource} {r.record_id}" for r in e.reads)
        case ModelCall() as e:
            return (
                f"model {e.model} answered in {e.latency_ms:.1f} ms ({e.prompt_tokens} + {e.completion_tokens} tokens)"
            )
        case ProposalMade() as e:
            listed = "; ".join(
                f"{a.action_id}: {a.operation} {a.system}/{a.resource} {a.record_id or ''} "
                f"{_short(a.fields, 50)}".replace("  ", " ")
                for a in e.actions
            )
            return f"proposed {len(e.actions)} action(s): {listed}"
        case QualityScoreRecord() as e:
            return f"score {e.metric} = {e.score} ({'passed' if e.passed else 'failed'})"
        case QualityCheckFailed() as e:
            return f"quality check {e.check} failed: {e.reason}"
        case PolicyDecisionRecord() as e:
            who = "; ".join(", ".join(g.eligible) for g in e.gates)
            return f"decided {e.action_id}: {e.decision} ({e.reason})" + (f"; eligible: {who}" if who else "")
        case ApprovalAttemptRecord() as e:
            signed = ", signed" if e.signed else ""
            verdict = "accepted" if e.accepted else "REFUSED"
            return f"{e.reviewer} voted {e.verdict} on {e.action_id} via {e.via}{signed}: {verdict} ({e.reason})"
        case TouchedRecord() as e:
            verb = "wrote" if e.mode == "live" else "would write (shadow)"
            return (
                f"{verb} {e.system}/{e.resource} {e.record_id} ({e.operation}): "
                f"{_changes(e.before_image, e.after_image)}"
            )
        case RunFinished() as e:
            actions = ", ".join(f"{a.action_id} {a.status}" for a in e.actions)
            why = f" - {e.reason}" if e.reason else ""
            return f"finished: {e.outcome}" + (f" [{actions}]" if actions else "") + why
        case RolloutStarted() as e:
            return f"rollout of {e.task} v{e.task_version} started at stage {e.stage}, policy {e.policy_digest[:12]}"
        case BreachDetected() as e:
            figures = "; ".join(
                f"{v.rule} {v.estimate:.2f} over {v.n} runs (needs {v.threshold})"
                + (
                    f", evidence of a drop {v.statistic:.1f} of {v.limit:.1f}"
                    if v.limit is not None and v.statistic is not None
                    else ""
                )
                for v in e.verdicts
                if v.estimate is not None
            )
            return f"BREACH at stage {e.stage} -> {e.action}: {figures}"
        case StageChanged() as e:
            return f"{e.kind.replace('_', ' ')} from {e.from_stage} to {e.to}: {e.reason}"
        case OperatorAct() as e:
            refused = "" if e.accepted else " (refused)"
            return f"{e.kind.replace('_', ' ')} by {e.operator} via {e.via}{refused}: {e.reason}"
        case NotificationRequested() as e:
            return f"announce to {e.target} that run {e.run_id} is {e.transition}: {', '.join(e.actions)} ({e.url})"
        case NotificationDelivered() as e:
            return f"delivered to {e.target} on attempt {e.attempt} (HTTP {e.status})"
        case NotificationFailed() as e:
            retry = f"; next attempt in {e.retry_in_s:.0f} s" if e.retry_in_s is not None else ""
            return f"attempt {e.attempt} to {e.target} FAILED: {e.detail}{retry}"
        case NotificationAbandoned() as e:
            return f"GAVE UP announcing to {e.target} after {e.attempts} attempts: {e.detail}"
        case GrantProposed() as e:
            return (f"{e.proposed_by} proposed a standing approval for rule {e.rule} of {e.task} v{e.task_version}: "
                    f"match {_short(e.match, 60)}, at most {e.max_uses} uses, until {e.expires_at.isoformat()}; "
                    f"needs {e.quorum} granter(s)")  # fmt: skip
        case GrantAct() as e:
            signed = ", signed" if e.signed else ""
            return f"{e.person} {e.act}{signed}: {'accepted' if e.accepted else 'REFUSED'} ({e.reason})"
        case GrantActivated() as e:
            return f"active: granted by {', '.join(e.granted_by)}"
        case GrantEnded() as e:
            return f"ended: {e.status}" + (f" by {e.by}" if e.by else "") + (f": {e.reason}" if e.reason else "")
        case UnreadableEvent() as e:
            return f"UNREADABLE {kind}: {e.problem}; payload {_short(e.raw, 80)}"
        case e:
            return f"{kind.replace('_', ' ')}: {_short(e.payload() if not isinstance(e, OtherEvent) else payload, 100)}"


E = TypeVar("E", bound=Event)


def _events(bundle: dict[str, Any], of: type[E]) -> list[E]:
    """A bundle's events of one type, parsed."""
    parsed = (parse_event(e["kind"], e["payload"]) for e in bundle["events"])
    return [e for e in parsed if isinstance(e, of)]


async def _stream(store: EvidenceStore, stream: Stream, stream_id: str) -> list[dict[str, Any]]:
    events = await store.events(stream, stream_id)
    if not events:
        raise EvidenceNotFound(f"no evidence for {stream} {stream_id!r}: check the id (`govflow runs list`)")
    return events


def _when(at: datetime) -> str:
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


async def take_checkpoint(store: EvidenceStore, key: Any) -> cp.SignedCheckpoint:
    """Sign every stream's current head (read from the rows, not from ``chain_heads``)."""
    return cp.sign(await store.heads(), key, datetime.now(UTC))


async def checkpoint_problems(store: EvidenceStore, signed: cp.SignedCheckpoint) -> list[str]:
    """Every way the database disagrees with a checkpoint: a checkpointed row gone or carrying
    another hash (a rewound tail, a consistent rehash), or a checkpointed chain that no longer
    verifies from genesis. Rows appended after the checkpoint are fine; they must chain on."""
    problems: list[str] = []
    for head in signed.checkpoint.heads:
        problem = cp.head_problem(head, await store.hash_at(head.stream, head.stream_id, head.seq))
        if problem is None:
            report = await store.verify(head.stream, head.stream_id)
            if not report.ok and report.first_problem is not None:
                problem = f"{head.stream} {head.stream_id}: {report.first_problem.problem}"
        if problem is not None:
            problems.append(problem)
    return problems


def stream_of(stream_id: str | None, rollout: bool) -> Stream:
    """Which chain an evidence command names: ``--rollout``, a notification's or a grant's id (their
    workflows' ids: ``notify-...``, ``grant-...``), else a run."""
    ident = stream_id or ""
    if rollout:
        return "rollout"
    return "notification" if ident.startswith("notify-") else "grant" if ident.startswith("grant-") else "run"


async def show(store: EvidenceStore, stream: Stream, stream_id: str) -> list[str]:
    if stream == "run" and "@" in stream_id and await store.next_seq("refused_start", stream_id) > 1:
        stream = "refused_start"  # a refused second start under a run id: ``<run id>@<Temporal run id>``
    events = await _stream(store, stream, stream_id)
    report = await store.verify(stream, stream_id)
    lines = [f"{stream} {stream_id}: {len(events)} events"]
    lines += [f"  {e['seq']:>3}  {_when(e['occurred_at'])}  {describe(e['kind'], e['payload'])}" for e in events]
    lines.append(f"chain verifies ({report.rows} rows)" if report.ok else f"chain does NOT verify: {report.problem}")
    if stream == "run":
        for n in await store.run_notifications(stream_id):
            last = describe(n["last_kind"], n["last_payload"])
            lines.append(f"notified {n['target']} ({n['transition']}): {last}  [evidence show {n['notification_id']}]")
        for refused in await store.refused_starts(stream_id):
            lines.append(f"a second start under this run id was REFUSED  [evidence show {refused}]")
    return lines


def _event_json(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": e["seq"],
        "kind": e["kind"],
        "occurred_at": e["occurred_at"].astimezone(UTC).isoformat(timespec="microseconds"),
        "recorded_at": e["recorded_at"].isoformat(timespec="microseconds"),
        "payload": e["payload"],
        "prev_hash": e["prev_hash"],
        "hash": e["hash"],
        "summary": describe(e["kind"], e["payload"]),
    }


async def _run_bundle(store: EvidenceStore, run_id: str) -> dict[str, Any]:
    events = await _stream(store, "run", run_id)
    row = await store.run(run_id)
    report = await store.verify("run", run_id)
    return {
        "stream": "run",
        "stream_id": run_id,
        "run": row.model_dump(mode="json") if row else {},
        "verified": report.ok,
        "problems": [p.model_dump() for p in report.problems],
        "events": [_event_json(e) for e in events],
    }


async def bundle(store: EvidenceStore, stream: Stream, stream_id: str) -> dict[str, Any]:
    """The export: a run with its events, or a rollout with its events and every run it started."""
    if stream == "run":
        out = await _run_bundle(store, stream_id)
    elif stream in ("grant", "notification"):  # a chain of its own: its events, verified
        events = await _stream(store, stream, stream_id)
        report = await store.verify(stream, stream_id)
        out = {
            "stream": stream, "stream_id": stream_id, "verified": report.ok,
            "problems": [p.model_dump() for p in report.problems], "events": [_event_json(e) for e in events],
        }  # fmt: skip
    else:
        events = await _stream(store, "rollout", stream_id)
        report = await store.verify("rollout", stream_id)
        run_ids = await store.rollout_runs(stream_id)
        out = {
            "stream": "rollout",
            "stream_id": stream_id,
            "verified": report.ok,
            "problems": [p.model_dump() for p in report.problems],
            "events": [_event_json(e) for e in events],
            "runs": [await _run_bundle(store, r) for r in run_ids],
        }
    out["how_to_verify"] = HOW_TO_VERIFY
    out["format"] = "govflow-evidence-bundle/1"
    return out


def _md_events(events: list[dict[str, Any]]) -> list[str]:
    lines = ["| seq | at (UTC) | what | hash |", "|---|---|---|---|"]
    for e in events:
        what = e["summary"].replace("|", "\\|")
        lines.append(f"| {e['seq']} | {e['occurred_at'][:23]} | {what} | `{e['hash'][:12]}` |")
    return lines


def _md_run(run: dict[str, Any], level: str = "##") -> list[str]:
    info = run["run"]
    lines = [
        f"{level} Run `{run['stream_id']}`",
        "",
        f"- task **{info.get('task')}** v{info.get('task_version')}, item `{info.get('item_key')}`, "
        f"requested by **{info.get('requester')}**",
        f"- mode **{info.get('mode')}**, stage {info.get('stage')}, rollout `{info.get('rollout_id') or '-'}`",
        f"- policy digest `{info.get('policy_digest')}`",
        f"- chain: **{'verifies' if run['verified'] else 'DOES NOT VERIFY'}** ({len(run['events'])} events)",
        "",
    ]
    events = [parse_event(e["kind"], e["payload"]) for e in run["events"]]
    votes = [e for e in events if isinstance(e, ApprovalAttemptRecord)]
    writes = [e for e in events if isinstance(e, TouchedRecord)]
    if votes:
        lines += ["Approvals:", "", "| reviewer | verdict | action | accepted | reason |", "|---|---|---|---|---|"]
        for v in votes:
            lines.append(
                f"| {v.reviewer} | {v.verdict} | {v.action_id} | {'yes' if v.accepted else 'no'} | "
                f"{v.reason.replace('|', '/')} |"
            )
        lines.append("")
    if writes:
        lines += ["Records touched:", "", "| record | mode | before -> after |", "|---|---|---|"]
        for w in writes:
            change = _changes(w.before_image, w.after_image).replace("|", "/")
            lines.append(f"| {w.system}/{w.resource} {w.record_id} | {w.mode} | {change} |")
        lines.append("")
    return [*lines, "Timeline:", "", *_md_events(run["events"]), ""]


def markdown(b: dict[str, Any]) -> str:
    lines = [f"# Evidence: {b['stream']} `{b['stream_id']}`", ""]
    if b["stream"] == "run":
        lines += _md_run(b)
    elif b["stream"] in ("grant", "notification"):
        verdict = "verifies" if b["verified"] else "DOES NOT VERIFY"
        lines += [f"- chain: **{verdict}** ({len(b['events'])} events)", "", *_md_events(b["events"]), ""]
    else:
        runs = b["runs"]
        by: dict[tuple[str, str], int] = {}
        for r in runs:
            outcome = next((e.outcome for e in _events(r, RunFinished)), "open")
            key = (str(r["run"].get("mode")), str(outcome))
            by[key] = by.get(key, 0) + 1
        lines += [
            f"- rollout chain: **{'verifies' if b['verified'] else 'DOES NOT VERIFY'}** ({len(b['events'])} events)",
            f"- runs: {len(runs)}; chains that do not verify: {sum(not r['verified'] for r in runs)}",
            "",
            "| mode | outcome | runs |",
            "|---|---|---|",
            *[f"| {m} | {o} | {n} |" for (m, o), n in sorted(by.items())],
            "",
            "## Rollout events",
            "",
            *_md_events(b["events"]),
            "",
        ]
        for r in runs:
            lines += _md_run(r, "###")
    lines += ["## How to verify without govflow", "", HOW_TO_VERIFY, ""]
    return "\n".join(lines)


def write_export(b: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """Write ``<id>.json`` and ``<id>.md`` into ``folder``."""
    stream_id = b["stream_id"]
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"{stream_id}.json", folder / f"{stream_id}.md"
    json_path.write_text(json.dumps(b, indent=2, default=str) + "\n")
    md_path.write_text(markdown(b))
    return json_path, md_path
