"""`govflow demo`: the whole idea in one command (the story is govflow/demos)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta

from govflow.cli.answers import Subparsers
from govflow.cli.stack import cmd_stack_up
from govflow.stack.local import LocalStack
from govflow.workers.settings import Settings, database_url
from govflow.workers.temporal import connect

LINK_VALID = timedelta(hours=24)


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
        links = asyncio.run(_enrollment_links(settings, args.task))
        print(f"\nThe reviewer console: {settings.console_url} (what waits, with what the AI read; passkeys)")
        print("  One-time enrollment links for the demo's reviewers (each enrolls one passkey, valid 24 h):")
        for reviewer, link in links:
            print(f"    {reviewer:<8} {link}")
    finally:
        pid, log = stack.start("worker")
        print(f"  background worker: pid {pid}, task queue {settings.task_queue!r}, log {log}")
    return code


async def _enrollment_links(settings: Settings, task: str) -> list[tuple[str, str]]:
    """A one-time console enrollment link (issued by "govflow demo") for everyone who may decide
    something in the task's policy: its approval rules and its exception route."""
    from govflow.activities.evidence import EvidenceStore
    from govflow.console.accounts import Accounts
    from govflow.examples import default_app

    db_url = database_url(settings)
    registry = default_app(settings, db_url)
    try:
        policy = next(reg.policy for reg in registry if reg.task.name == task)
    finally:
        await registry.aclose()
    deciders: set[str] = set()
    for rule in policy.actions:
        if rule.approval is not None:
            deciders |= policy.eligible(rule.approval.reviewers, rule.approval.roles)
            if not isinstance(rule.approval.on_expiry, str):  # escalated to a role when it expires
                deciders |= policy.members(rule.approval.on_expiry.to_role)
            for key in rule.approval.limits.up_to if rule.approval.limits else ():  # above the rule's people
                deciders |= {key} if policy.person(key) else policy.members(key)
    if policy.exceptions is not None:
        deciders |= policy.eligible(policy.exceptions.reviewers, policy.exceptions.roles)
    links = []
    async with EvidenceStore.open(db_url) as store:
        accounts = Accounts(store)
        for who in sorted(deciders):
            token, _ = await accounts.issue_enrollment(who, "govflow demo", LINK_VALID)
            links.append((who, f"{settings.console_url}/enroll/{token}"))
    return links


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
