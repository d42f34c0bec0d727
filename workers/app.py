"""What a worker runs: a :class:`govflow.activities.registry.Registry` of tasks.

``govflow worker`` loads ``GOVFLOW_APP`` / ``--app module:attr``, where ``attr`` is a Registry or a
function ``(Settings, database_url) -> Registry``; a comma list serves several apps from one worker.
Without one it serves ``DEFAULT_APP``: both examples, loaded by name like any team's app (they are
written against the public ``govflow`` API, a layer above this one).
"""

from __future__ import annotations

import importlib
from typing import Any

from govflow.activities.registry import Registry
from govflow.policies.errors import GovflowError
from govflow.workers.settings import Settings

DEFAULT_APP = "govflow.examples:default_app"
"""What ``govflow worker`` serves without ``--app``: support triage and invoice matching."""


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
