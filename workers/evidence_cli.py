"""`govflow evidence show|export`: evidence an auditor can read, with or without govflow.

``show`` prints a run's timeline: what was read, proposed, decided, approved by
whom, and written with before and after. ``export`` writes a JSON bundle (every
event with its hashes, the run rows, the verification result) and a Markdown
report next to it. The report says how to recompute the chain without govflow.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError

from activities.evidence import EvidenceStore
from activities.evidence import checkpoint as cp
from activities.evidence.chain import GENESIS, Stream
from policies.errors import GovflowError
from workflows.run_models import RunResult

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


def describe(kind: str, p: dict[str, Any]) -> str:
    """One line for one event, in words."""
    if kind == "run_started":
        return (
            f"started {p.get('task')} v{p.get('task_version')} for item {p.get('item_key')}, "
            f"requested by {p.get('requester')}; mode {p.get('mode')}, stage {p.get('stage')}, "
            f"policy {str(p.get('policy_digest'))[:12]}"
        )
    if kind == "context_read":
        reads = p.get("reads", [])
        return "read " + ", ".join(f"{r['system']}/{r['resource']} {r['record_id']}" for r in reads)
    if kind == "model_call":
        return (
            f"model {p.get('model')} answered in {float(p.get('latency_ms') or 0):.1f} ms "
            f"({p.get('prompt_tokens')} + {p.get('completion_tokens')} tokens)"
        )
    if kind == "proposal":
        actions = p.get("actions", [])
        listed = "; ".join(
            f"{a['action_id']}: {a['operation']} {a['system']}/{a['resource']} {a.get('record_id') or ''} "
            f"{_short(a.get('fields', {}), 50)}".replace("  ", " ")
            for a in actions
        )
        return f"proposed {len(actions)} action(s): {listed}"
    if kind == "quality_score":
        return f"score {p.get('metric')} = {p.get('score')} ({'passed' if p.get('passed') else 'failed'})"
    if kind == "quality_check_failed":
        return f"quality check {p.get('check')} failed: {p.get('reason')}"
    if kind == "policy_decision":
        gates = (p.get("gate") or {}).get("gates", [])
        who = "; ".join(", ".join(g["eligible"]) for g in gates)
        return f"decided {p.get('action_id')}: {p.get('decision')} ({p.get('reason')})" + (
            f"; eligible: {who}" if who else ""
        )
    if kind == "approval_attempt":
        verdict = "accepted" if p.get("accepted") else "REFUSED"
        signed = ", signed" if p.get("signed") else ""
        return (
            f"{p.get('reviewer')} voted {p.get('verdict')} on {p.get('action_id')} via {p.get('via')}{signed}: "
            f"{verdict} ({p.get('reason')})"
        )
    if kind == "touched_record":
        verb = "wrote" if p.get("mode") == "live" else "would write (shadow)"
        return (
            f"{verb} {p.get('system')}/{p.get('resource')} {p.get('record_id')} ({p.get('operation')}): "
            f"{_changes(p.get('before_image'), p.get('after_image'))}"
        )
    if kind == "run_finished":
        actions = ", ".join(f"{a['action_id']} {a['status']}" for a in p.get("actions", []))
        return (
            f"finished: {p.get('outcome')}"
            + (f" [{actions}]" if actions else "")
            + (f" - {p['reason']}" if p.get("reason") else "")
        )
    if kind == "rollout_started":
        return f"rollout of {p.get('task')} v{p.get('task_version')} started at stage {p.get('stage')}, " + (
            f"policy {str(p.get('policy_digest'))[:12]}"
        )
    if kind == "breach":
        figures = "; ".join(
            f"{v['rule']} {float(v['estimate']):.2f} over {v['n']} runs (needs {v['threshold']})"
            + (
                f", evidence of a drop {float(v['statistic']):.1f} of {float(v['limit']):.1f}"
                if v.get("limit") is not None and v.get("statistic") is not None
                else ""
            )
            for v in p.get("verdicts", [])
            if v.get("estimate") is not None
        )
        return f"BREACH at stage {p.get('stage')} -> {p.get('action')}: {figures}"
    if kind in ("promoted", "rollback"):
        return f"{kind} from {p.get('from')} to {p.get('to')}: {p.get('reason')}"
    if kind in ("paused", "resume", "promote_refused"):
        accepted = "" if p.get("accepted", True) else " (refused)"
        return f"{kind.replace('_', ' ')} by {p.get('operator')} via {p.get('via')}{accepted}: {p.get('reason')}"
    return f"{kind.replace('_', ' ')}: {_short(p, 100)}"


async def _stream(store: EvidenceStore, stream: Stream, stream_id: str) -> list[dict[str, Any]]:
    events = await store.events(stream, stream_id)
    if not events:
        raise EvidenceNotFound(f"no evidence for {stream} {stream_id!r}: check the id (`govflow runs list`)")
    return events


def _when(at: datetime) -> str:
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


async def anchor_problem(store: EvidenceStore, client: Client, run_id: str) -> str | None:
    """Check a run's chain against its anchor outside the database: the chain head its workflow
    returned to Temporal. A tail removed with its head rewound, or a chain rehashed consistently,
    verifies inside the database but not against this. None when it matches."""
    try:
        handle = client.get_workflow_handle(run_id, result_type=RunResult)
        result: RunResult = await handle.result(rpc_timeout=timedelta(seconds=10))
    except (RPCError, WorkflowFailureError) as exc:
        return f"no anchor in Temporal for {run_id}: {exc}"
    if result.chain_head is None:
        return f"run {run_id} finished before its result carried a chain head: no anchor"
    events = await store.events("run", run_id)
    if len(events) != result.evidence_rows:
        return f"Temporal recorded {result.evidence_rows} rows for the run; the database holds {len(events)}"
    at = events[result.evidence_rows - 1] if result.evidence_rows else None
    if at is None or at["hash"] != result.chain_head:
        found = at["hash"][:12] if at else "nothing"
        return (
            f"row {result.evidence_rows} should carry the hash Temporal recorded ({result.chain_head[:12]}); "
            f"the database has {found}: the chain was rewritten"
        )
    return None


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


async def show(store: EvidenceStore, stream: Stream, stream_id: str) -> list[str]:
    events = await _stream(store, stream, stream_id)
    report = await store.verify(stream, stream_id)
    lines = [f"{stream} {stream_id}: {len(events)} events"]
    lines += [f"  {e['seq']:>3}  {_when(e['occurred_at'])}  {describe(e['kind'], e['payload'])}" for e in events]
    lines.append(f"chain verifies ({report.rows} rows)" if report.ok else f"chain does NOT verify: {report.problem}")
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
        "run": {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in (row or {}).items()},
        "verified": report.ok,
        "problems": [p.model_dump() for p in report.problems],
        "events": [_event_json(e) for e in events],
    }


async def bundle(store: EvidenceStore, stream: Stream, stream_id: str) -> dict[str, Any]:
    """The export: a run with its events, or a rollout with its events and every run it started."""
    if stream == "run":
        out = await _run_bundle(store, stream_id)
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
    writes = [e for e in run["events"] if e["kind"] == "touched_record"]
    votes = [e for e in run["events"] if e["kind"] == "approval_attempt"]
    if votes:
        lines += ["Approvals:", "", "| reviewer | verdict | action | accepted | reason |", "|---|---|---|---|---|"]
        for v in votes:
            p = v["payload"]
            lines.append(
                f"| {p['reviewer']} | {p['verdict']} | {p['action_id']} | {'yes' if p['accepted'] else 'no'} | "
                f"{str(p.get('reason', '')).replace('|', '/')} |"
            )
        lines.append("")
    if writes:
        lines += ["Records touched:", "", "| record | mode | before -> after |", "|---|---|---|"]
        for w in writes:
            p = w["payload"]
            change = _changes(p.get("before_image"), p.get("after_image")).replace("|", "/")
            lines.append(f"| {p['system']}/{p['resource']} {p['record_id']} | {p['mode']} | {change} |")
        lines.append("")
    return [*lines, "Timeline:", "", *_md_events(run["events"]), ""]


def markdown(b: dict[str, Any]) -> str:
    lines = [f"# Evidence: {b['stream']} `{b['stream_id']}`", ""]
    if b["stream"] == "run":
        lines += _md_run(b)
    else:
        runs = b["runs"]
        by: dict[tuple[str, str], int] = {}
        for r in runs:
            outcome = next((e["payload"].get("outcome") for e in r["events"] if e["kind"] == "run_finished"), "open")
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
