"""`govflow policy check | explain | audit | diff | whatif` (and `show | history`: govflow/cli/policy_versions)."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError
from temporalio.client import Client

from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence.events import RolloutStarted, parse_event
from govflow.cli import policy_versions
from govflow.cli.answers import Subparsers
from govflow.cli.answers import since as parse_since
from govflow.client import running_rollout
from govflow.policies import (
    Action,
    NeedsApproval,
    Policy,
    PolicyError,
    PolicyIssue,
    RunContext,
    audit,
    decide,
    load_policy,
    policy_digest,
)
from govflow.policies.audit import AuditLine, blocking
from govflow.policies.diff import diff
from govflow.policies.errors import GovflowError
from govflow.policies.matching import why
from govflow.whatif import WhatIfReport, collect, render, whatif
from govflow.workers.settings import Settings, database_url
from govflow.workers.temporal import connect


def cmd_check(args: argparse.Namespace) -> int:
    if not args.files and not args.app:
        raise GovflowError("policy check: name policy FILEs, or --app MODULE:ATTR to check a worker's tasks")
    failed = _check_app(args.app) if args.app else 0
    for path in args.files:
        try:
            load_policy(path)
        except PolicyError as exc:
            failed += 1
            for issue in exc.issues:
                print(str(issue))
            continue
        print(f"policy {path}: ok")
    return 1 if failed else 0


def _check_app(spec: str) -> int:
    """The findings of ``policy check --app``: the worker's tasks, each policy against its task and data."""
    from govflow.activities.registry import Registration
    from govflow.workers.app import load_app
    from govflow.workers.fit import fit
    from govflow.workers.settings import load_settings

    settings = load_settings()
    try:
        registry = load_app(spec, settings, database_url(settings))
    except PolicyError as exc:
        for issue in exc.issues:
            print(str(issue))
        return 1

    async def go() -> list[tuple[Registration, list[PolicyIssue]]]:
        try:
            return await fit(registry)
        finally:
            await registry.aclose()

    found = asyncio.run(go())
    for _, issues in found:
        for issue in issues:
            print(str(issue))
    for reg, issues in found:
        where = reg.source or f"policy {reg.policy.name}"
        print(
            f"task {reg.task.name} v{reg.task.version}: {where}: " + (f"{len(issues)} finding(s)" if issues else "ok")
        )
    return 1 if any(issues for _, issues in found) else 0


def cmd_explain(args: argparse.Namespace) -> int:
    policy = load_policy(args.file)
    try:
        action = Action.model_validate_json(args.action)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'action'}: {e['msg']}" for e in exc.errors())
        raise GovflowError(f"--action is not a valid action: {problems}") from None
    record = json.loads(args.record) if args.record else None
    try:
        reads = {k: tuple(v) for k, v in json.loads(args.reads).items()} if args.reads else {}
    except (ValueError, AttributeError, TypeError) as exc:
        raise GovflowError(f"--reads is not JSON of resource -> list of records: {exc}") from None
    ctx = RunContext(run_id="explain", requester=args.requester, now=datetime.now(UTC), record=record, reads=reads)
    decision = decide(policy, action, ctx)
    print(f"action   {action.target} record {action.record_id} fields {json.dumps(action.fields)}")
    print(f"digest   {action.digest()}")
    print(f"decision {decision.kind}")
    print(f"reason   {decision.reason}")
    for rule in policy.actions:
        tests = why(rule, action, record)
        if all(holds for holds, _ in tests):
            said = "; ".join(text for _, text in tests[1:] if "cannot be told" in text or ":" in text)
            print(f"applies  rule {rule.name}" + (f": {said}" if said else ""))
    if isinstance(decision, NeedsApproval):
        for gate in decision.gates:
            sod = "on" if gate.separation_of_duties else "off"
            signature = "required" if gate.signature_required else "no"
            expiry = gate.on_expiry if isinstance(gate.on_expiry, str) else f"escalate to {gate.on_expiry.to_role}"
            print(
                f"gate     rule {gate.rule}: {gate.quorum} of [{', '.join(gate.eligible)}], "
                f"separation of duties {sod}, signature {signature}, "
                f"expires {gate.expires_at.isoformat()}, on expiry {expiry}"
            )
            for person, reason in [*gate.excluded.items(), *gate.over_limit.items()]:
                print(f"not      {person}: {reason}")
            for what in gate.unchecked:
                print(f"nobody   {what}")
    else:
        print(f"rule     {', '.join(decision.rules) if decision.kind == 'allow' else decision.rule}")
    return 0


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    policy = load_policy(args.file)
    lines = audit(policy)
    if args.task:

        async def go() -> list[AuditLine]:
            async with EvidenceStore.open(database_url(settings)) as store:
                client = await connect(settings)
                return [await drift_line(client, store, policy, args.task, args.version),
                        await backtest_line(client, store, policy, args.task, args.version)]  # fmt: skip

        lines += asyncio.run(go())
    marks = {"ok": "ok      ", "gap": "GAP     ", "blocking": "BLOCKING"}
    print(f"Production readiness of policy {policy.name} ({args.file})")
    for line in lines:
        print(f"  [{marks[line.status]}] {line.question}")
        print(f"             {line.detail}")
    if blocking(lines):
        print("Blocking gaps: fix them before launch.")
        return 1
    gaps = sum(line.status == "gap" for line in lines)
    print(f"No blocking gaps ({gaps} non-blocking).")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    old, new = load_policy(args.old), load_policy(args.new)
    lines = diff(old, new)
    if not lines:
        print(f"{args.old} and {args.new}: no semantic difference")
        return 0
    raises = sum(line.exposure == "raises" for line in lines)
    print(f"{args.old} -> {args.new}: {len(lines)} changes, {raises} raising exposure")
    for line in lines:
        print(f"  {line}")
    return 0


