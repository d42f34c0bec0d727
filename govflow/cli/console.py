"""`govflow console` (the reviewer console) and `govflow reviewers enroll|list|revoke` (their passkeys)."""

from __future__ import annotations

import argparse
import asyncio
import os

from govflow.activities.evidence import EvidenceStore
from govflow.cli.answers import Subparsers
from govflow.console.accounts import AccountError, Accounts
from govflow.policies.durations import parse_duration
from govflow.policies.errors import GovflowError
from govflow.workers.app import DEFAULT_APP, load_app
from govflow.workers.settings import Settings, database_url


def cmd_console(settings: Settings, _: argparse.Namespace) -> int:
    import uvicorn

    from govflow.console import create_app

    app = create_app(settings, database_url(settings))
    print(f"govflow console on {settings.console_url} (listening on {settings.console_host}:{settings.console_port})")
    uvicorn.run(app, host=settings.console_host, port=settings.console_port, log_level="warning")
    return 0


async def _directory(settings: Settings, db_url: str) -> set[str]:
    """Everyone a policy the workers serve names as a reviewer (the app of GOVFLOW_APP, else the examples)."""
    registry = load_app(os.environ.get("GOVFLOW_APP") or DEFAULT_APP, settings, db_url)
    try:
        return {person.id for reg in registry for person in reg.policy.reviewers.people}
    finally:
        await registry.aclose()


def cmd_enroll(settings: Settings, args: argparse.Namespace) -> int:
    valid = parse_duration(args.valid)

    async def go() -> tuple[str, str]:
        db_url = database_url(settings)
        people = await _directory(settings, db_url)
        if args.reviewer not in people:
            raise GovflowError(
                f"{args.reviewer} is not a reviewer in any policy the workers serve; known: {', '.join(sorted(people))}"
            )
        async with EvidenceStore.open(db_url) as store:
            token, expires = await Accounts(store).issue_enrollment(args.reviewer, args.issued_by, valid)
        return token, expires.isoformat(timespec="seconds")

    token, expires = asyncio.run(go())
    print(f"{settings.console_url}/enroll/{token}")
    print(f"one-time link for {args.reviewer}, valid until {expires}: give it to them only")
    return 0


def cmd_list(settings: Settings, _: argparse.Namespace) -> int:
    async def go() -> list[str]:
        async with EvidenceStore.open(database_url(settings)) as store:
            rows = await Accounts(store).reviewers()
        return [f"{r['reviewer']:<16} {r['active']} active, {r['revoked']} revoked passkey(s)" for r in rows]

    print("\n".join(asyncio.run(go())) or "no reviewer has enrolled a passkey")
    return 0


def cmd_revoke(settings: Settings, args: argparse.Namespace) -> int:
    async def go() -> list[str]:
        async with EvidenceStore.open(database_url(settings)) as store:
            return await Accounts(store).revoke(args.reviewer, args.revoked_by, args.reason)

    try:
        ids = asyncio.run(go())
    except AccountError as exc:
        raise GovflowError(str(exc)) from None
    print(f"revoked {len(ids)} passkey(s) of {args.reviewer}; their sessions ended")
    return 0


def register(sub: Subparsers) -> None:
    console = sub.add_parser("console", help="the reviewer console: sign in with a passkey, decide in a browser")
    console.set_defaults(func=cmd_console)
    reviewers = sub.add_parser("reviewers", help="reviewers' passkeys for the console: enroll, list, revoke")
    rsub = reviewers.add_subparsers(dest="action", required=True, metavar="ACTION")
    enroll = rsub.add_parser("enroll", help="a one-time, expiring link for a reviewer to enroll a passkey")
    enroll.add_argument("reviewer", metavar="REVIEWER", help="a reviewer named in a policy the workers serve")
    enroll.add_argument("--as", dest="issued_by", required=True, help="you, the operator issuing the link")
    enroll.add_argument("--valid", default="24h", help="how long the link works (default 24h)")
    enroll.set_defaults(func=cmd_enroll)
    rsub.add_parser("list", help="who has enrolled, passkeys active and revoked").set_defaults(func=cmd_list)
    revoke = rsub.add_parser("revoke", help="revoke every passkey of a reviewer and end their sessions")
    revoke.add_argument("reviewer", metavar="REVIEWER")
    revoke.add_argument("--as", dest="revoked_by", required=True, help="you, the operator revoking")
    revoke.add_argument("--reason", default="")
    revoke.set_defaults(func=cmd_revoke)
