"""A small local model so everything runs offline: a deterministic function of the prompt."""

from __future__ import annotations

import time
from collections.abc import Callable

from govflow.activities.models.chat import ModelRequest, ModelResponse


class LocalBaselineModel:
    """Answers with ``responder(request)``; tasks ship their own responder (rules, not weights)."""

    def __init__(self, responder: Callable[[ModelRequest], str], name: str = "local-baseline") -> None:
        self._responder = responder
        self.model = name

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """The responder's answer, timed, as a model response (no tokens are spent)."""
        started = time.perf_counter()
        text = self._responder(request)
        prompt = sum(len(m.content.split()) for m in request.messages)
        return ModelResponse(
            text=text,
            model=self.model,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            prompt_tokens=prompt,
            completion_tokens=len(text.split()),
        )
