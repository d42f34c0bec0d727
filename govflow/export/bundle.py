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
    Event,
    RunFinished,
    TouchedRecord,
    changes,
    describe,
    parse_event,
)
from govflow.policies.errors import GovflowError

HOW_TO_VERIFY = f"""Each event's `hash` is the SHA-256 (hex) of the RFC 8785 canonical JSON of
`{{"stream", "stream_id", "seq", "kind", "occurred_at", "payload", "prev_hash"}}`, where
`occurred_at` is the UTC ISO 8601 text with microseconds (`2026-01-31T09:00:00.000000+00:00`)
and `prev_hash` is the previous event's `hash` (`{GENESIS[:8]}...`, 64 zeros, for seq 1).
Sequence numbers start at 1 and have no gaps. Any edit, deletion or reordering breaks it."""


HASH_COVERS = {
    "event.hash": "sha256 of the RFC 8785 JSON of {stream, stream_id, seq, kind, occurred_at, payload, prev_hash}",
    "not covered by event hashes": "recorded_at (when the database stored the row), summary (derived text), the "
    "run header (a projection of run_started), verified/problems (this export's own check), policy_chains' "
    "verified, how_to_verify, hash_covers, format: all covered by the bundle's signature (<file>.sig.json: "
    "Ed25519 over the file's exact bytes)",
    "checkpoint.signature": "Ed25519 over the RFC 8785 JSON of checkpoint {format, taken_at, heads}",
    "policy digest": "sha256 of the policy's text (its canonical JSON) as policy_recorded holds it",
    "submit signature": "Ed25519 over run_started.submit_message (RFC 8785 JSON: purpose govflow-submit-v1, "
    "subject = run id, task, task_version, item_key, item_digest, requester, mode)",
    "vote signature": "Ed25519 over the RFC 8785 JSON of "
    "{purpose: govflow-approval-v1, run_id, action_digest, verdict}",
    "clocks": "occurred_at is the workflow's clock when it decided (events of one workflow step share it); "
    "recorded_at is the evidence database's clock at commit; a system of record stamps its own writes later",
}


class EvidenceNotFound(GovflowError):
    """No evidence under that id."""


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
    out["policy_chains"] = await _policy_chains(store, out)
    out["how_to_verify"] = HOW_TO_VERIFY
    out["hash_covers"] = HASH_COVERS
    out["format"] = "govflow-evidence-bundle/2"
    return out


async def _policy_chains(store: EvidenceStore, b: dict[str, Any]) -> list[dict[str, Any]]:
    """The chains of the policies the bundle's runs decided under (their texts, by digest)."""
    digests = sorted({str(r["run"].get("policy_digest")) for r in [b, *b.get("runs", [])] if r.get("run")} - {"None"})
    found = []
    for digest in digests:
        events = await store.events("policy", digest)
        if events:
            report = await store.verify("policy", digest)
            found.append({"stream": "policy", "stream_id": digest, "verified": report.ok,
                          "events": [_event_json(e) for e in events]})  # fmt: skip
    return found


def seal(b: dict[str, Any], key: Any, at: datetime | None = None) -> dict[str, Any]:
    """``b`` with the checkpoint it is cut from: the head of each chain it holds, signed with ``key``."""
    lasts = [(c, c["events"][-1]) for c in [b, *b.get("runs", []), *b.get("policy_chains", [])] if c.get("events")]
    heads = [{"stream": c["stream"], "stream_id": c["stream_id"], "seq": e["seq"], "hash": e["hash"]} for c, e in lasts]
    return {**b, "checkpoint": cp.sign(heads, key, at or datetime.now(UTC)).model_dump(mode="json")}


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
        lines += [
            "Approvals:", "", "| reviewer | verdict | action | accepted | signed with | reason |",
            "|---|---|---|---|---|---|",
        ]  # fmt: skip
        for v in votes:
            lines.append(
                f"| {v.reviewer} | {v.verdict} | {v.action_id} | {'yes' if v.accepted else 'no'} | {_signed_with(v)} | "
                f"{v.reason.replace('|', '/')} |"
            )
        lines.append("")
    if writes:
        lines += ["Records touched:", "", "| record | mode | before -> after |", "|---|---|---|"]
        for w in writes:
            change = changes(w.before_image, w.after_image).replace("|", "/")
            lines.append(f"| {w.system}/{w.resource} {w.record_id} | {w.mode} | {change} |")
        lines.append("")
    return [*lines, "Timeline:", "", *_md_events(run["events"]), ""]


def _signed_with(vote: ApprovalAttemptRecord) -> str:
    """How a vote was signed: a passkey (its credential id, where it was made), an Ed25519 key, or not."""
    if vote.passkey:
        credential = vote.passkey.get("credential") or {}
        where = ", ".join(credential.get("origins") or []) or "no origin"
        return f"passkey `{str(credential.get('credential_id', ''))[:16]}…` ({where})"
    if vote.signature:
        return "Ed25519 key"
    return "unsigned" + (f" (console session {vote.session})" if vote.session else "")


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


def write_export(b: dict[str, Any], folder: Path, key: Any = None) -> tuple[Path, Path]:
    """Write ``<id>.json`` and ``<id>.md`` into ``folder``, with ``verify.py``; with ``key`` (the checkpoint
    key), the bundle is sealed (``seal``) and signed as a whole: ``<id>.sig.json``."""
    import base64
    import hashlib
    import shutil

    from govflow.export import verify_bundle

    stream_id = b["stream_id"]
    folder.mkdir(parents=True, exist_ok=True)
    if key is not None:
        b = seal(b, key)
    json_path, md_path = folder / f"{stream_id}.json", folder / f"{stream_id}.md"
    raw = (json.dumps(b, indent=2, default=str) + "\n").encode()
    json_path.write_bytes(raw)
    md_path.write_text(markdown(b))
    shutil.copyfile(verify_bundle.__file__, folder / "verify.py")
    if key is not None:
        public = cp.public_text(key.public_key())
        signature = {
            "format": "govflow-bundle-signature/1", "file": json_path.name, "sha256": hashlib.sha256(raw).hexdigest(),
            "public_key": public, "fingerprint": cp.key_fingerprint(public),
            "signature": base64.b64encode(key.sign(raw)).decode(),
        }  # fmt: skip
        (folder / f"{stream_id}.sig.json").write_text(json.dumps(signature, indent=2) + "\n")
    return json_path, md_path
