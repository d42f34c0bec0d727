"""`govflow run submit` and `govflow runs list|show`: start governed runs and see where they stand."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import uuid
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowQueryFailedError
from temporalio.service import RPCError

from govflow.activities.common import UNKNOWN_TASK_ATTEMPTS
from govflow.activities.names import ErrorType
from govflow.cli.answers import EXIT_REFUSED, Subparsers, print_json
from govflow.client import (
    admit,
    run_status,
    running_rollout,
    submit,
)
from govflow.policies.errors import GovflowError
from govflow.signing import key_for, sign
from govflow.workers.settings import Settings
from govflow.workers.temporal import connect
from govflow.workflows import search_attributes as sa
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.run_api import (
    RunInput,
    RunResult,
    RunStatus,
    submit_message,
)


def cmd_submit(settings: Settings, args: argparse.Namespace) -> int:
    try:
        item = json.loads(args.item)
    except json.JSONDecodeError as exc:
        raise GovflowError(f"--item is not JSON: {exc}") from None
    if not isinstance(item, dict):
        raise GovflowError('--item must be a JSON object, e.g. \'{"ticket_id": "T0001"}\'')
    key = args.key or next((str(v) for v in item.values()), "")
    try:
        inp = RunInput(
            task=args.task,
            task_version=args.version,
            item_key=key,
            item=item,
            requester=args.requester,
            mode=args.mode or "shadow",
        )
    except ValidationError as exc:
        raise GovflowError(f"invalid run: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None

    async def go() -> int:
        client = await connect(settings)
        run = inp
        rollout = await running_rollout(client, inp.task, inp.task_version)
        if rollout is not None:
            # The rollout decides: its stage, and live or shadow by a stable hash of the item key.
            admission = await admit(client, rollout, inp.item_key)
            if args.mode and args.mode != admission.mode:
                raise GovflowError(
                    f"{rollout} runs {inp.item_key} in {admission.mode} mode at stage {admission.stage}; "
                    "the rollout decides the mode: drop --mode"
                )
            run = inp.model_copy(update={"mode": admission.mode, "stage": admission.stage, "rollout_id": rollout})
            if not args.json:
                print(f"{rollout} admits {inp.item_key} at stage {admission.stage}: {admission.mode}")
        run_id = f"run-{run.task}-{run.item_key}-{uuid.uuid4().hex[:8]}"
        signature = sign(key_for(run.requester, args.signing_key, settings.keys_dir), submit_message(run_id, run))
        signed = run.model_copy(update={"signature": signature})
        run_id = await submit(client, settings.task_queue, signed, run_id=run_id)
        await _confirm_served(client, run_id)
        if not args.wait:
            if args.json:
                print_json({"run_id": run_id})
            else:
                print(f"submitted {run_id}")
            return 0
        try:
            result = await client.get_workflow_handle(run_id, result_type=RunResult).result()
        except WorkflowFailureError as exc:
            raise GovflowError(f"{run_id} failed: {exc.cause or exc}") from None
        if args.json:
            print_json(result.model_dump(mode="json"))
        else:
            print(f"{run_id}: {result.outcome} {result.reason}".rstrip())
        return EXIT_BY_OUTCOME[result.outcome]

    return asyncio.run(go())


EXIT_BY_OUTCOME: dict[str, int] = {"published": 0, "shadowed": 0, "refused": EXIT_REFUSED, "partial": 4,
                                   "rejected": 5, "exception": 6}  # fmt: skip
"""`run submit --wait`'s exit code by the run's outcome (a failed run exits 1): a script tells them apart."""

_UNSERVED_ATTEMPTS = 3


async def _confirm_served(client: Client, run_id: str, within: float = 10.0) -> None:
    """A run of a task or version no worker serves cannot start: say so, exit 1, rather than print a run
    id as if it were under way. Its first activity is offered back to the queue a while (a worker that
    serves the task may be beside the one that took it); three attempts refused within ``within`` seconds
    is said at once. Quiet when a worker has taken it on (or none answers yet)."""
    handle = client.get_workflow_handle(run_id, result_type=RunResult)
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        desc = await handle.describe()
        if desc.status == WorkflowExecutionStatus.FAILED:
            try:
                await handle.result()
            except WorkflowFailureError as exc:
                cause: BaseException = exc
                while getattr(cause, "cause", None) is not None:
                    cause = cause.cause  # type: ignore[attr-defined]
                raise GovflowError(f"run {run_id} failed at once: {cause}") from None
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return
        try:
            status = await handle.query(GovernedRunWorkflow.status, rpc_timeout=timedelta(seconds=2))
        except (RPCError, WorkflowQueryFailedError):
            status = None
        if status is not None and status.phase != "starting":
            return
        unserved = [a for a in desc.raw_description.pending_activities
                    if a.last_failure.application_failure_info.type == ErrorType.UNKNOWN_TASK]  # fmt: skip
        if unserved and unserved[0].attempt >= _UNSERVED_ATTEMPTS:
            why = unserved[0].last_failure.message.split(";")[0]
            raise GovflowError(
                f"run {run_id}: {why}, and no worker of this task queue that took it does; it waits for one "
                f"(failing after ~{UNKNOWN_TASK_ATTEMPTS} attempts): start a worker that serves the task "
                f"(`govflow worker --app ...`), or `temporal workflow terminate --workflow-id {run_id}`"
            )
        await asyncio.sleep(0.2)
    print(f"note: no worker has taken {run_id} on yet (is `govflow worker` running?)", file=sys.stderr)


async def list_runs(client: Client, query: str) -> list[dict[str, Any]]:
    out = []
    async for wf in client.list_workflows(query):
        attrs = wf.typed_search_attributes
        out.append(
            {
                "run_id": wf.id,
                "status": wf.status.name.lower() if wf.status else "unknown",
                "task": attrs.get(sa.TASK),
                "stage": attrs.get(sa.STAGE),
                "mode": attrs.get(sa.MODE),
                # Set once a run waits; a run starts without it.
                "awaiting_approval": attrs.get(sa.AWAITING_APPROVAL) is True,
                "started": wf.start_time.isoformat() if wf.start_time else None,
            }
        )
    return out


def cmd_runs_list(settings: Settings, args: argparse.Namespace) -> int:
    query = "WorkflowType = 'GovernedRun'"
    if args.task:
        # Task names are policy names (lower case, digits, - _ .): nothing to quote, nothing to inject.
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,79}", args.task):
            raise GovflowError(f"--task {args.task!r} is not a task name (lower case letters, digits, - _ .)")
        query += f" AND GovflowTask = '{args.task}'"

    async def go() -> int:
        client = await connect(settings)
        runs = await list_runs(client, query)
        for r in runs:  # what a waiting run waits for: its phase (an approval, or an exception decision)
            if r["awaiting_approval"] and r["status"] == "running":
                r["phase"] = (await run_status(client, r["run_id"])).phase
        if args.json:
            print_json(runs)
            return 0
        for r in runs:
            waiting = f" {r['phase']}" if r.get("phase", "").startswith("awaiting") else ""
            print(f"{r['run_id']:<52} {r['status']:<10} {r['task']} {r['mode']} {r['stage']}{waiting}")
        if not runs:
            print("no governed runs")
        return 0

    return asyncio.run(go())


async def run_state(client: Client, run_id: str) -> tuple[RunStatus | None, RunResult | None, str]:
    handle = client.get_workflow_handle(run_id)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        raise GovflowError(f"no run {run_id}: {exc.message}") from None
    result = None
    if desc.status == WorkflowExecutionStatus.COMPLETED:
        result = await client.get_workflow_handle(run_id, result_type=RunResult).result()
    status = None
    if desc.status in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED):
        status = await run_status(client, run_id)
    return status, result, desc.status.name.lower() if desc.status else "unknown"


def cmd_runs_show(settings: Settings, args: argparse.Namespace) -> int:
    async def go() -> int:
        status, result, state = await run_state(await connect(settings), args.run_id)
        if args.json:
            print_json(
                {
                    "run_id": args.run_id,
                    "execution": state,
                    "status": status.model_dump(mode="json") if status else None,
                    "result": result.model_dump(mode="json") if result else None,
                }
            )
            return 0
        print(f"run {args.run_id}: {state}")
        if status:
            print(
                f"  task {status.task} · item {status.item_key} · mode {status.mode} · requested by {status.requester}"
            )
            print(f"  phase {status.phase}")
            if status.exception:
                print(f"  exception: {status.exception}")
            for p in status.pending:
                print(f"  waiting: {p.action_id} {p.target} {p.record_id or ''} digest {p.digest}")
        if result:
            print(f"  outcome {result.outcome}{': ' + result.reason if result.reason else ''}")
            for a in result.actions:
                print(f"  {a.action_id:<12} {a.target:<28} {a.status}")
            print(f"  evidence rows {result.evidence_rows}; `govflow evidence verify {args.run_id}`")
        return 0

    return asyncio.run(go())


def register(sub: Subparsers) -> None:
    run = sub.add_parser("run", help="submit governed runs")
    run_sub = run.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = run_sub.add_parser("submit", help="start one item through a governed task")
    s.add_argument("--task", required=True)
    s.add_argument("--version", default="1")
    s.add_argument("--item", required=True, help='the item as JSON, e.g. \'{"ticket_id": "T0001"}\'')
    s.add_argument("--key", help="the item key (default: the item's first value)")
    s.add_argument("--as", dest="requester", required=True, help="who requests the run")
    s.add_argument(
        "--mode",
        choices=["shadow", "live"],
        help="without a running rollout (default shadow); a rollout decides itself",
    )
    s.add_argument(
        "--signing-key",
        help="the requester's Ed25519 key file, where the policy requires signed submits "
        "(default: GOVFLOW_KEYS_DIR/<requester>.pem if present)",
    )
    s.add_argument("--wait", action="store_true", help="wait for the outcome; exit " + ", ".join(
        f"{code} {' or '.join(o for o, c in EXIT_BY_OUTCOME.items() if c == code)}"
        for code in sorted(set(EXIT_BY_OUTCOME.values()))) + ", 1 the run failed")  # fmt: skip
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_submit)

    runs = sub.add_parser("runs", help="list and show governed runs")
    runs_sub = runs.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = runs_sub.add_parser("list", help="governed runs, newest first")
    ls.add_argument("--task")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_runs_list)
    show = runs_sub.add_parser("show", help="one run: phase, pending actions, outcome")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_runs_show)
