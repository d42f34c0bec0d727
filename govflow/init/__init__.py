"""`govflow init PACKAGE`: a package of the engineer's own, ready to install, check, serve and run.

The template (``template/``) holds a task against the public API (``from govflow import ...``), its policy,
the worker's app, sample data for the local stack, an offline test with the task author's kit, and a
README with the commands; ``{{package}}``, ``{{task}}`` and ``{{env}}`` are filled in.
"""

from __future__ import annotations

import keyword
import re
import sys
from pathlib import Path

from govflow.policies.errors import GovflowError

TEMPLATE = Path(__file__).parent / "template"
_TAKEN = {"govflow", "activities", "workflows", "workers", "policies", "tests", "test"}


def check_name(package: str) -> None:
    """A package name that installs and imports, and hides nothing it would be imported beside."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,48}", package) or keyword.iskeyword(package):
        raise GovflowError(f"init: {package!r} is not a package name: lower-case letters, digits and _, "
                           "starting with a letter (e.g. acme_leads)")  # fmt: skip
    if package in _TAKEN or package in sys.stdlib_module_names:
        raise GovflowError(f"init: {package!r} would hide a module of that name (govflow's or Python's): "
                           "choose another, e.g. acme_leads")  # fmt: skip


def create(package: str, parent: Path) -> list[Path]:
    """Write the package into ``parent / package``; the files written. An existing non-empty folder is left."""
    check_name(package)
    root = parent / package
    if root.exists() and any(root.iterdir()):
        raise GovflowError(f"init: {root} exists and is not empty; nothing was written")
    values = {"package": package, "task": package.replace("_", "-"), "env": f"{package.upper()}_DATABASE_URL"}
    written = []
    for source in sorted(TEMPLATE.rglob("*.tmpl")):
        relative = source.relative_to(TEMPLATE).with_suffix("")
        parts = [package if part == "package" else part for part in relative.parts]
        target = root.joinpath(*parts)
        text = source.read_text()
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        written.append(target)
    return written
