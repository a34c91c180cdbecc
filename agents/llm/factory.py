"""Build a backend from a ``--model`` spec string and compose the standard wrapper stack."""
from __future__ import annotations

from pathlib import Path

from agents.llm.base import LanguageModel, ModelError
from agents.llm.cache import ResponseCache
from agents.llm.wrappers import (
    Accounting,
    AccountingModel,
    CachedModel,
    RecordingModel,
    RetryingModel,
    Sink,
)

SPEC_FORMS = "local | gguf:PATH | scripted | scripted:LATENCY_MS"


def build_model(
    spec: str, *, n_ctx: int = 2048, seed: int = 0, n_threads: int | None = None
) -> LanguageModel:
    """The bare backend a spec names (no cache, retry or accounting: see :func:`compose`)."""
    kind, _, arg = spec.strip().partition(":")
    if kind == "local" and not arg:
        from agents.llm.local import LlamaCppModel, bundled_gguf_path

        return LlamaCppModel(bundled_gguf_path(), n_ctx=n_ctx, n_threads=n_threads, seed=seed)
    if kind == "gguf" and arg:
        from agents.llm.local import LlamaCppModel

        path = Path(arg).expanduser()
        if not path.is_file():
            raise ModelError(f"GGUF model file not found: {path} (from --model {spec})")
        return LlamaCppModel(path, n_ctx=n_ctx, n_threads=n_threads, seed=seed)
    if kind == "scripted":
        from agents.llm.scripted import ScriptedModel

        if not arg:
            return ScriptedModel()
        try:
            latency_ms = float(arg)
        except ValueError:
            latency_ms = -1.0
        if latency_ms < 0:
            raise ValueError(f"bad model spec {spec!r}: LATENCY_MS must be a number >= 0")
        return ScriptedModel(latency_s=latency_ms / 1000.0, name=f"scripted:{arg}")
    # "openai:BASE_URL[#MODEL]" (any OpenAI-compatible server) is added here next, as
    # agents/llm/openai_compat.py with TransientModelError on timeouts, 429 and 5xx.
    raise ValueError(f"unknown model spec {spec!r}; valid forms: {SPEC_FORMS}")


def compose(
    model: LanguageModel,
    *,
    cache: ResponseCache | None = None,
    accounting: Accounting | None = None,
    sink: Sink | None = None,
    retry: bool = True,
) -> LanguageModel:
    """Wrap a backend as Recording → Accounting → Cached → Retrying → backend.

    Outermost first: cache hits are still recorded and counted; retries happen below the
    cache, so only the final answer is stored.
    """
    stack: LanguageModel = model
    if retry:
        stack = RetryingModel(stack)
    if cache is not None:
        stack = CachedModel(stack, cache)
    if accounting is not None:
        stack = AccountingModel(stack, accounting)
    if sink is not None:
        stack = RecordingModel(stack, sink)
    return stack
