"""Connectors to systems of record, and the scope guard every call passes."""

from __future__ import annotations

from govflow.activities.connectors.connector import Connector, ConnectorError, Record, WriteRequest, WriteResult
from govflow.activities.connectors.guard import ReadLog, ScopedConnectors, ScopeRefusal, ScopeViolation
from govflow.activities.connectors.http import HttpJsonConnector
from govflow.activities.connectors.postgres import (
    IDEMPOTENCY_DDL,
    PostgresTableConnector,
    SharedPool,
    Table,
    ensure_database,
    with_database,
)

__all__ = [
    "IDEMPOTENCY_DDL",
    "Connector",
    "ConnectorError",
    "HttpJsonConnector",
    "PostgresTableConnector",
    "ReadLog",
    "Record",
    "ScopeRefusal",
    "ScopeViolation",
    "ScopedConnectors",
    "SharedPool",
    "Table",
    "WriteRequest",
    "WriteResult",
    "ensure_database",
    "with_database",
]
