"""`govflow approvals grant | grants | revoke`: bounded standing approvals from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from govflow.activities.evidence import EvidenceStore
from govflow.policies.durations import parse_duration
from govflow.policies.errors import GovflowError
from govflow.policies.standing import GrantTerms, grant_message
from govflow.workers.client import grant_act, grant_status, propose_grant, revoke_grant
from govflow.workers.keys import key_for, sign
from govflow.workers.settings import Settings
from govflow.workers.stack import database_url
from govflow.workers.temporal import connect
from govflow.workflows.standing import GrantAct


def _matches(pairs: list[str]) -> dict[str, Any]:
    """``field=value`` pairs; a value that reads as JSON (a number, true) is that, otherwise text."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise GovflowError(f"--match {pair!r}: write it as field=value, e.g. --match category=billing")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if not isinstance(value, str | int | float | bool):
            raise GovflowError(f"--match {pair!r}: the value must be text, a number or true/false")
        out[name] = value
    return out


def cmd_grant(settings: Settings, args: argparse.Namespace, answer: Any) -> int:
    async def go() -> int:
        client = await connect(settings)
        grant_id = args.grant_id
        if grant_id is None:
            missing = [o for o, v in (("--task", args.task), ("--rule", args.rule), ("--max-uses", args.max_uses),
                                      ("--expires", args.expires)) if v is None]  # fmt: skip
            if missing or not args.match:
                what = ", ".join(missing + ([] if args.match else ["--match field=value"]))
                raise GovflowError(f"a new standing approval needs {what} (or name an existing GRANT_ID to grant it)")
            terms = GrantTerms(
                task=args.task, task_version=args.version, rule=args.rule, match=_matches(args.match),
                max_uses=args.max_uses, expires_at=datetime.now(UTC) + parse_duration(args.expires),
                reason=args.reason,
            )  # fmt: skip
            grant_id = await propose_grant(client, settings.task_queue, terms, args.reviewer)
            until = f"{terms.expires_at:%Y-%m-%d %H:%M UTC}"
            print(f"proposed {grant_id}: rule {terms.rule} of {terms.task} v{terms.task_version}, "
                  f"match {json.dumps(terms.match)}, at most {terms.max_uses} uses, until {until}")  # fmt: skip
            status = await _settled(client, grant_id)
            if status.status == "refused":
                raise GovflowError(f"{grant_id} refused: {status.reason}")
        status = await grant_status(client, grant_id)
        key = key_for(args.reviewer, args.key, settings.keys_dir)
        act = GrantAct(
            person=args.reviewer, signature=sign(key, grant_message(grant_id, status.terms)), note=args.reason
        )
        code: int = answer(await grant_act(client, grant_id, act))
        status = await grant_status(client, grant_id)
        print(f"{grant_id}: {status.status} ({len(status.granted_by)} of {status.quorum} granted: "
              f"{', '.join(status.granted_by) or 'nobody yet'})")  # fmt: skip
        return code

    return asyncio.run(go())


async def _settled(client: Any, grant_id: str) -> Any:
    """The new grant's status once its workflow has judged its terms."""
    for _ in range(100):
        try:
            status = await grant_status(client, grant_id)
        except Exception:
            await asyncio.sleep(0.1)
            continue
        if status.quorum or status.status == "refused":
            return status
        await asyncio.sleep(0.1)
    raise GovflowError(f"{grant_id} did not start: is a worker running for this task queue?")


def cmd_revoke(settings: Settings, args: argparse.Namespace, answer: Any) -> int:
    async def go() -> int:
        client = await connect(settings)
        code: int = answer(await revoke_grant(client, args.grant_id, GrantAct(person=args.reviewer, note=args.reason)))
        return code

    return asyncio.run(go())


def cmd_grants(settings: Settings, args: argparse.Namespace) -> int:
    async def go() -> list[dict[str, Any]]:
        async with EvidenceStore.open(database_url(settings)) as store:
            return await store.grants(args.task)

    rows = asyncio.run(go())
    if args.json:
        print(json.dumps(rows, default=str, indent=2))
        return 0
    if not rows:
        print("no standing approvals" + (f" for {args.task}" if args.task else ""))
    for r in rows:
        match = r["match"] if isinstance(r["match"], dict) else json.loads(r["match"])
        ended = f"; {r['status']} by {r['ended_by'] or '-'}: {r['end_reason'] or ''}" if r["ended_at"] else ""
        granted = ", ".join(r["granted_by"]) or "nobody yet"
        print(f"{r['grant_id']}  {r['status']:<8} {r['task']} v{r['task_version']} rule {r['rule']} "
              f"match {json.dumps(match)}: {r['uses']}/{r['max_uses']} used, until "
              f"{r['expires_at']:%Y-%m-%d %H:%M UTC}; granted by {granted}{ended}")  # fmt: skip
    return 0


def add_parsers(ap_sub: Any, answer: Any) -> None:
    g = ap_sub.add_parser(
        "grant", help="propose a standing approval for a class of actions, or grant one (GRANT_ID); bounded in "
        "uses and time, taking the rule's own quorum",
    )  # fmt: skip
    g.add_argument("grant_id", metavar="GRANT_ID", nargs="?", help="grant this proposed standing approval")
    g.add_argument("--task")
    g.add_argument("--version", default="1")
    g.add_argument("--rule", help="the action rule it approves for")
    g.add_argument("--match", action="append", default=[], metavar="FIELD=VALUE", help="repeat: every one must hold")
    g.add_argument("--max-uses", type=int, help="how many actions it may approve (at least 1)")
    g.add_argument("--expires", help="how long it lives, e.g. 8h, 2d (at most 30d)")
    g.add_argument("--as", dest="reviewer", required=True, help="your id in the policy: you grant it")
    g.add_argument("--key", help="Ed25519 private key to sign with (default: GOVFLOW_KEYS_DIR/<you>.pem)")
    g.add_argument("--reason", default="")
    g.set_defaults(func=lambda s, a: cmd_grant(s, a, answer))
    ls = ap_sub.add_parser("grants", help="standing approvals: terms, status, uses, who granted or revoked them")
    ls.add_argument("--task")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_grants)
    r = ap_sub.add_parser("revoke", help="revoke a standing approval: no publish that starts after it uses it")
    r.add_argument("grant_id", metavar="GRANT_ID")
    r.add_argument("--as", dest="reviewer", required=True)
    r.add_argument("--reason", default="")
    r.set_defaults(func=lambda s, a: cmd_revoke(s, a, answer))
