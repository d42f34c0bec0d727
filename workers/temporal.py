"""Connecting to Temporal and preparing a namespace for govflow."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from govflow.policies.errors import GovflowError
from govflow.workers.settings import Settings
from govflow.workflows import search_attributes
from govflow.workflows.payloads import data_converter

T = TypeVar("T")


class TemporalUnavailable(GovflowError):
    """Temporal cannot be reached or refused a request."""


def _tls(settings: Settings) -> TLSConfig | bool:
    if settings.temporal_tls_cert is not None and settings.temporal_tls_key is not None:
        return TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
            server_root_ca_cert=(settings.temporal_tls_ca.read_bytes() if settings.temporal_tls_ca else None),
        )
    return settings.temporal_tls or settings.temporal_api_key is not None


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client for the configured Temporal, with the pydantic data converter (and ``runtime``'s telemetry)."""
    address = settings.target_temporal_address
    try:
        return await Client.connect(
            address,
            runtime=runtime,
            namespace=settings.temporal_namespace,
            tls=_tls(settings),
            api_key=(settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None),
            data_converter=data_converter,
        )
    except RuntimeError as exc:
        hint = "run `govflow stack up`" if settings.embedded_temporal else "check GOVFLOW_TEMPORAL_*"
        raise TemporalUnavailable(f"cannot reach Temporal at {address}: {exc}; {hint}") from exc


def search_attribute_types() -> dict[str, IndexedValueType.ValueType]:
    """govflow's search attributes as the operator service names their types."""
    return {key.name: IndexedValueType.ValueType(int(key.indexed_value_type)) for key in search_attributes.ALL}


async def register_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register govflow's search attributes that the namespace lacks; returns those added."""
    wanted = search_attribute_types()
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as exc:
        # The time-skipping test server cannot list them, but it can add them.
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {k: v for k, v in wanted.items() if k not in known}
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(search_attributes=missing, namespace=namespace)
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.ALREADY_EXISTS:
                raise
            return []
    return sorted(missing)


async def query_current(
    handle: WorkflowHandle[Any, Any],
    query: str | Callable[..., Any],
    *args: Any,
    result_type: type[T],
    attempts: int = 10,
    rpc_timeout: timedelta = timedelta(seconds=3),
) -> T:
    """A query to a long-running workflow, retried with a short timeout.

    A query that reaches a run just as it continues-as-new waits out its whole RPC
    timeout (measured: 30 s); the next attempt reaches the new run. A rollout that
    is still loading its policy refuses queries for a moment ("starting").
    """
    ask: Any = query  # a handler by method reference, or its name
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            result: T = await handle.query(ask, *args, result_type=result_type, rpc_timeout=rpc_timeout)
            return result
        except WorkflowQueryFailedError as exc:
            if "starting" not in str(exc) or last:
                raise
            await asyncio.sleep(0.2)
        except RPCError as exc:
            if exc.status not in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED) or last:
                raise
    raise AssertionError("unreachable")


def metrics_runtime(settings: Settings) -> Runtime | None:
    """A Temporal Runtime exporting the SDK's metrics to Prometheus on GOVFLOW_SDK_METRICS_PORT (None when 0)."""
    if settings.sdk_metrics_port == 0:
        return None
    try:
        return Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(bind_address=f"0.0.0.0:{settings.sdk_metrics_port}", durations_as_seconds=True)
            )
        )
    except Exception as exc:  # the SDK's Rust core reports a taken port as a bare exception
        raise GovflowError(
            f"cannot serve the Temporal SDK's metrics on port {settings.sdk_metrics_port} ({exc}): "
            "set GOVFLOW_SDK_METRICS_PORT to a free port, or 0 for none"
        ) from None
