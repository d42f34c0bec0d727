"""`govflow policy show DIGEST | history --task T`: the policy versions that decided, from the evidence."""

from __future__ import annotations

import argparse
import asyncio
import json

import yaml

from govflow.activities.evidence import EvidenceStore
from govflow.activities.evidence.policy_events import PolicyRecorded, PolicyUsed
from govflow.activities.evidence.policy_ledger import PolicyVersion, policy_history, policy_version
from govflow.cli.answers import Subparsers
from govflow.policies import Policy, policy_from_json
from govflow.policies.diff import diff
from govflow.workers.settings import Settings, database_url


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    async def go() -> PolicyVersion:
        async with EvidenceStore.open(database_url(settings)) as store:
            return await policy_version(store, args.digest)

    found = asyncio.run(go())
    recorded = found.recorded
    if args.json:  # the exact bytes the digest is the sha256 of
        print(recorded.text)
        return 0 if found.verified else 1
    state = "verifies" if found.verified else "DOES NOT VERIFY (its chain, or sha256 of its text against the digest)"
    print(f"# policy {recorded.name} v{recorded.version}, digest {recorded.digest}")
    print(f"# recorded in the evidence (stream policy): {state}")
    print("# `--json` prints the canonical JSON the digest is the sha256 of")
    for use in found.uses:
        at = use.first_used_at.isoformat()
        print(f"# first used by {use.task} v{use.task_version} at {at} (run {use.first_run})")
    print(yaml.safe_dump(json.loads(recorded.text), sort_keys=False, allow_unicode=True), end="")
    return 0 if found.verified else 1


def cmd_history(settings: Settings, args: argparse.Namespace) -> int:
    async def go() -> list[tuple[PolicyUsed, PolicyRecorded]]:
        async with EvidenceStore.open(database_url(settings)) as store:
            return list(await policy_history(store, args.task))

    history = asyncio.run(go())
    if not history:
        print(f"no policy version of task {args.task} in the evidence yet (one is recorded when a run first uses it)")
        return 0
    print(f"Policy versions task {args.task} ran under, by first use:")
    before: tuple[str, Policy] | None = None
    for used, recorded in history:
        print(f"  {used.first_used_at:%Y-%m-%d %H:%M:%S} UTC  v{used.task_version:<8} policy {recorded.name} "
              f"v{recorded.version}  {recorded.digest[:12]}  first run {used.first_run}")  # fmt: skip
        policy = policy_from_json(recorded.text)
        if before is not None and before[0] != recorded.digest:
            changes = [str(line) for line in diff(before[1], policy)]
            for text in changes or ["no semantic difference"]:
                print(f"      {text}")
        before = (recorded.digest, policy)
    print("The text of each: govflow policy show DIGEST")
    return 0


def register(psub: Subparsers) -> None:
    show = psub.add_parser("show", help="the text of a policy version that decided, by its digest (from the evidence)")
    show.add_argument("digest", metavar="DIGEST", help="a policy digest (as runs record it; 8 characters at least)")
    show.add_argument("--json", action="store_true", help="print the canonical JSON whose sha256 is the digest")
    show.set_defaults(func=cmd_show)
    hist = psub.add_parser("history", help="the policy versions a task ran under, over time, with what changed")
    hist.add_argument("--task", required=True, help="the task's name")
    hist.set_defaults(func=cmd_history)