def cmd_whatif(settings: Settings, args: argparse.Namespace) -> int:
    candidate = load_policy(args.candidate)
    if args.runs is not None and args.runs < 1:
        raise GovflowError("--runs must be at least 1")
    since = parse_since(args.since)

    async def go() -> WhatIfReport:
        async with EvidenceStore.open(database_url(settings)) as store:
            evidence = await collect(store, args.task, args.version, since, args.runs or 1_000_000)
        return whatif(candidate, evidence, args.task, args.version)

    report = asyncio.run(go())
    print(render(report), end="")
    if args.out:
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "whatif.json").write_text(report.model_dump_json(indent=2) + "\n")
            (out / "whatif.md").write_text(render(report, markdown=True, limit=1000))
        except OSError as exc:
            raise GovflowError(f"--out {out}: cannot write: {exc.strerror}") from None
        print(f"wrote {out / 'whatif.json'} and {out / 'whatif.md'}")
    return 0


def register(sub: Subparsers) -> None:
    policy = sub.add_parser("policy", help="check, explain and audit policy files")
    psub = policy.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = psub.add_parser("check", help="validate policy files, or a worker app's policies against its tasks; "
                            "list every error")  # fmt: skip
    check.add_argument("files", nargs="*", metavar="FILE")
    check.add_argument("--app", metavar="MODULE:ATTR", help="also check the policies of the tasks this app registers "
                       "(as `govflow worker --app` takes it) against their data: grant fields against the tables' "
                       "columns, promoters to resume a pause")  # fmt: skip
    check.set_defaults(func=cmd_check, needs_settings=False)
    explain = psub.add_parser("explain", help="print the decision for one action and the rule behind it")
    explain.add_argument("file", metavar="FILE")
    explain.add_argument(
        "--action",
        required=True,
        help='JSON, e.g. \'{"action_id":"a1","system":"crm","resource":"contact",'
        '"operation":"update","record_id":"42","fields":{"status":"churn-risk"}}\'',
    )
    explain.add_argument("--requester", default="requester", help="who asks for the run")
    explain.add_argument("--record", help="the record's current values as JSON (for record filters)")
    explain.add_argument(
        "--reads",
        help="the records the run read, by resource, as JSON (for approval.not_by), e.g. "
        '\'{"purchase_order": [{"id": "PO-1", "requested_by": "dana"}]}\'',
    )
    explain.set_defaults(func=cmd_explain, needs_settings=False)
    aud = psub.add_parser("audit", help="production-readiness report; exit 1 on a blocking gap")
    aud.add_argument("file", metavar="FILE")
    aud.add_argument("--task", help="also check that the task's running rollout runs this file (reads Temporal "
                     "and the evidence)")  # fmt: skip
    aud.add_argument("--version", default="1", help="with --task: the task version (default 1)")
    aud.set_defaults(func=cmd_audit)
    dif = psub.add_parser("diff", help="what changed between two policies, each change raising or lowering exposure")
    dif.add_argument("old", metavar="OLD")
    dif.add_argument("new", metavar="NEW")
    dif.set_defaults(func=cmd_diff, needs_settings=False)
    wi = psub.add_parser("whatif", help="what a candidate policy would have done to past runs and rollouts")
    wi.add_argument("candidate", metavar="CANDIDATE")
    wi.add_argument("--task", required=True, help="the task whose evidence to replay")
    wi.add_argument("--version", help="one version of the task (default: every version)")
    window = wi.add_mutually_exclusive_group()
    window.add_argument("--since", help="only runs started within this long, e.g. 30d or 12h")
    window.add_argument("--runs", type=int, help="only the newest N runs")
    wi.add_argument("--out", help="also write whatif.json and whatif.md into this folder")
    wi.set_defaults(func=cmd_whatif)
    policy_versions.register(psub)


