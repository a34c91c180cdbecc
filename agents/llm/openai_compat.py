"""Any OpenAI-compatible chat-completions server, through the official ``openai`` client.

Ollama, vLLM, llama.cpp's ``llama-server``, llama-cpp-python's ``llama_cpp.server``,
LM Studio and hosted APIs all speak this protocol. Spec (see docs/models.md)::

    openai:BASE_URL#model=NAME&structured=MODE&ctx=N&timeout=S&key_env=VAR&strict=0|1&tokenizer=estimate|server
    openai#model=gpt-4o-mini          # BASE_URL defaults to https://api.openai.com/v1

Structured output (``structured=``, for requests that carry a JSON schema):

- ``json_schema`` (default): ``response_format={"type": "json_schema", "json_schema": {...}}``,
  the OpenAI standard (OpenAI, vLLM, Ollama, llama-server, LM Studio);
- ``json_object_schema``: ``{"type": "json_object", "schema": S}``, the dialect of
  llama-cpp-python's server (and Anyscale/Together/Fireworks): grammar-constrained to S;
- ``json_object``: JSON mode (``{"type": "json_object"}``) with the schema written into the
  system prompt;
- ``none``: no ``response_format``; the schema is written into the system prompt.

Whatever the mode, :class:`agents.prompting.PromptRunner` validates every answer against
the schema, retries within bounds and records fallbacks, so a weaker mode costs retries,
never silently wrong data.

Errors: timeouts, connection errors, 408, 429 and 5xx raise :class:`TransientModelError`
(retried by :class:`agents.llm.wrappers.RetryingModel`); other 4xx and malformed answers
raise :class:`ModelError`. Every message is one line, and the API key — read only from the
environment variable ``key_env`` (default ``OPENAI_API_KEY``) — is redacted from it, never
stored on the model's ``name`` and never chained into the exception.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from agents.llm.base import Message, ModelError, Request, Response, TransientModelError

OPENAI_URL = "https://api.openai.com/v1"
STRUCTURED_MODES = ("json_schema", "json_object_schema", "json_object", "none")
TOKENIZERS = ("estimate", "server")
SPEC_KEYS = ("model", "structured", "strict", "ctx", "timeout", "key_env", "tokenizer")
DEFAULT_CONCURRENCY = 8
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_CONTEXT_WINDOW = 8192
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
# Local servers ignore the key, but the client insists on one.
NO_KEY = "sk-no-key"
# Token estimate: English BPE averages ~4 characters a token; 3 over-counts on purpose so that
# a prompt fitted with the estimate still fits the real tokenizer (fitting errs on the safe side).
CHARS_PER_TOKEN = 3.0
TRANSIENT_STATUS = frozenset({408, 429})  # plus every 5xx
SCHEMA_NAME = "answer"


def estimate_tokens(text: str) -> int:
    """The documented approximation: ceil(characters / 3)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def schema_instruction(schema: dict[str, Any]) -> str:
    """What the prompt-based fallbacks append to the system message."""
    return (
        "Answer with one JSON object and nothing else. It must be valid against this JSON "
        "schema:\n" + json.dumps(schema, sort_keys=True, ensure_ascii=False)
    )


def with_schema_in_prompt(messages: tuple[Message, ...], schema: dict[str, Any]) -> list[Message]:
    """Messages with the schema instruction added to the system message (or as a new one)."""
    out = [dict(m) for m in messages]
    note = schema_instruction(schema)
    if out and out[0].get("role") == "system":
        out[0]["content"] = (out[0].get("content") or "").rstrip() + "\n\n" + note
    else:
        out.insert(0, {"role": "system", "content": note})
    return out


class _Redactor:
    """Removes a secret from text (error messages, details) before it goes anywhere."""

    def __init__(self, secret: str | None) -> None:
        self._secret = secret if secret and len(secret) >= 4 else None

    def __call__(self, text: object) -> str:
        s = " ".join(str(text).split())
        if self._secret:
            s = s.replace(self._secret, "[REDACTED]")
        return s[:300] + "…" if len(s) > 301 else s


def check_base_url(base_url: str) -> str:
    """A normalised http(s) base URL without credentials (those belong in the environment)."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"bad base URL {base_url!r}: expected http(s)://HOST[:PORT]/PATH")
    if parts.username or parts.password:
        raise ValueError(
            "the base URL must not contain credentials; put the API key in an environment "
            "variable (key_env=VAR, default OPENAI_API_KEY)")
    if parts.fragment:
        raise ValueError(f"bad base URL {base_url!r}: unexpected '#'")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), parts.query, ""))


def parse_spec(arg: str) -> tuple[str, dict[str, str]]:
    """Split ``BASE_URL#k=v&k=v`` into the URL and its options (unknown keys are an error)."""
    url, _, fragment = arg.partition("#")
    options: dict[str, str] = {}
    for key, value in parse_qsl(fragment, keep_blank_values=True):
        if key not in SPEC_KEYS:
            raise ValueError(f"unknown option {key!r} in model spec; valid: {', '.join(SPEC_KEYS)}")
        options[key] = value
    return (check_base_url(url) if url.strip() else OPENAI_URL), options


