"""A worker app whose connector kills its own process right after a write commits.

Used by the crash test: the process dies (SIGKILL, no cleanup) between the
write and its evidence row, exactly once (a marker file remembers).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from govflow.activities.connectors import Connector, SharedPool, WriteRequest, WriteResult
from govflow.activities.connectors.connector import Record, RecordCheck
from govflow.activities.registry import Registry
from govflow.examples import support_triage
from govflow.examples.support_triage import EXAMPLES
from govflow.workers.settings import Settings


class CrashAfterWrite:
    def __init__(self, inner: Connector, marker: Path) -> None:
        self.system = inner.system
        self._inner = inner
        self._marker = marker

    async def read(self, resource: str, record_id: str) -> Record | None:
        return await self._inner.read(resource, record_id)

    async def write(self, request: WriteRequest, check: RecordCheck) -> WriteResult:
        result = await self._inner.write(request, check)
        if not self._marker.exists():
            self._marker.write_text(request.idempotency_key)
            os.kill(os.getpid(), signal.SIGKILL)
        return result


def build(settings: Settings, database_url: str) -> Registry:
    marker = Path(os.environ["CRASH_MARKER"])
    connectors = support_triage.connectors(SharedPool(os.environ["SOR_URL"]))
    registry = Registry()
    registry.register(
        support_triage.SupportTriage(),
        policy=EXAMPLES / "support-triage.yaml",
        connectors={name: CrashAfterWrite(c, marker) for name, c in connectors.items()},
        model=support_triage.baseline_model(),
    )
    return registry
