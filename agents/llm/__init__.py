"""Language model backends and the wrappers composed around them.

One tiny protocol (:class:`LanguageModel`): ``complete(request) -> Response`` and
``count_tokens(text)``. Cache, retry, accounting and recording are wrappers that
implement the same protocol around any backend (Concordia's style); ``compose`` stacks
them in the canonical order. Backends: ``local`` / ``gguf:PATH`` (llama-cpp-python,
loaded lazily), ``openai:BASE_URL#model=NAME`` (any OpenAI-compatible server),
``llm:MODEL_ID`` (Simon Willison's ``llm`` library) and ``scripted`` (a deterministic test
double). See docs/models.md.
"""
from agents.llm.base import LanguageModel, Message, ModelError, Request, Response, TransientModelError
from agents.llm.cache import ResponseCache, default_cache_path
from agents.llm.factory import backend_of, build_model, compose
from agents.llm.scripted import ScriptedModel, instance_from_schema
from agents.llm.wrappers import (
    Accounting,
    AccountingModel,
    CachedModel,
    RecordingModel,
    RetriesExhaustedError,
    RetryingModel,
    RetryPolicy,
)

__all__ = [
    "Accounting",
    "AccountingModel",
    "CachedModel",
    "LanguageModel",
    "Message",
    "ModelError",
    "RecordingModel",
    "Request",
    "Response",
    "ResponseCache",
    "RetriesExhaustedError",
    "RetryingModel",
    "RetryPolicy",
    "ScriptedModel",
    "TransientModelError",
    "backend_of",
    "build_model",
    "compose",
    "default_cache_path",
    "instance_from_schema",
]
