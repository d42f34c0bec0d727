"""The govflow worker: every workflow and activity govflow ships, on one task queue."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import start_http_server
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.worker import Worker, WorkerDeploymentConfig
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from govflow.activities.evidence import EvidenceStore
from govflow.activities.grant_activities import GrantActivities
from govflow.activities.notify_activities import NotifyActivities
from govflow.activities.passkey_activities import PasskeyActivities
from govflow.activities.registry import Registry
from govflow.activities.rollout_activities import RolloutActivities
from govflow.activities.run_activities import RunActivities
from govflow.policies.errors import GovflowError
from govflow.workflows import handlers
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.notify import NotifyWorkflow
from govflow.workflows.rollout import RolloutWorkflow
from govflow.workflows.standing_grant import StandingGrantWorkflow
from govflow.workflows.versioned import VERSIONED

WORKFLOWS: tuple[type, ...] = (GovernedRunWorkflow, RolloutWorkflow, NotifyWorkflow, StandingGrantWorkflow)
"""Every workflow a govflow worker runs."""


def untrusted_handler_problems(workflows: Sequence[type]) -> list[str]:
    """Handlers of ``workflows`` that would take typed input (workflows/handlers.py says why that wedges)."""
    return [problem for cls in workflows for problem in handlers.problems(cls)]


def build_worker(
    client: Client,
    task_queue: str,
    store: EvidenceStore,
    registry: Registry | None = None,
    *,
    workflows: Sequence[type] = (),
    extra_activities: Sequence[Callable[..., Any]] = (),
    passthrough: Sequence[str] = (),
    ui_url: str | None = None,
    deployment: WorkerDeploymentVersion | None = None,
    console: str | None = None,
    **worker_options: Any,
) -> Worker:
    """A worker for govflow's workflows and activities (plus any given, for tests). ``ui_url``: the
    Temporal UI, for the links in notifications of pending approvals. ``deployment``: Worker Versioning's
    deployment and build id; a governed run is then PINNED to the build it started on (it needs no patch),
    the long-lived workflows move to the deployment's current build (AUTO_UPGRADE, patched where they change)."""
    problems = untrusted_handler_problems([*WORKFLOWS, *workflows])
    if problems:
        raise GovflowError("refusing to run workflows whose handlers take typed input: " + "; ".join(problems))
    registry = registry or Registry()
    runs = RunActivities(registry, store, client, console=console)
    rollouts = RolloutActivities(registry, store, client)
    notices = NotifyActivities(registry, store, client, ui_url=ui_url, namespace=client.namespace, console=console)
    grants = GrantActivities(registry, store, client)
    passkeys = PasskeyActivities(registry, store, client, console=console)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[VERSIONED.get(w, w) if deployment is not None else w for w in [*WORKFLOWS, *workflows]],
        activities=[*runs.all(), *rollouts.all(), *notices.all(), *grants.all(), *passkeys.all(), *extra_activities],
        workflow_runner=workflow_runner(*passthrough),
        deployment_config=(
            WorkerDeploymentConfig(version=deployment, use_worker_versioning=True) if deployment is not None else None
        ),
        **worker_options,
    )


def workflow_runner(*passthrough: str) -> SandboxedWorkflowRunner:
    """The sandbox, with the modules our deterministic code uses passed through.

    Re-importing native extensions inside the sandbox crashes the process:
    cryptography's Rust module aborts (PyO3 modules initialise once per process)
    and asyncpg segfaults. Our own packages are passed through too: re-executing
    them for every new workflow instance was the largest cost of a governed run
    (bench/governed_vs_bare.py); they hold no mutable module state, and replay
    tests guard determinism. Replayers must use the same runner.
    """
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            "asyncpg",
            "httpx",
            "cryptography",
            "pydantic",
            "pydantic_core",
            "rfc8785",
            "yaml",
            "webauthn",
            "cbor2",
            "govflow",
            *passthrough,
        )
    )


async def run_worker(
    client: Client,
    task_queue: str,
    database_url: str,
    registry: Registry,
    metrics_port: int = 0,
    ui_url: str | None = None,
    deployment: WorkerDeploymentVersion | None = None,
    make_current: bool = False,
    console: str | None = None,
) -> None:
    """Run until SIGINT or SIGTERM, then drain and stop; serve govflow_* metrics on ``metrics_port`` (0: off).
    With ``deployment`` and ``make_current``, this build becomes its deployment's current version once it polls.
    ``console``: the reviewer console's origin, for the links in notifications."""
    if metrics_port:
        try:
            start_http_server(metrics_port)
        except OSError as exc:
            raise GovflowError(
                f"cannot serve metrics on port {metrics_port} ({exc.strerror}): "
                "set GOVFLOW_METRICS_PORT to a free port, or 0 for none"
            ) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with EvidenceStore.open(database_url) as store:
        worker = build_worker(
            client, task_queue, store, registry, ui_url=ui_url, deployment=deployment, console=console
        )
        async with worker:
            tasks = ", ".join(f"{r.task.name} v{r.task.version}" for r in registry) or "none"
            version = f" as {deployment.deployment_name} build {deployment.build_id}" if deployment else ""
            print(f"govflow worker polling task queue {task_queue!r}{version}; tasks: {tasks}; Ctrl-C stops it",
                  flush=True)  # fmt: skip
            if deployment is not None and make_current:
                from govflow.workers.deployments import set_current

                await set_current(client, deployment.deployment_name, deployment.build_id)
                print(f"build {deployment.build_id} is now the current version of {deployment.deployment_name}",
                      flush=True)  # fmt: skip
            await stop.wait()
    await registry.aclose()
