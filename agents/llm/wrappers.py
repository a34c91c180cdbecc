"""Wrappers that add caching, retrying, accounting and recording to any backend.

Each wraps a :class:`LanguageModel` and is one itself (Concordia's style), so a stack is
built by nesting them; see :func:`agents.llm.factory.compose` for the canonical order.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from agents.llm.base import LanguageModel, ModelError, Request, Response, TransientModelError
from agents.llm.cache import ResponseCache

Sink = Callable[[Request, "Response | None", "BaseException | None"], None]


def one_line(text: object, limit: int = 300) -> str:
    """Collapse an error to one short line: logs and records stay greppable."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


class _Forwarding:
    """Forwards the protocol's attributes to the wrapped model."""

    def __init__(self, inner: LanguageModel) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def context_window(self) -> int:
        return self.inner.context_window

    @property
    def max_concurrency(self) -> int:
        return self.inner.max_concurrency

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def complete(self, request: Request) -> Response:  # pragma: no cover - overridden
        return self.inner.complete(request)


class CachedModel(_Forwarding):
    """Answers repeated identical requests from a :class:`ResponseCache`."""

    def __init__(self, inner: LanguageModel, cache: ResponseCache) -> None:
        super().__init__(inner)
        self.cache = cache

    def complete(self, request: Request) -> Response:
        hit = self.cache.get(self.inner.name, request)
        if hit is not None:
            return hit
        response = self.inner.complete(request)
        self.cache.put(self.inner.name, request, response)
        return response


class RetriesExhaustedError(ModelError):
    """Transient failures outlasted the retry budget; ``attempts`` says how many were made."""

    def __init__(self, attempts: int, last: BaseException) -> None:
        super().__init__(f"model call failed after {attempts} attempts: {one_line(last)}")
        self.attempts = attempts
        self.last = last


@dataclass(frozen=True)
class RetryPolicy:
    """How :class:`RetryingModel` retries transient failures.

    ``attempts`` counts the first try; the wait before retry n is random in
    [0, min(maximum, initial·2^(n-1))]
    (exponential backoff with full jitter); ``total_s`` optionally caps the time one call
    may spend retrying. Tests shrink ``initial``/``maximum`` to keep fault runs fast.
    """

    attempts: int = 5
    initial: float = 0.5
    maximum: float = 8.0
    total_s: float | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("retry attempts must be >= 1")
        if self.initial < 0 or self.maximum < 0:
            raise ValueError("retry backoff must be >= 0")


class RetryingModel(_Forwarding):
    """Retries :class:`TransientModelError` with jittered exponential backoff.

    Permanent errors (any other exception) propagate at once. ``timeout_s`` caps the total
    time spent retrying one call; per-request timeouts belong to the backend's client.
    A call that fails for good carries ``attempts`` (so accounting counts attempts - 1
    retries): :class:`RetriesExhaustedError` has it, and a permanent error after transient
    ones gets it set.
    """

    def __init__(
        self,
        inner: LanguageModel,
        attempts: int = 5,
        initial: float = 0.5,
        maximum: float = 8.0,
        timeout_s: float | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(inner)
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.attempts = attempts
        self.initial = initial
        self.maximum = maximum
        self.timeout_s = timeout_s
        self._sleep = sleep

    @classmethod
    def from_policy(cls, inner: LanguageModel, policy: RetryPolicy, **kw: Any) -> RetryingModel:
        return cls(inner, policy.attempts, policy.initial, policy.maximum, policy.total_s, **kw)

    def complete(self, request: Request) -> Response:
        stop = stop_after_attempt(self.attempts)
        if self.timeout_s is not None:
            stop = stop | stop_after_delay(self.timeout_s)
        retrying = Retrying(
            stop=stop,
            wait=wait_random_exponential(multiplier=self.initial, max=self.maximum),
            retry=retry_if_exception_type(TransientModelError),
            sleep=self._sleep,
            reraise=False,
            retry_error_callback=_raise_exhausted,
        )
        attempts = 0
        try:
            for attempt in retrying:
                attempts = attempt.retry_state.attempt_number
                with attempt:
                    response = self.inner.complete(request)
                if not attempt.retry_state.outcome.failed:  # type: ignore[union-attr]
                    response.retries += attempts - 1
                    return response
        except Exception as exc:
            if not hasattr(exc, "attempts"):  # a permanent error, maybe after transient ones
                exc.attempts = attempts  # type: ignore[attr-defined]
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover


def _raise_exhausted(state: RetryCallState) -> Any:
    """tenacity gave up on a transient error: raise one line naming the attempts."""
    assert state.outcome is not None
    raise RetriesExhaustedError(state.attempt_number, state.outcome.exception())


# --------------------------------------------------------------------------- accounting


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: a value that was really observed)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class _Stats:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    invalid: int = 0
    fallbacks: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cache_hits": self.cache_hits,
            "retries": self.retries,
            "failures": self.failures,
            "invalid": self.invalid,
            "fallbacks": self.fallbacks,
            "latency_ms": {
                "p50": _percentile(lat, 50),
                "p95": _percentile(lat, 95),
                "max": lat[-1] if lat else 0.0,
            },
        }


