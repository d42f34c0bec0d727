"""An OpenAI-compatible chat-completions client (``POST {base}/chat/completions``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from govflow.activities.models.chat import ModelError, ModelRequest, ModelResponse

_RETRY_STATUS = {429, 500, 502, 503, 504}


class OpenAIChatClient:
    """Retries 429 and 5xx with exponential backoff (honouring ``Retry-After``), then gives up."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        max_attempts: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
        )
        self.model = model
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self.attempts = 0
        """Requests sent by the last ``complete`` call (for tests and metrics)."""

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None and (after := response.headers.get("Retry-After")):
            try:
                return min(float(after), self._max_backoff_s)
            except ValueError:
                pass
        return float(min(self._backoff_s * 2 ** (attempt - 1), self._max_backoff_s))

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """One chat completion, retried on 429 and 5xx; what still fails is a ModelError (retryable if the
        endpoint kept answering 429 or 5xx)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in request.messages],
            "temperature": request.temperature,
        }
        if request.json_output:
            body["response_format"] = {"type": "json_object"}
        started = time.perf_counter()
        last = ""
        self.attempts = 0
        for attempt in range(1, self._max_attempts + 1):
            self.attempts = attempt
            response: httpx.Response | None = None
            try:
                response = await self._client.post("/chat/completions", json=body)
            except httpx.TimeoutException:
                last = "timed out"
            except httpx.TransportError as exc:
                last = f"transport error: {exc}"
            else:
                if response.status_code == 200:
                    return self._parse(response, started)
                if response.status_code not in _RETRY_STATUS:
                    raise ModelError(
                        f"model endpoint answered {response.status_code}: {response.text[:200]}",
                        retryable=False,
                    )
                last = f"answered {response.status_code}"
            if attempt < self._max_attempts:
                await asyncio.sleep(self._delay(attempt, response))
        raise ModelError(
            f"model endpoint {self._client.base_url} failed {self._max_attempts} times (last: {last})",
            retryable=True,
        )

    def _parse(self, response: httpx.Response, started: float) -> ModelResponse:
        try:
            data = response.json()
            text = data["choices"][0]["message"]["content"]
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ModelError(
                f"model endpoint answered 200 without choices[0].message.content: {exc}", retryable=False
            ) from None
        if not isinstance(text, str):
            raise ModelError("model endpoint answered a non-text message content", retryable=False)
        return ModelResponse(
            text=text,
            model=str(data.get("model") or self.model),
            latency_ms=(time.perf_counter() - started) * 1000.0,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )
