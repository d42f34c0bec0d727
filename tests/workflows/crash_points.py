"""A worker interceptor that fails one workflow task at a chosen point, as a worker crash would.

The workflow code sees nothing; the server retries the task from history. Passed through the
sandbox (module state is the test's switch, read in the workflow only to decide to crash once).
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.worker import (
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

CRASHES: list[str] = []
"""Activities before whose scheduling the next workflow task fails, once each (test state)."""
CRASHED: list[str] = []


class _Outbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> Any:
        if input.activity in CRASHES and not workflow.unsafe.is_replaying():
            CRASHES.remove(input.activity)
            CRASHED.append(input.activity)
            raise RuntimeError(f"simulated crash before scheduling {input.activity}")
        return super().start_activity(input)


class _Inbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_Outbound(outbound))


class CrashOnce(Interceptor):
    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _Inbound
