"""The connector interface: a system of record behind ``read`` and idempotent ``write``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from govflow.policies.errors import GovflowError

Record = dict[str, Any]
Scalar = str | int | float | bool
RecordCheck = Callable[[Record | None], None]
"""Called with the record's current values inside the write, before changing it; raises to refuse."""


class ConnectorError(GovflowError):
    """A system of record refused or failed a call; ``retryable`` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class WriteRequest(BaseModel):
    """One write a connector makes: the record, the operation, its fields, and the idempotency key that makes a retry a
    no-op."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    resource: str
    record_id: str
    operation: Literal["create", "update", "delete", "reply", "pay"]
    fields: Record = Field(default_factory=dict)
    idempotency_key: str = Field(min_length=1)


class WriteResult(BaseModel):
    """What a write did: the record before and after it (the evidence keeps both)."""

    model_config = ConfigDict(frozen=True)

    before: Record | None
    after: Record | None
    replayed: bool = Field(
        default=False, description="True when the key had been written already: nothing changed now."
    )


class Connector(Protocol):
    """A system of record. Implementations must make ``write`` idempotent by key. Optional: ``written(key)``
    (a committed write's images, for a retried publish), ``find(resource, where, limit)`` (records by
    field values, for ``ScopedConnectors.find``) and ``columns(resource)`` (the fields its records have, for
    ``policy check --app``)."""

    system: str

    async def read(self, resource: str, record_id: str) -> Record | None:
        """The record ``record_id`` of ``resource``, or None when there is none."""

    async def write(self, request: WriteRequest, check: RecordCheck) -> WriteResult:
        """Make ``request`` once per idempotency key; ``check`` sees the record as it is right before the write (the
        scope guard) and refuses by raising."""
