"""``python -m govflow``: the ``govflow`` command."""

from __future__ import annotations

from govflow.workers.cli import run

run()
