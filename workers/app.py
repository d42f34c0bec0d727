"""What a worker runs: an :class:`activities.registry.Registry` of tasks.

``govflow worker`` loads ``GOVFLOW_APP`` / ``--app module:attr``, where ``attr``
is a Registry or a function ``(Settings) -> Registry``. The default is the
support-triage example over the local stack's system-of-record database.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from activities.connectors import SharedPool
from activities.registry import Registry
from activities.tasks import support_triage
from policies import Policy
from policies.errors import GovflowError
from workers.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[1] / "policies" / "examples"
SOR_DATABASE = "support_sor"


def example_registry(
    sor_dsn: str, *, degraded: float = 0.0, policy: Policy | Path = EXAMPLES / "support-triage.yaml"
) -> Registry:
    """The support-triage example: one line registers the task with its policy (a file, or a loaded one)."""
    registry = Registry()
    registry.register(
        support_triage.SupportTriage(),
        policy=policy,
        connectors=support_triage.connectors(SharedPool(sor_dsn)),
        model=support_triage.baseline_model(degraded),
    )
    return registry


def load_app(spec: str, settings: Settings, database_url: str) -> Registry:
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise GovflowError(f"--app {spec!r}: write it as module:attribute, e.g. myteam.govflow_app:registry")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise GovflowError(f"--app {spec!r}: cannot import {module_name}: {exc}") from exc
    target: Any = getattr(module, attr, None)
    if target is None:
        raise GovflowError(f"--app {spec!r}: {module_name} has no attribute {attr!r}")
    if callable(target) and not isinstance(target, Registry):
        target = target(settings, database_url)
    if not isinstance(target, Registry):
        raise GovflowError(f"--app {spec!r}: expected a Registry, got {type(target).__name__}")
    return target


async def ensure_example_sor(database_url: str, tickets: int = 300) -> str:
    """Create and seed the example's system-of-record database next to the evidence one."""
    import asyncpg

    from workers.stack import with_database

    conn = await asyncpg.connect(database_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", SOR_DATABASE):
            await conn.execute(f'CREATE DATABASE "{SOR_DATABASE}"')
    finally:
        await conn.close()
    sor = with_database(database_url, SOR_DATABASE)
    conn = await asyncpg.connect(sor)
    try:
        await support_triage.seed(conn, tickets)
    finally:
        await conn.close()
    return sor


def default_app(settings: Settings, database_url: str) -> Registry:
    """The support-triage example, version 1 (its real policy) and ``demo`` (what `govflow demo` rolls out)."""
    from workers.demo import register_demo
    from workers.stack import with_database

    sor = with_database(database_url, SOR_DATABASE)
    registry = example_registry(sor, policy=(settings.policy_dir or EXAMPLES) / "support-triage.yaml")
    register_demo(registry, sor)
    return registry
