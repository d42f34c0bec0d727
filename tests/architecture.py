"""Two rules of the code's shape that ``make lint`` checks (``python -m tests.architecture``), so that
they cannot come back unseen:

- no module of ours is over 400 lines (a module that grows past it holds two rooms);
- no ``workflow.patched`` in a PINNED workflow's code: a governed run is one generation (README,
  "Contributing: what needs a patch"). Only the modules of AUTO_UPGRADE workflows may patch, and
  workflows/handlers.py, which asks its patch only of a workflow that is not PINNED.
"""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("govflow", "workers", "workflows", "activities", "policies", "bench")
MAX_LINES = 400


def modules(root: Path, packages: Iterable[str]) -> list[Path]:
    return sorted(p for package in packages for p in (root / package).rglob("*.py"))


def oversized(paths: Iterable[Path], root: Path = ROOT, limit: int = MAX_LINES) -> list[str]:
    """Each module over ``limit`` lines, with its size."""
    found = []
    for path in paths:
        lines = len(path.read_text().splitlines())
        if lines > limit:
            found.append(f"{path.relative_to(root)}: {lines} lines (at most {limit}: split it into rooms)")
    return found


def patch_calls(path: Path) -> list[int]:
    """The lines of ``path`` that call ``workflow.patched`` (or ``patched`` imported from it)."""
    tree = ast.parse(path.read_text(), str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == "patched")
            or (isinstance(node.func, ast.Name) and node.func.id == "patched")
        )
    ]


def patches_outside(paths: Iterable[Path], allowed: Sequence[Path], root: Path = ROOT) -> list[str]:
    """Each call of ``workflow.patched`` outside the ``allowed`` modules."""
    allowed_set = {p.resolve() for p in allowed}
    return [
        f"{path.relative_to(root)}:{line}: workflow.patched outside an AUTO_UPGRADE workflow's module: a PINNED "
        "governed run is one generation and needs no patch (README, Contributing)"
        for path in paths
        if path.resolve() not in allowed_set
        for line in patch_calls(path)
    ]


def may_patch() -> list[Path]:
    """The modules of the registered workflows that are not PINNED (and of the classes they are built from,
    such as RolloutWorkflow's OperatorControls), and workflows/handlers.py."""
    from govflow.workers.worker import WORKFLOWS
    from govflow.workflows import handlers

    classes = [base for cls in WORKFLOWS if not handlers.pinned(cls) for base in cls.__mro__]
    files = [inspect.getsourcefile(c) for c in classes if c.__module__.startswith("govflow.workflows.")]
    return [Path(f) for f in files if f] + [Path(handlers.__file__)]


def problems() -> list[str]:
    paths = modules(ROOT, PACKAGES)
    return oversized(paths) + patches_outside(modules(ROOT, ["workflows"]), may_patch())


if __name__ == "__main__":
    found = problems()
    for problem in found:
        print(problem)
    sys.exit(1 if found else 0)
