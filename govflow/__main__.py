"""``python -m govflow``: the ``govflow`` command."""

from __future__ import annotations

from govflow.cli import run

run()
