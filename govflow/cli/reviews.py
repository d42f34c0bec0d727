"""`govflow approvals list|grant|grants|revoke`, `govflow approve|reject`, `govflow resolve`: what waits
for people, their votes and decisions, and standing approvals."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from govflow.activities.evidence import EvidenceStore
from govflow.cli.answers import EXIT_REFUSED, Subparsers, answer, print_json
from govflow.cli.run import list_runs, run_state
from govflow.client import (
    grant_act,
    grant_status,
    propose_grant,
    resolve,
    review,
    revoke_grant,
    run_status,
)
from govflow.policies import signing_message
from govflow.policies.durations import parse_duration
from govflow.policies.errors import GovflowError
from govflow.policies.standing import GrantTerms, grant_message
from govflow.signing import key_for, sign
from govflow.workers.settings import Settings, database_url
from govflow.workers.temporal import connect
from govflow.workflows.run_api import (
    ExceptionDecision,
    ReviewRequest,
    RunStatus,
    exception_message,
)
from govflow.workflows.standing_grant import GrantAct


def cmd_approvals_list(settings: Settings, args: argparse.Namespace) -> int:
    query = "WorkflowType = 'GovernedRun' AND ExecutionStatus = 'Running' AND GovflowAwaitingApproval = true"

    async def go() -> int:
        client = await connect(settings)
        rows: list[dict[str, Any]] = []
        for run in await list_runs(client, query):
            status = await run_status(client, run["run_id"])
            waits = status.exception is not None and status.exception_expires_at is not None
            if waits and (not args.reviewer or args.reviewer in status.exception_eligible):
                rows.append(_exception_row(status))
            for pending in status.pending:
                for gate in pending.gates:
                    if gate.status != "open":
                        continue
                    if args.reviewer and (args.reviewer not in gate.eligible or args.reviewer in gate.approved_by):
                        continue
                    rows.append(
                        {
                            "kind": "approval",
                            "run_id": status.run_id,
                            "task": status.task,
                            "item": status.item_key,
                            "requester": status.requester,
                            "action_id": pending.action_id,
                            "target": pending.target,
                            "record_id": pending.record_id,
                            "fields": pending.fields,
                            "digest": pending.digest,
                            "rule": gate.rule,
                            "quorum": gate.quorum,
                            "approved_by": gate.approved_by,
                            "eligible": gate.eligible,
                            "signature_required": gate.signature_required,
                            "expires_at": gate.expires_at.isoformat(),
                        }
                    )
        if args.json:
            print_json(rows)
            return 0
        if not rows:
            print("nothing waits for approval or an exception decision" + (f" by {args.reviewer}" if args.reviewer
                                                                            else ""))  # fmt: skip
        for r in rows:
            if r["kind"] == "exception":
                print(f"{r['run_id']}  EXCEPTION {r['problem']}\n    decide: `govflow resolve {r['run_id']} --decision "
                      f"retry|discard --as YOU`; may decide: {', '.join(r['eligible']) or 'nobody'}; "
                      f"expires {r['expires_at']}")  # fmt: skip
                continue
            others = ", ".join(r["approved_by"]) or "nobody yet"
            signed = " (signature required)" if r["signature_required"] else ""
            print(
                f"{r['run_id']}  {r['action_id']}: {r['target']} {r['record_id'] or ''} "
                f"{json.dumps(r['fields'])}\n    rule {r['rule']}: {len(r['approved_by'])}/{r['quorum']} "
                f"approved ({others}){signed}; expires {r['expires_at']}; digest {r['digest']}"
            )
        return 0

    return asyncio.run(go())


def _exception_row(status: RunStatus) -> dict[str, Any]:
    """A run waiting on its exception route, as `approvals list` shows it beside the approvals."""
    return {"kind": "exception", "run_id": status.run_id, "task": status.task, "item": status.item_key,
            "requester": status.requester, "problem": status.exception, "eligible": status.exception_eligible,
            "expires_at": status.exception_expires_at.isoformat() if status.exception_expires_at else None}  # fmt: skip


def cmd_vote(settings: Settings, args: argparse.Namespace) -> int:
    verdict = args.verdict

    async def go() -> int:
        client = await connect(settings)
        status, _, state = await run_state(client, args.run_id)
        if status is None or state != "running":
            raise GovflowError(f"run {args.run_id} is {state}: there is nothing to {verdict}")
        pending = status.pending
        if args.action:
            pending = [p for p in pending if p.action_id == args.action]
        if not pending:
            raise GovflowError(f"run {args.run_id} has no action waiting for approval" + (
                f" with id {args.action}" if args.action else ""))  # fmt: skip
        if len(pending) > 1:
            ids = ", ".join(p.action_id for p in pending)
            raise GovflowError(f"run {args.run_id} has several actions waiting ({ids}): choose one with --action")
        action = pending[0]
        key = key_for(args.reviewer, args.key, settings.keys_dir)
        signature = sign(key, signing_message(args.run_id, action.digest, verdict))
        request = ReviewRequest(
            reviewer=args.reviewer,
            action_digest=action.digest,
            action_id=action.action_id,
            reason=args.reason,
            signature=signature,
            verdict=verdict,
        )
        print(
            f"{verdict} {action.action_id}: {action.target} {action.record_id or ''} "
            f"{json.dumps(action.fields)} (digest {action.digest[:16]}...)"
        )
        return answer(await review(client, args.run_id, request))

    return asyncio.run(go())


def cmd_resolve(settings: Settings, args: argparse.Namespace) -> int:
    async def go() -> int:
        client = await connect(settings)
        status, _, state = await run_state(client, args.run_id)
        if status is None or state != "running" or status.exception is None:
            raise GovflowError(f"run {args.run_id} has no exception waiting for a decision")
        key = key_for(args.reviewer, args.key, settings.keys_dir)
        signature = sign(key, exception_message(args.run_id, args.decision, status.exception_expires_at))
        decision = ExceptionDecision(
            reviewer=args.reviewer, decision=args.decision, reason=args.reason, signature=signature
        )
        return answer(await resolve(client, args.run_id, decision))

    return asyncio.run(go())


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


def add_grant_commands(ap_sub: Any) -> None:
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


def register(sub: Subparsers) -> None:
    approvals = sub.add_parser("approvals", help="what waits for approval")
    ap_sub = approvals.add_subparsers(dest="action", required=True, metavar="ACTION")
    apl = ap_sub.add_parser("list", help="actions waiting, with digest, who approved, expiry")
    who = apl.add_mutually_exclusive_group()
    who.add_argument("--as", dest="reviewer", help="only what this reviewer may still approve")
    who.add_argument("--all", action="store_true", help="everything that waits, for every reviewer (a lead's view)")
    apl.add_argument("--json", action="store_true", help="one JSON array: run, action, digest, rule, who, expiry")
    apl.set_defaults(func=cmd_approvals_list)
    add_grant_commands(ap_sub)

    for verdict in ("approve", "reject"):
        v = sub.add_parser(verdict, help=f"{verdict} a waiting action (exit 0 accepted, {EXIT_REFUSED} refused)")
        v.add_argument("run_id", metavar="RUN_ID")
        v.add_argument("--as", dest="reviewer", required=True, help="your reviewer id in the policy")
        v.add_argument("--action", help="the action id, when several wait")
        v.add_argument("--reason", default="")
        v.add_argument(
            "--key", help="Ed25519 private key to sign with (PEM or base64; default: GOVFLOW_KEYS_DIR/<reviewer>.pem)"
        )
        v.set_defaults(func=cmd_vote, verdict=verdict)

    r = sub.add_parser(
        "resolve", help=f"decide a run's exception: retry or discard (exit 0 accepted, {EXIT_REFUSED} refused)"
    )
    r.add_argument("run_id", metavar="RUN_ID")
    r.add_argument("--as", dest="reviewer", required=True, help="your id in the policy")
    r.add_argument("--decision", choices=["retry", "discard"], required=True)
    r.add_argument("--reason", default="")
    r.add_argument("--key", help="Ed25519 private key to sign with (default: GOVFLOW_KEYS_DIR/<you>.pem)")
    r.set_defaults(func=cmd_resolve)
