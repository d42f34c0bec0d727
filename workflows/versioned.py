"""The workflows as a versioned worker registers them (Worker Versioning): the same classes, each with its
versioning behaviour. A governed run is PINNED: it finishes on the build it started on, so a change to its
code needs no patch. Rollouts, standing grants and notifications outlive a deploy: AUTO_UPGRADE, they move
to the deployment's current build at their next workflow task, and patch what changes.

Why copies: a workflow definition that states a behaviour cannot run on an unversioned worker (Core refuses
the completion: "versioning behavior cannot be specified without deployment options"), and govflow runs
both (the time-skipping test server knows no deployments). So the classes in workflows/ state none, and
these subclasses carry the same definition with the behaviour set. They live in a module of their own,
by name, because the sandbox imports a workflow class by its module and name.
"""

from __future__ import annotations

import dataclasses

from temporalio import workflow
from temporalio.common import VersioningBehavior

from govflow.workflows import handlers
from govflow.workflows.governed_run import GovernedRunWorkflow
from govflow.workflows.notify import NotifyWorkflow
from govflow.workflows.rollout import RolloutWorkflow
from govflow.workflows.standing_grant import StandingGrantWorkflow


def _versioned(cls: type) -> type:
    """``cls`` with its versioning behaviour: PINNED if it says so (``PINNED = True``: one generation, no
    patch), else AUTO_UPGRADE."""
    behavior = VersioningBehavior.PINNED if handlers.pinned(cls) else VersioningBehavior.AUTO_UPGRADE
    name = f"{cls.__name__.removesuffix('Workflow')}{'Pinned' if handlers.pinned(cls) else 'AutoUpgrade'}"
    versioned = type(name, (cls,), {"__module__": __name__, "__qualname__": name, "__doc__": cls.__doc__})
    # The SDK keeps a class's definition on this attribute and checks it belongs to that class.
    defn = dataclasses.replace(workflow._Definition.must_from_class(cls), cls=versioned, versioning_behavior=behavior)
    setattr(versioned, "__temporal_workflow_definition", defn)
    globals()[name] = versioned  # the sandbox imports a workflow class by its module and name
    return versioned


VERSIONED: dict[type, type] = {
    cls: _versioned(cls) for cls in (GovernedRunWorkflow, RolloutWorkflow, StandingGrantWorkflow, NotifyWorkflow)
}
"""Each workflow, to the class a versioned worker registers in its place."""
