"""Model clients: an OpenAI-compatible HTTP client and a local baseline."""

from __future__ import annotations

from activities.models.base import (
    InvalidModelOutput,
    Message,
    ModelClient,
    ModelError,
    ModelRequest,
    ModelResponse,
    parse_output,
)
from activities.models.baseline import LocalBaselineModel
from activities.models.openai import OpenAIChatClient

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
