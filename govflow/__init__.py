"""govflow's public API for task authors: the one module your code imports from.

    from govflow import Task, Proposal, Action, Registry, PostgresTableConnector, ...

Everything ``docs/writing-a-task.md`` uses is here. Code that drives govflow from outside a worker
(submit runs, vote, operate a rollout) uses ``govflow.client``. govflow's own packages
(``activities``, ``workflows``, ``workers``, ``policies``) are its internals: import from here, and name
your own package something else (see the README, "Your own package").
"""

from __future__ import annotations

from govflow.activities.connectors import (
    IDEMPOTENCY_DDL,
    Connector,
    ConnectorError,
    HttpJsonConnector,
    PostgresTableConnector,
    Record,
    ScopedConnectors,
    ScopeViolation,
    SharedPool,
    Table,
    WriteRequest,
    WriteResult,
    ensure_database,
    with_database,
)
from govflow.activities.models import (
    InvalidModelOutput,
    LocalBaselineModel,
    Message,
    ModelClient,
    ModelError,
    ModelRequest,
    ModelResponse,
    OpenAIChatClient,
    parse_output,
)
from govflow.activities.registry import Registry
from govflow.activities.tasks import ContradictoryInput, IncompleteInput, Proposal, Task, TaskInputError
from govflow.policies import Action, Policy, load_policy, parse_policy
from govflow.workers.settings import Settings


def database_url() -> str:
    """govflow's evidence database, as a worker finds it: GOVFLOW_DATABASE_URL, else the local stack's.

    A script beside a task (sample data, a migration of its own) reaches a database of its own on the same
    server with ``ensure_database(database_url(), "my_data")``."""
    from govflow.workers.settings import database_url as found
    from govflow.workers.settings import load_settings

    return found(load_settings())


__all__ = [
    "IDEMPOTENCY_DDL",
    "Action",
    "Connector",
    "ConnectorError",
    "ContradictoryInput",
    "HttpJsonConnector",
    "IncompleteInput",
    "InvalidModelOutput",
    "LocalBaselineModel",
    "Message",
    "ModelClient",
    "ModelError",
    "ModelRequest",
    "ModelResponse",
    "OpenAIChatClient",
    "Policy",
    "PostgresTableConnector",
    "Proposal",
    "Record",
    "Registry",
    "ScopeViolation",
    "ScopedConnectors",
    "Settings",
    "SharedPool",
    "Table",
    "Task",
    "TaskInputError",
    "WriteRequest",
    "WriteResult",
    "database_url",
    "ensure_database",
    "load_policy",
    "parse_output",
    "parse_policy",
    "with_database",
]
