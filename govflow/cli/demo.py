"""`govflow demo`: the whole idea in one command (the story is govflow/demos)."""

from __future__ import annotations

import argparse
import asyncio

from govflow.cli.answers import Subparsers
from govflow.cli.stack import cmd_stack_up
from govflow.stack.local import LocalStack, database_url
from govflow.workers.settings import Settings
from govflow.workers.temporal import connect


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from govflow.demos.triage import run_demo
    from govflow.examples.support_triage import ensure_example_sor

    cmd_stack_up(settings, args)
    stack = LocalStack(settings)
    stopped = stack.stop("worker")  # the demo's own worker runs in this process until it hands over
    if stopped:
        print(f"  stopped the background worker (pid {stopped}); the demo runs its own, then starts it again")
    reviewers = [r for group in args.auto_approve_as or [] for r in group.split(",") if r]

    async def go() -> int:
        db_url = database_url(settings)
        client = await connect(settings)
        if args.task == "invoice-matching":
            from govflow.demos.finance import run_finance_demo

            return await run_finance_demo(client, settings, db_url, reviewers)
        sor = await ensure_example_sor(db_url)
        return await run_demo(client, settings, db_url, sor, reviewers)

    try:
        code = asyncio.run(go())
    finally:
        pid, log = stack.start("worker")
        print(f"  background worker: pid {pid}, task queue {settings.task_queue!r}, log {log}")
    return code


def register(sub: Subparsers) -> None:
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
