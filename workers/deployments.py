"""`govflow deployments`: Worker Versioning, as an operator sees and moves it.

Workers run as versions of a worker deployment (``govflow worker --deployment NAME --build-id ID``). New
workflows go to the deployment's current version. A governed run is PINNED: it finishes on the build it
started on, so its code needs no patch; a run waiting days for approval keeps that build's workers needed
until it ends (draining). Rollouts, standing grants and notifications are AUTO_UPGRADE: they move to the
current build at their next workflow task, and patch what changes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from temporalio.api.enums.v1 import WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from policies.errors import GovflowError


class DeploymentError(GovflowError):
    """A deployment or version Temporal does not know, or cannot move."""


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
