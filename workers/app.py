"""What a worker runs: a :class:`govflow.activities.registry.Registry` of tasks.

``govflow worker`` loads ``GOVFLOW_APP`` / ``--app module:attr``, where ``attr`` is a Registry or a
function ``(Settings, database_url) -> Registry``; a comma list serves several apps from one worker.
Without one it serves ``DEFAULT_APP``: both examples, loaded by name like any team's app (they are
written against the public ``govflow`` API, a layer above this one).
"""

from __future__ import annotations

import importlib
import inspect
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
        raise GovflowError(
            f"--app {spec!r}: cannot import {module_name}: {exc}. Install your package into this environment "
            f"(`.venv/bin/pip install -e PATH_TO_IT`) or run from the folder that holds {module_name.split('.')[0]}"
        ) from exc
    target: Any = getattr(module, attr, None)
    if target is None:
        raise GovflowError(f"--app {spec!r}: {module_name} has no attribute {attr!r}")
    if isinstance(target, type):
        raise GovflowError(
            f"--app {spec!r}: {attr} is a class; name a Registry, or a function (settings, database_url) -> "
            f"Registry that registers it (docs/writing-a-task.md: `build`)"
        )
    if callable(target) and not isinstance(target, Registry):
        try:
            target = target(settings, database_url)
        except TypeError as exc:
            raise GovflowError(
                f"--app {spec!r}: {attr} must take (settings, database_url) and return a Registry: {exc}"
            ) from None
        if inspect.iscoroutine(target):
            target.close()
            raise GovflowError(f"--app {spec!r}: {attr} is async; make it a plain function returning a Registry")
    if not isinstance(target, Registry):
        raise GovflowError(f"--app {spec!r}: expected a Registry, got {type(target).__name__}")
    return target
