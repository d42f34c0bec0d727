"""Fixtures of the workflow tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from temporalio.service import RPCError

from govflow.activities.registry import Registry
from govflow.examples.support_triage import example_registry
from govflow.policies import parse_policy
from tests.workflows.rollout_helpers import STARTED, window_policy_text


@pytest.fixture
async def window_registry(sor_url: str) -> AsyncIterator[Registry]:
    """support-triage with ``method: window`` rules: the tests of the window's own semantics."""
    built = example_registry(sor_url, policy=parse_policy(window_policy_text()))
    yield built
    await built.aclose()


@pytest.fixture(autouse=True)
async def _terminate_rollouts() -> AsyncIterator[None]:
    """Rollouts never end by themselves; one left behind with its worker gone holds the
    time-skipping server's clock still (a later ``env.sleep`` then times out)."""
    yield
    while STARTED:
        # A rollout on a test's own server is gone with it (torn down first): no retries against a closed port.
        with contextlib.suppress(RPCError, TimeoutError):
            await asyncio.wait_for(STARTED.pop().terminate("test over"), timeout=1.0)
