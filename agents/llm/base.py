"""The language model protocol every backend and wrapper implements."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


class ModelError(RuntimeError):
    """A model call failed for good (after whatever retries the wrappers allow)."""


class TransientModelError(ModelError):
    """A failure worth retrying: timeout, connection error, 429, 5xx."""


@dataclass(frozen=True)
class Request:
    """One chat completion request, with the context the recorder needs."""

    messages: tuple[Message, ...]
    schema: dict[str, Any] | None = None  # JSON schema the answer must follow
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0
    # Context for accounting and recording; never sent to the model.
    purpose: str = ""
    agent: str | None = None
    step: int | None = None
    dropped: tuple[str, ...] = ()  # context left out to fit the window

    def payload(self) -> dict[str, Any]:
        """What determines the answer (the cache key): never the context fields."""
        return {
            "messages": list(self.messages),
            "schema": self.schema,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
        }


@dataclass
class Response:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float = 0.0
    model: str = ""
    cached: bool = False
    retries: int = 0
    finish_reason: str = "stop"
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class LanguageModel(Protocol):
    """Sample text for a chat request; count tokens with the model's tokenizer."""

    name: str  # e.g. "local:SmolLM2-135M-Instruct.Q4_1", "openai:http://...#model"
    context_window: int
    max_concurrency: int  # how many calls may be in flight at once

    def complete(self, request: Request) -> Response: ...

    def count_tokens(self, text: str) -> int: ...