def _number(options: dict[str, str], key: str, default: float, *, integer: bool = False) -> Any:
    if key not in options:
        return default
    try:
        value = int(options[key]) if integer else float(options[key])
    except ValueError:
        value = -1
    if value <= 0:
        raise ValueError(f"model spec option {key}={options[key]!r}: expected a number > 0")
    return value


class OpenAIModel:
    """A :class:`~agents.llm.base.LanguageModel` for an OpenAI-compatible server."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = DEFAULT_KEY_ENV,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        structured: str = "json_schema",
        strict: bool = False,
        context_window: int = DEFAULT_CONTEXT_WINDOW,
        tokenizer: str = "estimate",
    ) -> None:
        import openai

        if not model:
            raise ValueError("an openai: model needs a model name: openai:URL#model=NAME "
                             "(or --llm-model NAME)")
        if structured not in STRUCTURED_MODES:
            raise ValueError(f"structured={structured!r}: expected one of {', '.join(STRUCTURED_MODES)}")
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer={tokenizer!r}: expected one of {', '.join(TOKENIZERS)}")
        if max_concurrency < 1 or timeout <= 0 or context_window < 1:
            raise ValueError("max_concurrency, timeout and context window must be positive")
        self.base_url = check_base_url(base_url)
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.max_concurrency = int(max_concurrency)
        self.structured = structured
        self.strict = bool(strict)
        self.context_window = int(context_window)
        self.tokenizer = tokenizer
        # The name is recorded with the run and is part of the response cache key: it says
        # what shapes the answer (server, model, structured-output mode), never the key.
        self.name = f"openai:{self.base_url}#model={model}&structured={structured}"
        if strict:
            self.name += "&strict=1"
        key = os.environ.get(api_key_env) if api_key_env else None
        self._key_set = bool(key)
        self._redact = _Redactor(key)
        self._client = openai.OpenAI(
            api_key=key or NO_KEY, base_url=self.base_url, timeout=self.timeout,
            max_retries=0,  # RetryingModel owns retries (tenacity, with backoff and jitter)
        )
        self._auth_header = {"Authorization": f"Bearer {key or NO_KEY}"}
        self._token_cache: OrderedDict[str, int] = OrderedDict()
        self._token_lock = threading.Lock()
        self._tokenize_endpoint: str | None = None

    def __repr__(self) -> str:  # never the client (it holds the key)
        return f"OpenAIModel({self.name!r}, timeout={self.timeout}, max_concurrency={self.max_concurrency})"

    # -- completion -------------------------------------------------------------------
    def request_kwargs(self, request: Request) -> dict[str, Any]:
        """The arguments of ``chat.completions.create`` for a request (without timeout)."""
        messages: list[Message] = [dict(m) for m in request.messages]
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "seed": request.seed,
        }
        schema = request.schema
        if schema is not None:
            if self.structured == "json_schema":
                kwargs["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": SCHEMA_NAME, "schema": schema, "strict": self.strict},
                }
            elif self.structured == "json_object_schema":
                kwargs["response_format"] = {"type": "json_object", "schema": schema}
            else:
                messages = with_schema_in_prompt(request.messages, schema)
                if self.structured == "json_object":
                    kwargs["response_format"] = {"type": "json_object"}
        kwargs["messages"] = messages
        return kwargs

    def complete(self, request: Request) -> Response:
        kwargs = self.request_kwargs(request)
        start = time.perf_counter()
        failure: ModelError | None = None
        try:
            out = self._client.chat.completions.create(**kwargs)
        except Exception as exc:  # mapped below, outside the handler: no chained exception
            failure = self._map_error(exc)
        if failure is not None:
            raise failure
        latency_ms = (time.perf_counter() - start) * 1000.0
        try:
            choice = out.choices[0]
            text = choice.message.content or ""
            finish = choice.finish_reason or "stop"
        except (AttributeError, IndexError, TypeError):
            raise ModelError(f"{self.name}: malformed answer (no choices)") from None
        usage = getattr(out, "usage", None)
        extra: dict[str, Any] = {}
        if usage is not None and usage.prompt_tokens is not None:
            prompt_tokens = int(usage.prompt_tokens)
            completion_tokens = int(usage.completion_tokens or 0)
        else:  # some servers omit usage: estimate, and say so on the call
            prompt_tokens = sum(estimate_tokens(m.get("content") or "") for m in kwargs["messages"])
            completion_tokens = estimate_tokens(text)
            extra["usage"] = "estimated"
        return Response(
            text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            latency_ms=latency_ms, model=self.name, finish_reason=str(finish), extra=extra,
        )

    def _map_error(self, exc: Exception) -> ModelError:
        """One-line, key-free ModelError (TransientModelError when worth retrying)."""
        import openai

        where = self.name
        if isinstance(exc, openai.APITimeoutError):
            return TransientModelError(f"{where}: timed out after {self.timeout:g} s")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            detail = self._redact(cause) if cause is not None else self._redact(exc)
            return TransientModelError(f"{where}: connection error: {detail}")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = self._redact(_error_detail(exc))
            msg = f"{where}: HTTP {status}: {detail}"
            # A server that rejects our response_format is a setting to change, not a fault
            # to retry (llama-cpp-python's server even reports it as a 500).
            structured = self.structured in ("json_schema", "json_object_schema")
            if structured and (status in (400, 422) or
                               (status >= 500 and "response_format" in detail)):
                return ModelError(
                    f"{msg} (if the server does not support structured={self.structured}, "
                    "add #structured=json_object_schema, json_object or none to the spec: "
                    "see docs/models.md)")
            if status in TRANSIENT_STATUS or status >= 500:
                return TransientModelError(msg)
            if status in (401, 403):
                state = "is set" if self._key_set else "is not set"
                msg += f" (the API key comes from ${self.api_key_env}, which {state})"
            return ModelError(msg)
        return ModelError(f"{where}: {type(exc).__name__}: {self._redact(exc)}")

    # -- tokens -----------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """ceil(chars / 3) by default (an over-estimate); ``tokenizer=server`` asks a
        llama.cpp server (llama-cpp-python's ``/extras/tokenize/count`` or llama-server's
        ``/tokenize``), memoised, and falls back to the estimate if neither answers."""
        if self.tokenizer != "server":
            return estimate_tokens(text)
        with self._token_lock:
            hit = self._token_cache.get(text)
            if hit is not None:
                self._token_cache.move_to_end(text)
                return hit
        n = self._server_tokens(text)
        with self._token_lock:
            self._token_cache[text] = n
            while len(self._token_cache) > 20_000:
                self._token_cache.popitem(last=False)
        return n

    def _server_tokens(self, text: str) -> int:
        root = self.base_url.removesuffix("/v1")
        endpoints = ([self._tokenize_endpoint] if self._tokenize_endpoint else
                     ["/extras/tokenize/count", "/tokenize"])
        for path in endpoints:
            body = {"input": text, "model": self.model} if path.startswith("/extras") else {"content": text}
            req = urllib.request.Request(
                root + path, data=json.dumps(body).encode(), method="POST",
                headers={"Content-Type": "application/json", **self._auth_header})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    data = json.loads(resp.read())
            except (urllib.error.URLError, OSError, ValueError):
                continue
            n = data.get("count") if "count" in data else len(data.get("tokens") or [])
            if isinstance(n, int):
                self._tokenize_endpoint = path
                return n
        return estimate_tokens(text)


def _error_detail(exc: Any) -> str:
    """The server's error message (OpenAI's {"error": {"message": ...}} or FastAPI's detail)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            for key in ("message", "detail"):
                if err.get(key):
                    return str(err[key])
        elif isinstance(err, str):
            return err
        if "detail" in body:
            return json.dumps(body["detail"])[:300]
    return str(getattr(exc, "message", exc))


def from_spec(
    arg: str,
    *,
    model: str | None = None,
    api_key_env: str | None = None,
    timeout: float | None = None,
    max_concurrency: int | None = None,
    context_window: int | None = None,
) -> OpenAIModel:
    """An :class:`OpenAIModel` from the part of the spec after ``openai:``; keyword
    arguments (the CLI's options) override the spec's options."""
    base_url, opts = parse_spec(arg)
    strict = opts.get("strict", "0").lower()
    if strict not in ("0", "1", "true", "false", ""):
        raise ValueError(f"model spec option strict={opts['strict']!r}: expected 0 or 1")
    return OpenAIModel(
        base_url,
        model or opts.get("model", ""),
        api_key_env=api_key_env or opts.get("key_env") or DEFAULT_KEY_ENV,
        timeout=timeout or _number(opts, "timeout", DEFAULT_TIMEOUT_S),
        max_concurrency=max_concurrency or DEFAULT_CONCURRENCY,
        structured=opts.get("structured", "json_schema"),
        strict=strict in ("1", "true"),
        context_window=context_window or _number(opts, "ctx", DEFAULT_CONTEXT_WINDOW, integer=True),
        tokenizer=opts.get("tokenizer", "estimate"),
    )
