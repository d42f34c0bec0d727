"""`govflow rollout start | status | pause | resume | promote | rollback`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from typing import Any

from temporalio.service import RPCError

from govflow.activities.evidence import EvidenceStore
from govflow.cli.answers import EXIT_REFUSED, Subparsers
from govflow.client import control, rollout_id, rollout_status, running_rollout, start_rollout
from govflow.policies.errors import GovflowError
from govflow.signing import key_for, sign
from govflow.workers.settings import Settings, database_url
from govflow.workers.temporal import connect
from govflow.workflows.rollout_api import (
    Control,
    RollbackRequest,
    control_message,
    restore_message,
)


def cmd_start(settings: Settings, args: argparse.Namespace) -> int:
    async def go() -> int:
        client = await connect(settings)
        wid = rollout_id(args.task, args.version)
        if await running_rollout(client, args.task, args.version):
            print(f"rollout {wid} is already running")
            return 0
        async with EvidenceStore.open(database_url(settings)) as store:
            before = await store.next_seq("rollout", wid)
            await start_rollout(client, settings.task_queue, args.task, args.version)
            opening = await _opening(store, wid, before)
        if opening is None:
            print(f"started rollout {wid} (it has not recorded its start yet: is a worker serving it?)")
        elif opening["kind"] == "rollout_refused":
            print(f"refused: rollout {wid} did not start: {opening['payload']['reason']}", file=sys.stderr)
            return EXIT_REFUSED
        else:
            relied = opening["payload"].get("backtest")
            print(f"started rollout {wid}" + (f", relying on backtest {relied}" if relied else ""))
        return 0

    return asyncio.run(go())


async def _opening(store: EvidenceStore, rollout: str, after: int, seconds: float = 30.0) -> dict[str, Any] | None:
    """The rollout's start, or its refusal (rollout.backtest), recorded at seq ``after`` or later."""
    for _ in range(int(seconds / 0.2)):
        for row in await store.events("rollout", rollout):
            if row["seq"] >= after and row["kind"] in ("rollout_started", "rollout_refused"):
                return row
        await asyncio.sleep(0.2)
    return None


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    async def go() -> int:
        client = await connect(settings)
        wid = rollout_id(args.task, args.version)
        try:
            status = await rollout_status(client, wid)
        except RPCError as exc:
            raise GovflowError(f"no running rollout {wid}: {exc.message}") from None
        if args.json:
            print(json.dumps(status.model_dump(mode="json"), indent=2))
            return 0
        paused = f"PAUSED ({status.pause_reason})" if status.paused else "running"
        print(f"rollout {wid}: stage {status.stage} ({status.live_fraction:.0%} live), {paused}")
        print(f"  runs in stage {status.runs_in_stage}; leases granted {status.leases_granted}, "
              f"refused {status.leases_refused}")  # fmt: skip
        for v in status.verdicts:
            print(f"  {v.rule:<16} {v.status:<13} {v.reason}")
        if status.last_breach:
            b = status.last_breach
            print(f"  last breach: {b.action} in {b.stage} at {b.at.isoformat()}")
        if status.promotion_requested:
            print("  promotion waits for a promoter: govflow rollout promote --task ... --as <promoter>")
        return 0

    return asyncio.run(go())


def cmd_control(settings: Settings, args: argparse.Namespace) -> int:
    async def go() -> int:
        client = await connect(settings)
        handle = client.get_workflow_handle(rollout_id(args.task, args.version))
        command, rollback = args.command_name, args.command_name == "rollback"
        # Acts a policy may require signed: resume, promote, and undoing live writes (rollback --data).
        signs = command in ("resume", "promote") or (rollback and args.data)
        key = key_for(args.operator, args.key, settings.keys_dir) if signs else None
        signature = None
        if key is not None:
            try:
                now = await rollout_status(client, handle.id)
            except RPCError as exc:
                raise GovflowError(f"no running rollout {handle.id}: {exc.message}") from None
            message = (restore_message(handle.id, now.stage, now.control_seq, args.since) if rollback
                       else control_message(command, handle.id, now.stage, now.control_seq))  # fmt: skip
            signature = sign(key, message)
        payload: Control = (
            RollbackRequest(operator=args.operator, reason=args.reason, to=args.to, data=args.data, since=args.since,
                            signature=signature)
            if rollback else Control(operator=args.operator, reason=args.reason, signature=signature)
        )  # fmt: skip
        try:
            answer = await control(client, handle.id, args.command_name, payload)
        except RPCError as exc:
            raise GovflowError(f"no running rollout {handle.id}: {exc.message}") from None
        if answer.accepted:
            print(f"accepted: {answer.reason} (stage {answer.stage}{', paused' if answer.paused else ''})")
            return 0
        print(f"refused: {answer.reason}", file=sys.stderr)
        return EXIT_REFUSED

    return asyncio.run(go())


def register(sub: Subparsers) -> None:
    rollout = sub.add_parser("rollout", help="stages, gates, pause and rollback of a task's rollout")
    rsub = rollout.add_subparsers(dest="action", required=True, metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--task", required=True)
        p.add_argument("--version", default="1")

    start = rsub.add_parser("start", help="start the task's rollout (idempotent)")
    common(start)
    start.set_defaults(func=cmd_start)
    status = rsub.add_parser("status", help="stage, live fraction, window figures, pause, last breach")
    common(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    helps = {
        "pause": "stop live writes at once (anyone)",
        "resume": "resume a paused rollout (named promoters)",
        "promote": "move to the next stage (named promoters)",
        "rollback": "back to the previous stage or to shadow (anyone; --data needs the policy's restore authority)",
    }
    for name, text in helps.items():
        p = rsub.add_parser(name, help=f"{text}; exit 0 accepted, {EXIT_REFUSED} refused")
        common(p)
        p.add_argument("--as", dest="operator", required=True)
        p.add_argument("--reason", default="")
        if name in ("resume", "promote", "rollback"):
            p.add_argument(
                "--key",
                help="Ed25519 key to sign with, where the policy requires it (default: GOVFLOW_KEYS_DIR/<you>.pem)",
            )
        if name == "rollback":
            p.add_argument("--to", choices=["previous", "shadow"], default="previous")
            p.add_argument(
                "--data", action="store_true",
                help="also undo the rollout's live writes (who may: rollout.restore_by; signed where the policy asks)",
            )  # fmt: skip
            p.add_argument(
                "--since", type=datetime.fromisoformat, help="with --data: only writes at or after this ISO time"
            )
        p.set_defaults(func=cmd_control, command_name=name)
