"""govflow's data converter: pydantic's, except that a handler's undecodable input is handed over, not dropped.

Handlers take ``*args`` with no type hints (workflows/inputs.py), so the SDK decodes each payload as
plain JSON. Bytes that are not JSON (a truncated object, an invalid escape) or an encoding nobody
registered would raise inside the SDK, which then drops a signal with only a worker log line while
its sender was told it succeeded. Here such a payload becomes :class:`workflows.inputs.Unreadable`,
so the handler refuses and records it like any other unreadable attempt.

Only untyped decoding changes: a workflow's input, an activity's result and anything else decoded
against a type hint fail exactly as before. Clients, workers, replayers and test environments all
use :data:`data_converter`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter

from govflow.workflows.inputs import Unreadable

_PREVIEW = 200
"""How many of an unreadable payload's bytes the evidence keeps."""


def unreadable(payload: Payload, err: Exception) -> Unreadable:
    encoding = payload.metadata.get("encoding", b"<none>").decode("utf-8", "backslashreplace")
    data = payload.data[:_PREVIEW].decode("utf-8", "backslashreplace")
    data = data.encode("unicode_escape").decode("ascii")
    more = f"... ({len(payload.data)} bytes)" if len(payload.data) > _PREVIEW else ""
    problem = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
    return Unreadable(encoding=encoding, problem=problem, data=data + more)


class GovflowPayloadConverter(PydanticPayloadConverter):
    """Pydantic's payload converter; untyped payloads that cannot be decoded become ``Unreadable``."""

    def from_payloads(self, payloads: Sequence[Payload], type_hints: list[type] | None = None) -> list[Any]:
        if type_hints:
            return super().from_payloads(payloads, type_hints)
        values: list[Any] = []
        for payload in payloads:
            try:
                values.extend(super().from_payloads([payload], None))
            except Exception as err:  # anything a sender's bytes can make the decoder raise
                values.append(unreadable(payload, err))
        return values


data_converter = DataConverter(payload_converter_class=GovflowPayloadConverter)
"""The data converter for every govflow client, worker and replayer."""
