"""The govflow worker: every workflow and activity govflow ships, on one task queue."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.evidence import EvidenceStore
from activities.evidence_activities import EvidenceActivities


def build_worker(
    client: Client,
    task_queue: str,
    store: EvidenceStore,
    *,
    workflows: Sequence[type] = (),
    extra_activities: Sequence[Callable[..., Any]] = (),
) -> Worker:
    evidence = EvidenceActivities(store)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(workflows),
        activities=[evidence.append_evidence, *extra_activities],
    )


async def run_worker(client: Client, task_queue: str, database_url: str) -> None:
    """Run until SIGINT or SIGTERM, then drain and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with EvidenceStore.open(database_url) as store:
        worker = build_worker(client, task_queue, store)
        async with worker:
            print(f"govflow worker polling task queue {task_queue!r}; Ctrl-C stops it", flush=True)
            await stop.wait()
