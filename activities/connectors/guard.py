"""The scope guard: every connector call checked against the run's grants, in the activity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from govflow.activities.connectors.connector import Connector, ConnectorError, Record, Scalar, WriteRequest, WriteResult
from govflow.policies import Policy, check_scope, record_images
from govflow.policies.errors import GovflowError

MAX_FIND = 1000
"""The most records one ``find`` returns."""


class ScopeViolation(GovflowError):
    """A call outside the run's grants. Never retried; recorded as evidence."""

    def __init__(self, refusal: ScopeRefusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


class ScopeRefusal(BaseModel):
    """A read or write the policy's grants do not allow: what was asked, and which grant refused it and why."""

    model_config = ConfigDict(frozen=True)

    system: str
    resource: str
    operation: str
    record_id: str | None
    fields: list[str]
    reason: str


class ReadLog(BaseModel):
    """One scoped read, for the evidence and for decisions on record filters."""

    system: str
    resource: str
    record_id: str
    values: Record | None


class ScopedConnectors:
    """The only way a task or a publish step reaches a system of record."""

    def __init__(self, policy: Policy, connectors: dict[str, Connector]) -> None:
        self._policy = policy
        self._connectors = connectors
        self.reads: list[ReadLog] = []

    def _connector(self, system: str, resource: str, operation: str, record_id: str | None) -> Connector:
        connector = self._connectors.get(system)
        if connector is None:
            reason = f"no connector for system {system!r} is configured on this worker"
            raise ScopeViolation(ScopeRefusal(system=system, resource=resource, operation=operation,
                                              record_id=record_id, fields=[], reason=reason))  # fmt: skip
        return connector

    def _refuse_unless(
        self,
        system: str,
        resource: str,
        operation: str,
        record_id: str | None,
        fields: list[str],
        record: Mapping[str, Any] | None = None,
        *,
        check_records: bool,
    ) -> None:
        result = check_scope(self._policy, system, resource, operation, fields, record, check_records=check_records)
        if not result.allowed:
            raise ScopeViolation(ScopeRefusal(system=system, resource=resource, operation=operation,
                                              record_id=record_id, fields=fields, reason=result.reason))  # fmt: skip

    async def read(self, system: str, resource: str, record_id: str) -> Record | None:
        """Read one record, if a grant allows reading it (record filters checked on the result)."""
        self._refuse_unless(system, resource, "read", record_id, [], check_records=False)
        values = await self._connector(system, resource, "read", record_id).read(resource, record_id)
        if values is not None:
            self._refuse_unless(system, resource, "read", record_id, [], values, check_records=True)
        self.reads.append(ReadLog(system=system, resource=resource, record_id=record_id, values=values))
        return values

    async def find(
        self, system: str, resource: str, where: Mapping[str, Scalar], *, limit: int = 100
    ) -> dict[str, Record]:
        """Records of ``resource`` whose fields equal ``where`` (at most ``limit``, by record id), if a
        grant allows reading every one of them: one outside a record filter refuses the whole call, as a
        read of it would. Each record found is logged as read. For lookups a task cannot do by key: the
        receipts of a purchase order, an invoice number seen before."""
        self._refuse_unless(system, resource, "read", None, [], check_records=False)
        if not where:
            raise ConnectorError(f"{system}.{resource}: find needs at least one field to match", retryable=False)
        if not 1 <= limit <= MAX_FIND:
            raise ConnectorError(f"{system}.{resource}: find limit {limit} is outside 1..{MAX_FIND}", retryable=False)
        connector = self._connector(system, resource, "read", None)
        lookup = getattr(connector, "find", None)
        if lookup is None:
            raise ConnectorError(
                f"{system}: its connector ({type(connector).__name__}) cannot look records up by field",
                retryable=False,
            )
        found: dict[str, Record] = await lookup(resource, dict(where), limit)
        for record_id, values in found.items():
            self._refuse_unless(system, resource, "read", record_id, [], values, check_records=True)
        self.reads.extend(
            ReadLog(system=system, resource=resource, record_id=record_id, values=values)
            for record_id, values in found.items()
        )
        return found

    async def write(self, system: str, request: WriteRequest) -> WriteResult:
        """Write through the connector; the record filter is checked on the locked current record."""
        fields = sorted(request.fields)
        self._refuse_unless(system, request.resource, request.operation, request.record_id, fields, check_records=False)

        def check(current: Record | None) -> None:
            # A record being created is judged by the values it would get; one updated, as it is and will be.
            images = (
                record_images(request.operation, current, request.fields)
                if current is not None
                else [dict(request.fields)]
            )
            for image in images:
                self._refuse_unless(
                    system, request.resource, request.operation, request.record_id, fields, image,
                    check_records=True,
                )  # fmt: skip

        connector = self._connector(system, request.resource, request.operation, request.record_id)
        return await connector.write(request, check)

    async def written(self, system: str, request: WriteRequest) -> WriteResult | None:
        """A write that already committed under ``request``'s key (a retried publish), if the system can tell.

        Systems that cannot look a key up (no ``written`` method) answer None: the write is then
        attempted again and the system's own idempotency handles it.
        """
        connector = self._connector(system, request.resource, request.operation, request.record_id)
        lookup = getattr(connector, "written", None)
        if lookup is None:
            return None
        result: WriteResult | None = await lookup(request.idempotency_key)
        return result
