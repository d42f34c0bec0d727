"""The two example tasks, written against the public ``govflow`` API only, as a team's own are:
support triage (``support_triage``) and invoice matching under signed two-person approval
(``invoice_matching``). ``default_app`` is what ``govflow worker`` serves without ``--app``.
"""

from __future__ import annotations

from govflow import Registry, Settings
from govflow.examples import invoice_matching, support_triage
from govflow.examples.support_triage import EXAMPLES


def default_app(settings: Settings, database_url: str) -> Registry:
    """Both examples on one worker: support triage (version 1, and ``demo``) and invoice matching."""
    registry = support_triage.support_app(settings, database_url)
    registry.include(invoice_matching.app(settings, database_url))
    return registry


async def ensure_example_sors(database_url: str) -> None:
    """Create and seed both examples' systems of record (idempotent: what a demo changed stays)."""
    await support_triage.ensure_example_sor(database_url)
    await invoice_matching.ensure_sor(database_url)


__all__ = ["EXAMPLES", "default_app", "ensure_example_sors", "invoice_matching", "support_triage"]
