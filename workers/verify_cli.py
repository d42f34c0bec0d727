"""`govflow evidence verify|checkpoint`: prove the evidence is what was written, with or without a signed
checkpoint kept outside the database."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence import checkpoint as cp
from govflow.activities.evidence.chain import VerifyReport
from govflow.activities.evidence.events import RunStarted, parse_event
from govflow.policies.errors import GovflowError
from govflow.workers.evidence_cli import checkpoint_problems, stream_of, take_checkpoint
from govflow.workers.keys import load_public_key, load_signing_key
from govflow.workers.settings import Settings
from govflow.workers.stack import database_url
from govflow.workers.temporal import connect
from govflow.workflows.run_models import RunResult

_RPC = timedelta(seconds=10)
_CONNECT_S = 10.0


def cmd_evidence_checkpoint(settings: Settings, args: argparse.Namespace) -> int:

    key = load_signing_key(args.key)
    out = Path(args.out)
    if out.is_dir():
        raise GovflowError(f"--out {out}: is a folder; name the checkpoint file to write")

    async def go() -> Any:
        async with EvidenceStore.open(database_url(settings)) as store:
            return await take_checkpoint(store, key)

    signed = asyncio.run(go())
    try:
        out.write_text(signed.model_dump_json(indent=2) + "\n")
    except OSError as exc:
        raise GovflowError(f"--out {out}: cannot write: {exc.strerror}") from None
    print(
        f"wrote {out}: {len(signed.checkpoint.heads)} stream heads at {signed.checkpoint.taken_at}, "
        f"signed by key {signed.fingerprint}. Keep it outside the database."
    )
    return 0


def _verify_checkpoint(settings: Settings, args: argparse.Namespace) -> int:

    if not args.public_key:
        raise GovflowError(
            "--checkpoint needs --public-key (the signer's public key, or its key file): "
            "a checkpoint is only worth the key you trust"
        )
    trusted = load_public_key(args.public_key)
    try:
        text = Path(args.checkpoint).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GovflowError(f"--checkpoint {args.checkpoint}: cannot read: {exc}") from None
    signed = cp.read(text, args.checkpoint)
    cp.check_signature(signed, trusted, args.checkpoint)

    async def go() -> list[str]:
        async with EvidenceStore.open(database_url(settings)) as store:
            return await checkpoint_problems(store, signed)

    problems = asyncio.run(go())
    heads = len(signed.checkpoint.heads)
    if problems:
        at = signed.checkpoint.taken_at
        print(f"checkpoint {args.checkpoint} ({at}): {len(problems)} of {heads} streams do NOT match")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(
        f"checkpoint {args.checkpoint} ({signed.checkpoint.taken_at}, key {signed.fingerprint}): "
        f"all {heads} streams hold their checkpointed rows and verify"
    )
    return 0


async def _verify_runs(store: EvidenceStore, rollout_id: str) -> list[tuple[str, str | None]]:
    """Every run the rollout admitted, verified in parallel (as many at once as the pool holds):
    ``(run_id, first problem or None)``."""
    gate = asyncio.Semaphore(8)

    async def one(run_id: str) -> tuple[str, str | None]:
        async with gate:
            report = await store.verify("run", run_id)
        return run_id, report.problem

    return list(await asyncio.gather(*(one(r) for r in await store.rollout_runs(rollout_id))))


def _rollout_report(rollout_id: str, report: VerifyReport, runs: list[tuple[str, str | None]]) -> int:
    bad = [(r, p) for r, p in runs if p is not None]
    if report.ok and not bad:
        print(f"rollout {rollout_id}: chain verifies ({report.rows} rows); all {len(runs)} runs it admitted verify")
        return 0
    if report.ok:
        print(f"rollout {rollout_id}: chain verifies ({report.rows} rows); {len(bad)} of {len(runs)} runs do NOT")
    else:
        print(f"rollout {rollout_id}: chain does NOT verify; first bad row: {report.problem}")
    for run_id, problem in bad[:20]:
        print(f"  run {run_id}: {problem}")
    return 1


Anchored = Literal["matches", "differs", "unfinished", "absent", "offline"]


@dataclass(frozen=True)
class Anchor:
    """A run's chain against its anchor in Temporal: the chain head its workflow returned when it finished.

    ``matches``; ``differs`` (a rewound tail, a consistent rehash, a chain that says finished while
    Temporal says otherwise: the chain was rewritten); ``unfinished`` (the run is still running: its rows
    so far are all there is to check); ``absent`` (Temporal no longer holds the execution, or it ended
    without a result); ``offline`` (Temporal not asked, or not reachable).
    """

    status: Anchored
    detail: str


async def check_anchor(store: EvidenceStore, client: Client, run_id: str) -> Anchor:
    """Never waits for a run to finish: it asks Temporal how the execution the chain names stands."""
    events = await store.events("run", run_id)
    started = parse_event("run_started", events[0]["payload"]) if events else None
    execution = started.temporal_run_id if isinstance(started, RunStarted) else ""
    finished = any(e["kind"] == "run_finished" for e in events)
    handle = client.get_workflow_handle(run_id, run_id=execution or None, result_type=RunResult)
    which = f"execution {execution}" if execution else "its newest execution"
    try:
        described = await handle.describe(rpc_timeout=_RPC)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return Anchor("absent", f"Temporal no longer holds run {run_id} ({which}): no anchor to check")
        return Anchor("offline", f"Temporal did not answer for run {run_id}: {exc}")
    if described.status == WorkflowExecutionStatus.RUNNING:
        if finished:
            return Anchor("differs", f"the chain says run {run_id} finished; Temporal says {which} is still running")
        return Anchor("unfinished", f"run {run_id} has not finished: its {len(events)} rows so far verify; "
                      "no anchor until it finishes")  # fmt: skip
    if described.status != WorkflowExecutionStatus.COMPLETED:
        status = described.status.name.lower() if described.status else "closed"
        return Anchor("absent", f"run {run_id} ({which}) ended {status} without a result: no anchor")
    try:
        result: RunResult = await handle.result(rpc_timeout=_RPC)
    except (RPCError, WorkflowFailureError) as exc:
        return Anchor("absent", f"no anchor in Temporal for {run_id}: {exc}")
    if result.chain_head is None:
        return Anchor("absent", f"run {run_id} finished before its result carried a chain head: no anchor")
    if len(events) != result.evidence_rows:
        return Anchor("differs", f"Temporal recorded {result.evidence_rows} rows for the run; the database "
                      f"holds {len(events)}")  # fmt: skip
    at = events[result.evidence_rows - 1] if result.evidence_rows else None
    if at is None or at["hash"] != result.chain_head:
        found = at["hash"][:12] if at else "nothing"
        return Anchor("differs", f"row {result.evidence_rows} should carry the hash Temporal recorded "
                      f"({result.chain_head[:12]}); the database has {found}: the chain was rewritten")  # fmt: skip
    return Anchor("matches", "matches the chain head Temporal recorded")


async def anchor_problem(store: EvidenceStore, client: Client, run_id: str) -> str | None:
    """Why a run's chain does not match its anchor in Temporal (or has none); None when it matches or the
    run is still running."""
    anchor = await check_anchor(store, client, run_id)
    return None if anchor.status in ("matches", "unfinished") else anchor.detail


async def _anchor(settings: Settings, store: EvidenceStore, run_id: str, strict: bool) -> Anchor:
    try:
        client = await asyncio.wait_for(connect(settings), timeout=_CONNECT_S)
    except (GovflowError, TimeoutError) as exc:
        if strict:
            raise GovflowError(f"--anchor: {exc}" if str(exc) else "--anchor: Temporal did not answer") from None
        return Anchor("offline", f"database only: Temporal is not reachable ({exc or 'no answer'})")
    return await check_anchor(store, client, run_id)


def cmd_evidence_verify(settings: Settings, args: argparse.Namespace) -> int:
    if args.checkpoint:
        return _verify_checkpoint(settings, args)
    if not args.id:
        raise GovflowError("evidence verify: name a RUN_ID (or a rollout id with --rollout), or give --checkpoint FILE")
    if args.offline and args.anchor:
        raise GovflowError("evidence verify: --offline and --anchor contradict each other; give one")
    stream = stream_of(args.id, args.rollout)

    async def go() -> int:
        async with EvidenceStore.open(database_url(settings)) as store:
            report = await store.verify(stream, args.id)
            anchor: Anchor | None = None
            if stream == "run" and report.rows and not args.offline:
                anchor = await _anchor(settings, store, args.id, strict=args.anchor)
            runs = await _verify_runs(store, args.id) if stream == "rollout" else []
            refused = await store.refused_starts(args.id) if stream == "run" else []
        if stream == "rollout":
            return _rollout_report(args.id, report, runs)
        if not report.ok:
            first = report.first_problem
            assert first is not None
            print(f"{stream} {args.id}: chain does NOT verify; first bad row: {first.problem}")
            for problem in report.problems[1:]:
                print(f"  also: {problem.problem}")
            return 1
        if anchor is not None and anchor.status == "differs":
            print(f"run {args.id}: chain verifies in the database but NOT against Temporal: {anchor.detail}")
            return 1
        if anchor is not None and anchor.status == "absent" and args.anchor:
            print(f"run {args.id}: chain verifies in the database; --anchor: {anchor.detail}")
            return 1
        if anchor is None:
            why = "--offline" if args.offline else f"a {stream} chain has no Temporal anchor"
            said = f"database only ({why})"
        else:
            said = anchor.detail
        print(f"{stream} {args.id}: chain verifies ({report.rows} rows); {said}")
        for refusal in refused:
            print(f"  a second start under this run id was refused: `govflow evidence show {refusal}`")
        return 0

    return asyncio.run(go())
