"""Fixtures of the integration tests: the reviewer console, served over the tests' evidence database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.integration.console_kit import Served, serving


@pytest.fixture
async def console(database_url: str) -> AsyncIterator[Served]:
    async with serving(database_url, GOVFLOW_TEMPORAL_ADDRESS="127.0.0.1:1") as served:
        yield served


@pytest.fixture
async def live_console(database_url: str, dev_server_env: WorkflowEnvironment) -> AsyncIterator[Served]:
    """The console over ``database_url`` (the tests' store) with Temporal: the dev server's."""
    async with serving(
        database_url, GOVFLOW_TEMPORAL_ADDRESS=dev_server_env.client.service_client.config.target_host
    ) as served:
        yield served
