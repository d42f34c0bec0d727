"""`govflow report approvals | writes`: populations for auditors (the work is govflow/reports.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from govflow.activities.evidence import EvidenceStore
from govflow.activities.registry import Registry
from govflow.cli.answers import Subparsers, since
from govflow.reports import (
    ApprovalsReport,
    CoverageReport,
    WritesReport,
    approvals_report,
    as_csv,
    as_json,
    coverage_report,
    writes_report,
)
from govflow.workers.settings import Settings, database_url

T = TypeVar("T")


def _emit(report: ApprovalsReport | WritesReport | CoverageReport, rows: list[Any], fmt: str, out: str | None) -> None:
    renders = {"json": lambda: as_json(report), "csv": lambda: as_csv(rows)}
    text = renders.get(fmt, lambda: "\n".join(report.lines()) + "\n")()
    if out:
        Path(out).write_text(text)
        print(f"wrote {out}")
    else:
        print(text, end="")


def cmd_approvals(settings: Settings, args: argparse.Namespace) -> int:
    async def go() -> ApprovalsReport:
        async with EvidenceStore.open(database_url(settings)) as store:
            return await approvals_report(store, args.task, since(args.since))

    report = asyncio.run(go())
    _emit(report, report.decisions, args.format, args.out)
    return 0


def with_app(settings: Settings, app: str | None, work: Callable[[EvidenceStore, Registry], Awaitable[T]]) -> T:
    """``work`` over the evidence store and the app's registry (``--app``, else GOVFLOW_APP, else the worker's
    default), whose connectors reach the systems of record; both closed after."""
    from govflow.workers.app import DEFAULT_APP, load_app

    async def go() -> T:
        db = database_url(settings)
        registry = load_app(app or os.environ.get("GOVFLOW_APP") or DEFAULT_APP, settings, db)
        try:
            async with EvidenceStore.open(db) as store:
                return await work(store, registry)
        finally:
            await registry.aclose()

    return asyncio.run(go())


def cmd_writes(settings: Settings, args: argparse.Namespace) -> int:
    report = with_app(settings, args.app, lambda store, registry: writes_report(store, registry, args.task))
    _emit(report, report.writes, args.format, args.out)
    return 1 if report.missing or report.without_a_run else 0


def cmd_coverage(settings: Settings, args: argparse.Namespace) -> int:
    report = with_app(settings, args.app, lambda store, registry: coverage_report(store, registry, args.task))
    _emit(report, report.items, args.format, args.out)
    return 0


def register(sub: Subparsers) -> None:
    report = sub.add_parser("report", help="populations for auditors: every decision, every write reconciled")
    rsub = report.add_subparsers(dest="action", required=True, metavar="REPORT")
    appr = rsub.add_parser("approvals", help="every approval decision by approver, rule, outcome and amount")
    appr.add_argument("--task", help="one task (default: all)")
    appr.add_argument("--since", help="a duration back from now (30d, 12h) or an ISO 8601 time")
    wr = rsub.add_parser(
        "writes",
        help="every live write with its run and approvals, reconciled with the system of record (exit 1 on a gap)",
    )
    wr.add_argument("--task", required=True, help="the task's name")
    wr.add_argument(
        "--app", help="module:attr of the app whose connectors reach the system of record (default: the worker's)"
    )
    cov = rsub.add_parser(
        "coverage", help="the items the system of record holds, against those that went through a run"
    )
    cov.add_argument("--task", required=True, help="the task's name (it says how to count its items)")
    cov.add_argument("--app", help="module:attr of the app whose connectors reach the system of record")
    for p, func in ((appr, cmd_approvals), (wr, cmd_writes), (cov, cmd_coverage)):
        p.add_argument("--format", choices=("text", "csv", "json"), default="text")
        p.add_argument("--out", metavar="FILE", help="write the report here instead of printing it")
        p.set_defaults(func=func)
