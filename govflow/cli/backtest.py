"""`govflow backtest --task T --candidate VERSION`: a candidate on recorded inputs, scored against what
reviewers decided (the work is govflow/backtest.py)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable
from dataclasses import asdict
from pathlib import Path

from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry
from govflow.backtest import BacktestReport, backtest
from govflow.cli.answers import Subparsers, since
from govflow.cli.report import with_app
from govflow.workers.settings import Settings


def cmd_backtest(settings: Settings, args: argparse.Namespace) -> int:
    def work(store: EvidenceStore, registry: Registry) -> Awaitable[BacktestReport]:
        return backtest(store, registry, args.task, args.candidate, since=since(args.since), runs=args.runs,
                        concurrency=args.concurrency)  # fmt: skip

    report = with_app(settings, args.app, work)
    text = "\n".join(report.lines()) + "\n"
    print(text, end="")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "backtest.json").write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
        (out / "backtest.md").write_text(f"# Backtest of {report.task} v{report.candidate}\n\n```\n{text}```\n")
        print(f"wrote {out / 'backtest.json'} and {out / 'backtest.md'}")
    return 0


def register(sub: Subparsers) -> None:
    bt = sub.add_parser(
        "backtest", help="a candidate task version on recorded inputs, scored against what reviewers decided"
    )
    bt.add_argument("--task", required=True)
    bt.add_argument("--candidate", required=True, metavar="VERSION", help="a task version the app registers")
    bt.add_argument("--app", help="module:attr of the app registering the candidate (default: the worker's)")
    bt.add_argument("--since", help="only runs started since: a duration back (30d) or an ISO 8601 time")
    bt.add_argument("--runs", type=int, default=1_000_000, help="at most this many runs, newest first")
    bt.add_argument("--concurrency", type=int, default=8, help="proposals in flight at once (default 8)")
    bt.add_argument("--out", help="also write backtest.json and backtest.md into this folder")
    bt.set_defaults(func=cmd_backtest)
