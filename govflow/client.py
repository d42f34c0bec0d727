"""Drive govflow from your own code: submit runs, vote, decide exceptions, operate rollouts.

A thin public name for ``workers.client`` (connect with ``workers.temporal.connect(Settings())``).
"""

from __future__ import annotations

from govflow.workers.client import (
    COMMANDS,
    admit,
    control,
    grant_act,
    grant_status,
    propose_grant,
    resolve,
    review,
    revoke_grant,
    rollout_id,
    rollout_status,
    run_status,
    running_rollout,
    start_rollout,
    submit,
)
from govflow.workers.settings import Settings, load_settings
from govflow.workers.temporal import connect

__all__ = [
    "COMMANDS",
    "Settings",
    "admit",
    "connect",
    "control",
    "grant_act",
    "grant_status",
    "load_settings",
    "propose_grant",
    "resolve",
    "review",
    "revoke_grant",
    "rollout_id",
    "rollout_status",
    "run_status",
    "running_rollout",
    "start_rollout",
    "submit",
]
