"""`govflow worker` and `govflow deployments`: serve tasks, and see and move Worker Versioning's builds."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from govflow.cli.answers import Subparsers
from govflow.policies.errors import GovflowError
from govflow.stack.processes import port_in_use
from govflow.workers.settings import Settings, database_url
from govflow.workers.temporal import connect, metrics_runtime


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from govflow.examples import default_app, ensure_example_sors
    from govflow.workers.app import load_app
    from govflow.workers.deployments import worker_version
    from govflow.workers.fit import fit
    from govflow.workers.worker import run_worker

    for port, var in (
        (settings.metrics_port, "GOVFLOW_METRICS_PORT"),
        (settings.sdk_metrics_port, "GOVFLOW_SDK_METRICS_PORT"),
    ):
        if port and port_in_use(port):
            raise GovflowError(
                f"port {port} ({var}) is in use, perhaps by another worker on this machine (the demo's serves "
                f"9464 and 9465): give this worker its own with {var}=<free port>, or {var}=0 for no endpoint"
            )

    async def go() -> None:
        db_url = database_url(settings)
        if args.app:
            registry = load_app(args.app, settings, db_url)
        else:
            await ensure_example_sors(db_url)
            registry = default_app(settings, db_url)
        for _, issues in await fit(registry):  # what `policy check --app` finds, said where the worker's log is read
            for issue in issues:
                print(f"govflow: warning: {issue}", file=sys.stderr)
        client = await connect(settings, metrics_runtime(settings))
        deployment, make_current = worker_version(settings, args.deployment, args.build_id, args.make_current)
        # Notifications link to the console where one serves reviewers: the local stack's, or a configured one.
        console = settings.console_url if settings.console_origin or settings.embedded_temporal else None
        await run_worker(client, settings.task_queue, db_url, registry, settings.metrics_port, settings.ui_url,
                         deployment=deployment, make_current=make_current, console=console)  # fmt: skip

    asyncio.run(go())
    return 0


def cmd_deployments(settings: Settings, args: argparse.Namespace) -> int:
    from govflow.workers.deployments import local_deployment, render, set_current, versions

    local = local_deployment(settings.task_queue) if settings.embedded_temporal else None
    name = args.deployment or settings.deployment_name or local
    if not name:
        raise GovflowError("deployments: name the deployment with --deployment NAME (or GOVFLOW_DEPLOYMENT_NAME)")

    async def go() -> str:
        client = await connect(settings)
        if args.set_current:
            await set_current(client, name, args.set_current, wait_s=0.0)
        return render(name, await versions(client, name))

    print(asyncio.run(go()))
    return 0


def register(sub: Subparsers) -> None:
    worker = sub.add_parser("worker", help="run a worker on GOVFLOW_TASK_QUEUE")
    worker.add_argument(
        "--app",
        default=os.environ.get("GOVFLOW_APP"),
        help="module:attr of your Registry (or a function (settings, database_url) -> Registry); "
        "a comma list serves several apps; default: both examples (support triage, invoice matching)",
    )
    worker.add_argument(
        "--deployment",
        metavar="NAME",
        help="Worker Versioning: run as a version of this worker deployment (GOVFLOW_DEPLOYMENT_NAME); a governed "
        "run then finishes on the build it started on, rollouts and grants move to the current build. On the "
        "local stack, with neither this nor --build-id: govflow-local (govflow-local-QUEUE on a queue of its own), "
        "at a build id from the workflow code, made current",
    )
    worker.add_argument("--build-id", metavar="ID", help="this worker's build id in the deployment (GOVFLOW_BUILD_ID)")
    worker.add_argument(
        "--make-current",
        action="store_true",
        help="once polling, make this build the deployment's current version (new runs start on it)",
    )
    worker.set_defaults(func=cmd_worker)
    deployments = sub.add_parser(
        "deployments", help="Worker Versioning: each build of a deployment, its status, the runs pinned to it"
    )
    deployments.add_argument(
        "--deployment",
        metavar="NAME",
        help="the deployment (default: GOVFLOW_DEPLOYMENT_NAME; on the local stack govflow-local, or "
        "govflow-local-QUEUE for GOVFLOW_TASK_QUEUE's)",
    )
    deployments.add_argument(
        "--set-current", metavar="BUILD_ID", help="make this build the current version: new runs start on it"
    )
    deployments.set_defaults(func=cmd_deployments)