# --- what runs now ---------------------------------------------------------------------------------------


async def running_policy(client: Client, store: EvidenceStore, task: str, version: str) -> tuple[str, str] | None:
    """The policy digest the task version's running rollout decides under, and where that was read:
    the newest run it admitted, else its ``rollout_started`` row. None when no rollout of it runs."""
    rollout_id = await running_rollout(client, task, version)
    if rollout_id is None:
        return None
    admitted = await store.rollout_runs(rollout_id)
    if admitted:
        newest = await store.run(admitted[-1])
        if newest is not None:
            return newest.policy_digest, f"run {newest.run_id}, the newest it admitted"
    for row in reversed(await store.events("rollout", rollout_id)):
        event = parse_event(row["kind"], row["payload"])
        if isinstance(event, RolloutStarted):
            return event.policy_digest, f"{rollout_id}'s rollout_started row"
    return None


async def backtest_line(client: Client, store: EvidenceStore, policy: Policy, task: str, version: str) -> AuditLine:
    """The audit finding: did the running rollout start on a backtest, where the policy asks for one?"""
    question = f"Did the running rollout of {task} v{version} start on a backtest the policy accepts?"
    rollout_id = await running_rollout(client, task, version)
    started = None
    for row in await store.events("rollout", rollout_id) if rollout_id else []:
        event = parse_event(row["kind"], row["payload"])
        started = event if isinstance(event, RolloutStarted) else started
    if policy.rollout.backtest is None or started is None:
        why = "the policy asks for none" if policy.rollout.backtest is None else f"no rollout of {task} v{version} runs"
        return AuditLine(question=question, status="ok", detail=why)
    if started.backtest:
        return AuditLine(question=question, status="ok", detail=f"yes: backtest {started.backtest}")
    return AuditLine(question=question, status="gap",
                     detail=f"no: {rollout_id} started without one (before rollout.backtest, or before the "
                     "backtest-gate): run `govflow backtest` and start the rollout again")  # fmt: skip


async def drift_line(client: Client, store: EvidenceStore, policy: Policy, task: str, version: str) -> AuditLine:
    """The audit finding: does the running rollout of ``task`` ``version`` run this policy file?"""
    question = f"Does the running rollout of {task} v{version} run this file?"
    running = await running_policy(client, store, task, version)
    if running is None:
        return AuditLine(question=question, status="ok", detail=f"no rollout of {task} v{version} runs")
    digest, where = running
    mine = policy_digest(policy)
    if digest == mine:
        return AuditLine(question=question, status="ok", detail=f"yes: policy {mine[:12]} ({where})")
    return AuditLine(
        question=question, status="blocking",
        detail=f"no: it runs policy {digest[:12]} ({where}), this file is {mine[:12]}: this audit is not of what "
        f"decides. Read what runs with `govflow policy show {digest[:12]}` and audit that, or deploy this file to "
        "the workers (`govflow policy whatif` it first)",
    )  # fmt: skip
