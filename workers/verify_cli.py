"""`govflow evidence verify|checkpoint`: prove the evidence is what was written, with or without a signed
checkpoint kept outside the database."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from activities.evidence import EvidenceStore
from activities.evidence import checkpoint as cp
from activities.evidence.chain import VerifyReport
from policies.errors import GovflowError
from workers.evidence_cli import anchor_problem, checkpoint_problems, stream_of, take_checkpoint
from workers.keys import load_public_key, load_signing_key
from workers.settings import Settings
from workers.stack import database_url
from workers.temporal import connect


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


def cmd_evidence_verify(settings: Settings, args: argparse.Namespace) -> int:
    if args.checkpoint:
        return _verify_checkpoint(settings, args)
    if not args.id:
        raise GovflowError("evidence verify: name a RUN_ID (or a rollout id with --rollout), or give --checkpoint FILE")
    stream = stream_of(args.id, args.rollout)

    async def go() -> int:
        async with EvidenceStore.open(database_url(settings)) as store:
            report = await store.verify(stream, args.id)
            anchor = await anchor_problem(store, await connect(settings), args.id) if args.anchor else None
            runs = await _verify_runs(store, args.id) if stream == "rollout" else []
        if report.ok and anchor:
            print(f"run {args.id}: chain verifies in the database but NOT against Temporal: {anchor}")
            return 1
        if stream == "rollout":
            return _rollout_report(args.id, report, runs)
        if report.ok:
            anchored = "; matches the chain head Temporal recorded" if args.anchor else ""
            print(f"{stream} {args.id}: chain verifies ({report.rows} rows){anchored}")
            return 0
        first = report.first_problem
        assert first is not None
        print(f"{stream} {args.id}: chain does NOT verify; first bad row: {first.problem}")
        for problem in report.problems[1:]:
            print(f"  also: {problem.problem}")
        return 1

    return asyncio.run(go())