NO_AGENT = "(none)"
NO_PURPOSE = "(none)"


class Accounting:
    """Thread-safe tallies of model use, per purpose and per agent.

    Latencies are of real model calls only (cache hits would drag p50 to zero); tokens
    count every call, cached or not, since that is what the run consumed.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._started: float | None = None
        self._total = _Stats()
        self._purpose: dict[str, _Stats] = {}
        self._agent: dict[str, _Stats] = {}
        self._fresh_completion_tokens = 0

    def _buckets(self, purpose: str, agent: str | None) -> tuple[_Stats, _Stats, _Stats]:
        p = self._purpose.setdefault(purpose or NO_PURPOSE, _Stats())
        a = self._agent.setdefault(agent or NO_AGENT, _Stats())
        return self._total, p, a

    def record(self, request: Request, response: Response | None, error: BaseException | None) -> None:
        """Count one call that reached the accounting wrapper (success or failure)."""
        with self._lock:
            if self._started is None:
                self._started = self._clock()
            for s in self._buckets(request.purpose, request.agent):
                s.calls += 1
                if response is not None:
                    s.prompt_tokens += response.prompt_tokens
                    s.completion_tokens += response.completion_tokens
                    s.retries += response.retries
                    if response.cached:
                        s.cache_hits += 1
                    else:
                        s.latencies_ms.append(response.latency_ms)
                if error is not None:
                    s.failures += 1
                    s.retries += max(0, getattr(error, "attempts", 1) - 1)
            if response is not None and not response.cached:
                self._fresh_completion_tokens += response.completion_tokens

    def invalid(self, purpose: str, agent: str | None) -> None:
        """An answer failed to parse or validate (the prompt runner reports it)."""
        with self._lock:
            for s in self._buckets(purpose, agent):
                s.invalid += 1

    def fallback(self, purpose: str, agent: str | None) -> None:
        """The prompt runner gave up and used the caller's fallback value."""
        with self._lock:
            for s in self._buckets(purpose, agent):
                s.fallbacks += 1

    def totals(self) -> dict[str, Any]:
        with self._lock:
            return self._total.as_dict()

    def by_purpose(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: v.as_dict() for k, v in sorted(self._purpose.items())}

    def by_agent(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: v.as_dict() for k, v in sorted(self._agent.items())}

    def snapshot(self) -> dict[str, float | int]:
        """Cheap numbers for a progress bar; tokens/s is fresh (uncached) generation speed."""
        with self._lock:
            t = self._total
            elapsed = 0.0 if self._started is None else self._clock() - self._started
            return {
                "calls": t.calls,
                "cache_hits": t.cache_hits,
                "failures": t.failures,
                "fallbacks": t.fallbacks,
                "tokens": t.prompt_tokens + t.completion_tokens,
                "elapsed_s": elapsed,
                "tokens_per_s": self._fresh_completion_tokens / elapsed if elapsed > 0 else 0.0,
            }


class RecordingModel(_Forwarding):
    """Hands every call (request, response or error) to a sink, e.g. the run recorder.

    The sink gets the live :class:`Response`; the prompt runner annotates it afterwards
    (``extra["invalid"]``, ``extra["fallback"]``), so a sink should serialise it when the
    step commits, not inside the call.
    """

    def __init__(self, inner: LanguageModel, sink: Sink) -> None:
        super().__init__(inner)
        self.sink = sink

    def complete(self, request: Request) -> Response:
        try:
            response = self.inner.complete(request)
        except BaseException as exc:
            self.sink(request, None, exc)
            raise
        self.sink(request, response, None)
        return response


class AccountingModel(RecordingModel):
    """Counts every call (and its failure) into an :class:`Accounting` (its sink)."""

    def __init__(self, inner: LanguageModel, accounting: Accounting) -> None:
        super().__init__(inner, accounting.record)
        self.accounting = accounting
