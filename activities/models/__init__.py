"""Model clients: an OpenAI-compatible HTTP client and a local baseline."""

from __future__ import annotations

from govflow.activities.models.baseline import LocalBaselineModel
from govflow.activities.models.chat import (
    InvalidModelOutput,
    Message,
    ModelClient,
    ModelError,
    ModelRequest,
    ModelResponse,
    parse_output,
)
from govflow.activities.models.openai import OpenAIChatClient

__all__ = [
    "InvalidModelOutput",
    "LocalBaselineModel",
    "Message",
    "ModelClient",
    "ModelError",
    "ModelRequest",
    "ModelResponse",
    "OpenAIChatClient",
    "parse_output",
]
