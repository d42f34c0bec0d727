"""What a worker runs: an :class:`activities.registry.Registry` of tasks.

``govflow worker`` loads ``GOVFLOW_APP`` / ``--app module:attr``, where ``attr``
is a Registry or a function ``(Settings) -> Registry``. The default is the
support-triage example over the local stack's system-of-record database.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import yaml

from govflow.activities.connectors import SharedPool
from govflow.activities.registry import Registry
from govflow.activities.tasks import support_triage
from govflow.policies import Policy, parse_policy
from govflow.policies.errors import GovflowError
from govflow.workers.settings import Settings
from govflow.workers.stack import with_database

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
    """The Registry ``spec`` names; a comma list of specs serves every app's tasks from one worker."""
    specs = [s.strip() for s in spec.split(",") if s.strip()]
    if len(specs) != 1:
        if not specs:
            raise GovflowError("--app names no app: write it as module:attribute, e.g. myteam.govflow_app:registry")
        registry = Registry()
        for one in specs:
            registry.include(_load_one(one, settings, database_url))
        return registry
    return _load_one(specs[0], settings, database_url)


def _load_one(spec: str, settings: Settings, database_url: str) -> Registry:
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


# --- the demo's version of the example ------------------------------------------------------------

DEMO_TASK = "support-triage"
DEMO_VERSION = "demo"


class SupportTriageDemo(support_triage.SupportTriage):
    """The support-triage task under the demo's policy (same grants, short stages)."""

    version = DEMO_VERSION


def demo_policy() -> Policy:
    """support-triage.yaml with stages and windows sized for a two-minute demo."""
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / "support-triage.yaml").read_text())
    doc["rollout"] = {
        "stages": [
            {"name": "shadow", "live_fraction": 0.0, "min_runs": 20},
            {"name": "canary", "live_fraction": 0.5, "min_runs": 500, "gate": "auto+approval", "promoters": ["omar"]},
            {"name": "full", "live_fraction": 1.0},
        ]
    }

    # Sized for two minutes: a demo-scale promise (false pauses at most 1 % per 1,000 runs, wrong
    # promotions at most 5 %), so the shadow gate clears after ~60 clean runs and a bad model pauses
    # within ~25; the statistics are the production ones (method cusum), only the tolerances differ.
    def demo_scale() -> dict[str, Any]:  # fresh dicts: a shared one would be dumped as a YAML alias
        return {"false_pauses": {"at_most": 0.01, "per_runs": 1000}, "wrong_promotions": 0.05}

    doc["quality"]["window"] = [
        {"name": "pass-rate", "metric": "pass_rate", "threshold": 0.8, "window": 20, "min_sample": 10, **demo_scale()},
        {"name": "override-rate", "metric": "override_rate", "threshold": 0.2, "window": 20, "min_sample": 10,
         **demo_scale()},
        {"name": "error-rate", "metric": "error_rate", "threshold": 0.3, "window": 40, "min_sample": 10,
         **demo_scale()},
    ]  # fmt: skip
    return parse_policy(yaml.safe_dump(doc, sort_keys=False), source="support-triage.yaml (demo stages)")


class Knob:
    """The share of the model's answers that go bad; the demo turns it up mid-run."""

    def __init__(self) -> None:
        self.degraded = 0.0

    def __call__(self) -> float:
        return self.degraded


def register_demo(registry: Registry, sor_dsn: str, knob: Knob | None = None) -> None:
    registry.register(
        SupportTriageDemo(),
        policy=demo_policy(),
        connectors=support_triage.connectors(SharedPool(sor_dsn)),
        model=support_triage.baseline_model(knob or 0.0),
    )


FINANCE_APP = "govflow.examples.invoice_matching"
"""The invoice-matching example. It is written against the public ``govflow`` API, a layer above this
one, so it is loaded the way a team's own app is (by name), never imported here."""


def finance_example() -> ModuleType:
    return importlib.import_module(FINANCE_APP)


def support_app(settings: Settings, database_url: str) -> Registry:
    """The support-triage example, version 1 (its real policy) and ``demo`` (what `govflow demo` rolls out)."""
    sor = with_database(database_url, SOR_DATABASE)
    registry = example_registry(sor, policy=(settings.policy_dir or EXAMPLES) / "support-triage.yaml")
    register_demo(registry, sor)
    return registry


def default_app(settings: Settings, database_url: str) -> Registry:
    """What ``govflow worker`` serves without ``--app``: both examples, support triage and invoice matching."""
    return load_app(f"govflow.workers.app:support_app,{FINANCE_APP}:app", settings, database_url)


async def ensure_example_sors(database_url: str) -> None:
    """Create and seed both examples' systems of record (idempotent: what a demo changed stays)."""
    await ensure_example_sor(database_url)
    await finance_example().ensure_sor(database_url)
