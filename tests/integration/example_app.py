"""The example app over a test's system of record (``SOR_URL``), with its policies from GOVFLOW_POLICY_DIR."""

from __future__ import annotations

import os

from govflow.activities.registry import Registry
from govflow.examples.support_triage import EXAMPLES, example_registry
from govflow.workers.settings import Settings


def build(settings: Settings, database_url: str) -> Registry:
    return example_registry(os.environ["SOR_URL"], policy=(settings.policy_dir or EXAMPLES) / "support-triage.yaml")
