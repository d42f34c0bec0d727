"""`govflow deployments`: Worker Versioning, as an operator sees and moves it.

Workers run as versions of a worker deployment (``govflow worker --deployment NAME --build-id ID``). New
workflows go to the deployment's current version. A governed run is PINNED: it finishes on the build it
started on, so its code needs no patch; a run waiting days for approval keeps that build's workers needed
until it ends (draining). Rollouts, standing grants and notifications are AUTO_UPGRADE: they move to the
current build at their next workflow task, and patch what changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.enums.v1 import WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode

from govflow.policies.errors import GovflowError
from govflow.workers.settings import Settings

LOCAL_DEPLOYMENT = "govflow-local"
"""The deployment of workers on the local stack (``govflow stack``) on its default queue, unless settings name one."""


def local_deployment(task_queue: str) -> str:
    """The local stack's deployment for the workers of ``task_queue``: one per queue, so that a worker of one's
    own task on its own queue, at another build, never makes itself current for the demo's queue."""
    if task_queue == "govflow":
        return LOCAL_DEPLOYMENT
    return f"{LOCAL_DEPLOYMENT}-" + re.sub(r"[^A-Za-z0-9_-]+", "-", task_queue)[:100]


_CODE = ("workflows", "activities", "policies")
"""The packages whose code a workflow replays (the sandbox passes them through): the local build id is theirs."""


class DeploymentError(GovflowError):
    """A deployment or version Temporal does not know, or cannot move."""


def code_build_id() -> str:
    """A build id for this checkout's workflow code: the digest of every module a workflow replays, so
    a change to any of them is a new build (a run waiting on the old one stays PINNED to it)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(p for package in _CODE for p in (root / package).rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return f"code-{h.hexdigest()[:12]}"


def worker_version(
    settings: Settings, deployment: str | None = None, build_id: str | None = None, make_current: bool = False
) -> tuple[WorkerDeploymentVersion | None, bool]:
    """The version a worker runs as, and whether it makes itself current: the deployment and build id given
    (flags, else settings); on the local stack with neither, the queue's ``local_deployment`` at ``code_build_id()``,
    made current (a new build takes new runs; a waiting run finishes on its own build). Elsewhere, with
    neither, unversioned."""
    name, build = deployment or settings.deployment_name, build_id or settings.build_id
    if (name is None) != (build is None):
        raise GovflowError("--deployment and --build-id go together (or GOVFLOW_DEPLOYMENT_NAME and GOVFLOW_BUILD_ID)")
    if make_current and name is None:
        raise GovflowError("--make-current needs --deployment and --build-id")
    if name is None and settings.embedded_temporal:
        local = WorkerDeploymentVersion(deployment_name=local_deployment(settings.task_queue), build_id=code_build_id())
        return local, True
    if name is None or build is None:
        return None, False
    return WorkerDeploymentVersion(deployment_name=name, build_id=build), make_current


@dataclass(frozen=True)
class VersionLine:
    build_id: str
    status: str
    pinned_running: int
    """Governed runs still running on this build (they keep its workers needed)."""


async def set_current(client: Client, deployment_name: str, build_id: str, *, wait_s: float = 30.0) -> None:
    """Make ``build_id`` its deployment's current version: new workflows start there. A version exists once
    one of its workers has polled, so a worker just started is waited for (``wait_s``)."""
    request = SetWorkerDeploymentCurrentVersionRequest(
        namespace=client.namespace, deployment_name=deployment_name, build_id=build_id, identity="govflow"
    )
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        try:
            await client.workflow_service.set_worker_deployment_current_version(request)
            return
        except RPCError as exc:
            retry = exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION, RPCStatusCode.ABORTED)
            if not retry or asyncio.get_running_loop().time() > deadline:
                raise DeploymentError(
                    f"cannot make build {build_id} the current version of {deployment_name}: {exc.message}; "
                    f"is a worker with --deployment {deployment_name} --build-id {build_id} running?"
                ) from None
        await asyncio.sleep(0.2)


async def versions(client: Client, deployment_name: str) -> list[VersionLine]:
    """Each build of the deployment, with its status and the governed runs pinned to it that still run."""
    try:
        described = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment_name)
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise DeploymentError(
                f"no worker deployment {deployment_name!r}: start a worker with --deployment {deployment_name}"
            ) from None
        raise
    out = []
    for summary in described.worker_deployment_info.version_summaries:
        build = summary.deployment_version.build_id
        version = f"{deployment_name}:{build}"
        query = (
            f"TemporalWorkerDeploymentVersion = '{version}' AND ExecutionStatus = 'Running' "
            "AND WorkflowType = 'GovernedRun'"
        )
        pinned = (await client.count_workflows(query)).count
        status = WorkerDeploymentVersionStatus.Name(summary.status).removeprefix("WORKER_DEPLOYMENT_VERSION_STATUS_")
        out.append(VersionLine(build_id=build, status=status.lower(), pinned_running=pinned))
    return out


def render(deployment_name: str, lines: list[VersionLine]) -> str:
    rows = [f"worker deployment {deployment_name}:"]
    for line in lines:
        rows.append(
            f"  build {line.build_id:<24} {line.status:<9} {line.pinned_running} governed run(s) pinned, running"
        )
    draining = [line for line in lines if line.status != "current" and line.pinned_running]
    if draining:
        rows.append(
            "A build whose runs still run keeps its workers needed (a pinned run waiting for approval finishes on "
            "the build it started on): keep them up until its count is 0, then stop them."
        )
    return "\n".join(rows)
