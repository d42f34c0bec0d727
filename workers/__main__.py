from __future__ import annotations

from workers.cli import run

run()
