"""`govflow stack up|down|status`, `govflow db migrate`, `govflow temporal setup`: the services govflow
stands on."""

from __future__ import annotations

import argparse
import asyncio

import asyncpg

from govflow.activities.evidence import migrate
from govflow.cli.answers import Subparsers
from govflow.stack.local import LocalStack
from govflow.workers.settings import Settings, database_url
from govflow.workers.temporal import connect


def cmd_stack_up(settings: Settings, _: argparse.Namespace) -> int:
    info = asyncio.run(LocalStack(settings).up())
    for note in info.notes:
        print(f"  {note}")
    print("govflow stack is up:")
    for line in info.lines():
        print(f"  {line}")
    print("  Stop it with `govflow stack down` (or `make stack-down`).")
    return 0


def cmd_stack_down(settings: Settings, _: argparse.Namespace) -> int:
    stopped = LocalStack(settings).down()
    print("stopped: " + ", ".join(stopped) if stopped else "nothing of the govflow stack was running")
    return 0


def cmd_stack_status(settings: Settings, _: argparse.Namespace) -> int:
    for name, state in LocalStack(settings).status():
        print(f"{name:<9} {state}")
    return 0


def cmd_db_migrate(settings: Settings, _: argparse.Namespace) -> int:
    async def go() -> None:
        conn = await asyncpg.connect(database_url(settings))
        try:
            report = await migrate(conn)
        finally:
            await conn.close()
        for name in report.applied:
            print(f"applied {name}")
        print(f"schema is current ({len(report.applied) + len(report.already)} migrations)")

    asyncio.run(go())
    return 0


def cmd_temporal_setup(settings: Settings, _: argparse.Namespace) -> int:
    from temporalio.api.enums.v1 import IndexedValueType

    from govflow.workers.temporal import register_search_attributes, search_attribute_types

    async def go() -> list[str]:
        client = await connect(settings)
        return await register_search_attributes(client, settings.temporal_namespace)

    added = asyncio.run(go())
    wanted = ", ".join(
        f"{k} ({IndexedValueType.Name(v).removeprefix('INDEXED_VALUE_TYPE_').title()})"
        for k, v in sorted(search_attribute_types().items())
    )
    print(f"namespace {settings.temporal_namespace}: " + (f"added {', '.join(added)}" if added else "nothing to add"))
    print(f"  govflow's search attributes: {wanted}")
    return 0


def register(sub: Subparsers) -> None:
    stack = sub.add_parser("stack", help="the local stack: Temporal dev server + UI, Postgres")
    stack_sub = stack.add_subparsers(dest="action", required=True, metavar="ACTION")
    stack_sub.add_parser("up", help="start it (idempotent)").set_defaults(func=cmd_stack_up)
    stack_sub.add_parser("down", help="stop what `up` started").set_defaults(func=cmd_stack_down)
    stack_sub.add_parser("status", help="say what runs").set_defaults(func=cmd_stack_status)

    db = sub.add_parser("db", help="the evidence database")
    db_sub = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    db_sub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_db_migrate)

    temporal = sub.add_parser("temporal", help="prepare a Temporal namespace (a cluster's, not the local stack's)")
    t_sub = temporal.add_subparsers(dest="action", required=True, metavar="ACTION")
    t_sub.add_parser(
        "setup", help="register govflow's search attributes in GOVFLOW_TEMPORAL_NAMESPACE (idempotent)"
    ).set_defaults(func=cmd_temporal_setup)
