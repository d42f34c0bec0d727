"""The model interface: one chat request in, text and its metadata out."""

from __future__ import annotations

from typing import Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from govflow.policies.errors import GovflowError


class Message(BaseModel):
    """One message of a chat: its role and its text."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class ModelRequest(BaseModel):
    """What a task asks the model: the messages, and how to answer."""

    model_config = ConfigDict(frozen=True)

    messages: list[Message]
    json_output: bool = True
    temperature: float = 0.0


class ModelResponse(BaseModel):
    """The model's text and what evidence keeps about the call."""

    model_config = ConfigDict(frozen=True)

    text: str
    model: str
    latency_ms: float = Field(ge=0)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class ModelError(GovflowError):
    """The model could not be reached or kept failing; ``retryable`` for transient failures."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class InvalidModelOutput(GovflowError):
    """The model answered, but not with what the task's proposal model accepts."""


class ModelClient(Protocol):
    """A model: anything that completes a request (a remote API, a local baseline)."""

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """The model's answer to ``request``, with its latency and tokens."""


T = TypeVar("T", bound=BaseModel)


def parse_output(model_type: type[T], text: str) -> T:
    """Validate model text against ``model_type``; a clear :class:`InvalidModelOutput` if it is not."""
    try:
        return model_type.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'output'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise InvalidModelOutput(
            f"model output is not a valid {model_type.__name__}: {problems} (output began {text[:120]!r})"
        ) from None
