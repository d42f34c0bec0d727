"""The console's own Prometheus metrics, served at ``/metrics`` beside the worker's: requests by page and
status, sign-ins by result, and acts by verdict and by the run's answer."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_PAGES = frozenset({"", "signin", "enroll", "signout", "inbox", "runs", "static", "healthz", "readyz", "metrics"})

__all__ = ["CONTENT_TYPE_LATEST", "ConsoleMetrics"]


class ConsoleMetrics:
    """One app's counters, in a registry of its own (several consoles in one process stay apart)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "govflow_console_requests", "Requests the console answered", ["page", "status"], registry=self.registry
        )
        self.signins = Counter(
            "govflow_console_signins", "Passkey ceremonies (enrollment and sign-in) by result", ["ceremony", "result"],
            registry=self.registry,
        )  # fmt: skip
        self.acts = Counter(
            "govflow_console_acts", "Acts reviewers sent, by verdict and the run's answer", ["verdict", "outcome"],
            registry=self.registry,
        )  # fmt: skip

    def request(self, path: str, status: int) -> None:
        first = path.strip("/").split("/", 1)[0]
        self.requests.labels(first if first in _PAGES else "other", str(status)).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
