"""`govflow evidence show|export|verify|checkpoint`: the evidence, for auditors (the work is govflow/export)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence import checkpoint as cp
from govflow.activities.evidence.chain import VerifyReport
from govflow.cli.answers import Subparsers
from govflow.export.bundle import checkpoint_problems, stream_of, take_checkpoint
from govflow.export.verify import CONNECT_S, Anchor, check_anchor
from govflow.policies.errors import GovflowError
from govflow.signing import load_public_key, load_signing_key
from govflow.workers.settings import Settings, database_url
from govflow.workers.temporal import connect


def cmd_evidence_show(settings: Settings, args: argparse.Namespace) -> int:
    from govflow.export.bundle import show, stream_of

    stream = stream_of(args.id, args.rollout)

    async def go() -> list[str]:
        async with EvidenceStore.open(database_url(settings)) as store:
            return await show(store, stream, args.id)

    print("\n".join(asyncio.run(go())))
    return 0


def cmd_evidence_export(settings: Settings, args: argparse.Namespace) -> int:
    from govflow.export.bundle import bundle, stream_of, write_export

    stream = stream_of(args.id, args.rollout)

    async def go() -> dict[str, Any]:
        async with EvidenceStore.open(database_url(settings)) as store:
            return await bundle(store, stream, args.id)

    key = load_signing_key(args.key) if args.key else None
    json_path, md_path = write_export(asyncio.run(go()), Path(args.out), key)
    print(f"wrote {json_path} (bundle) and {md_path} (report), and verify.py beside them")
    if key is None:
        print("  not signed (no --key): verify.py will say so; sign with the checkpoint key to seal the bundle")
    else:
        print(f"  sealed: a checkpoint of its chains and {json_path.stem}.sig.json, signed by key "
              f"{cp.key_fingerprint(cp.public_text(key.public_key()))}; re-verify offline: "
              f"cd {json_path.parent} && python verify.py")  # fmt: skip
    return 0


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


async def _anchor(settings: Settings, store: EvidenceStore, run_id: str, strict: bool) -> Anchor:
    try:
        client = await asyncio.wait_for(connect(settings), timeout=CONNECT_S)
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


def register(sub: Subparsers) -> None:
    evidence = sub.add_parser("evidence", help="evidence for auditors")
    ev_sub = evidence.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = ev_sub.add_parser("verify", help="recompute a hash chain; name the first bad row")
    verify.add_argument("id", metavar="RUN_ID", nargs="?", help="a run id (or a rollout id with --rollout)")
    verify.add_argument("--rollout", action="store_true", help="verify a rollout's chain")
    verify.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="check every stream of a signed checkpoint (`govflow evidence checkpoint`): each checkpointed row "
        "still there with its hash, each chain verifying",
    )
    verify.add_argument(
        "--public-key", metavar="KEY", help="with --checkpoint: the signer's public key (base64, or a key file)"
    )
    verify.add_argument(
        "--anchor",
        action="store_true",
        help="require the Temporal anchor: fail when Temporal cannot be reached or no longer holds the run "
        "(by default the anchor is checked whenever Temporal answers)",
    )
    verify.add_argument(
        "--offline",
        action="store_true",
        help="the database alone: skip the Temporal anchor (a run's chain is otherwise checked against the chain "
        "head its workflow recorded, which catches a rewound tail or a consistent rehash)",
    )
    verify.set_defaults(func=cmd_evidence_verify)
    checkpoint = ev_sub.add_parser(
        "checkpoint", help="sign every stream's head with an Ed25519 key; keep the file outside the database"
    )
    checkpoint.add_argument("--key", required=True, help="Ed25519 private key file to sign with (`govflow keys new`)")
    checkpoint.add_argument("--out", required=True, metavar="FILE", help="the checkpoint file to write")
    checkpoint.set_defaults(func=cmd_evidence_checkpoint)
    show = ev_sub.add_parser("show", help="a readable timeline: read, proposed, decided, approved, written")
    show.add_argument("id", metavar="RUN_ID", help="a run id (or a rollout id with --rollout)")
    show.add_argument("--rollout", action="store_true", help="show a rollout's events")
    show.set_defaults(func=cmd_evidence_show)
    exp = ev_sub.add_parser("export", help="a JSON bundle and a Markdown report an auditor reads without govflow")
    exp.add_argument("id", metavar="RUN_ID", help="a run id (or a rollout id with --rollout: with all its runs)")
    exp.add_argument("--rollout", action="store_true", help="export a rollout and every run it admitted")
    exp.add_argument("--out", default="evidence-export", help="folder to write into (default: evidence-export)")
    exp.add_argument(
        "--key", metavar="FILE",
        help="the checkpoint key (Ed25519 private key file): seal the bundle with a checkpoint of its chains and "
        "sign it as a whole, so verify.py catches an edit to any field",
    )  # fmt: skip
    exp.set_defaults(func=cmd_evidence_export)
