"""One run's model calls spread over several OpenAI-compatible servers.

Spec (docs/models.md, docs/scaling.md): the base URLs separated by ``|``, one set of options
for all of them::

    openai:http://10.0.0.1:8000/v1|http://10.0.0.2:8000/v1#model=Qwen/Qwen2.5-7B-Instruct

Every server must serve the same model (the answer must not depend on which one answered:
the backend's ``name`` — recorded with the run and part of the response cache key — names
all the URLs in the order given). Each call goes to the server with the fewest calls in
flight; ties go round-robin, so with equal servers calls alternate. A server that fails
with a transient error (timeout, 429, 5xx, connection refused) just raises it: the
:class:`~agents.llm.wrappers.RetryingModel` above re-asks, and the re-ask is dispatched
afresh — the least-loaded rule and the rotating tie-break send it to another server when
one is idle. A server whose last ``DOWN_AFTER`` calls all failed transiently is skipped for
``COOL_DOWN_S`` seconds while any other server is usable.

``max_concurrency`` defaults to the sum of the servers' (8 each); ``--llm-concurrency N``
sets the total. Per-server counts are in :meth:`MultiServerModel.stats`.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from agents.llm.base import Request, Response, TransientModelError
from agents.llm.openai_compat import OpenAIModel, from_spec as _single_from_spec

SEPARATOR = "|"
DOWN_AFTER = 3  # consecutive transient failures before a server is skipped for a while
COOL_DOWN_S = 10.0


@dataclass
class ServerStats:
    url: str
    calls: int = 0  # completed calls (answers)
    failures: int = 0  # calls that raised
    in_flight: int = 0
    consecutive_failures: int = 0
    skipped_until: float = 0.0


class MultiServerModel:
    """A :class:`~agents.llm.base.LanguageModel` over several :class:`OpenAIModel` servers."""

    def __init__(self, backends: list[OpenAIModel], *, max_concurrency: int | None = None) -> None:
        if len(backends) < 1:
            raise ValueError("a multi-server model needs at least one server")
        models = {(b.model, b.structured, b.strict) for b in backends}
        if len(models) != 1:
            raise ValueError("every server of one run must serve the same model and mode")
        urls = [b.base_url for b in backends]
        if len(set(urls)) != len(urls):
            raise ValueError(f"the same base URL is listed twice: {SEPARATOR.join(urls)}")
        self.backends = list(backends)
        first = backends[0]
        self.model = first.model
        self.name = (f"openai:{SEPARATOR.join(urls)}#model={first.model}"
                     f"&structured={first.structured}" + ("&strict=1" if first.strict else ""))
        self.context_window = min(b.context_window for b in backends)
        self.max_concurrency = int(max_concurrency or sum(b.max_concurrency for b in backends))
        self._stats = [ServerStats(u) for u in urls]
        self._lock = threading.Lock()
        self._next = 0  # where the round-robin tie-break starts

    def __repr__(self) -> str:
        return f"MultiServerModel({self.name!r}, max_concurrency={self.max_concurrency})"

    # -- dispatch -----------------------------------------------------------------------
    def _pick(self) -> int:
        """The least-loaded usable server; ties round-robin. Holds the lock."""
        now = time.monotonic()
        n = len(self.backends)
        order = [(self._next + k) % n for k in range(n)]
        usable = [i for i in order if self._stats[i].skipped_until <= now] or order
        best = min(usable, key=lambda i: self._stats[i].in_flight)  # first minimum: rotation
        self._next = (best + 1) % n
        return best

    def complete(self, request: Request) -> Response:
        with self._lock:
            i = self._pick()
            st = self._stats[i]
            st.in_flight += 1
        try:
            response = self.backends[i].complete(request)
        except Exception as exc:
            with self._lock:
                st.in_flight -= 1
                st.failures += 1
                if isinstance(exc, TransientModelError):
                    st.consecutive_failures += 1
                    if st.consecutive_failures >= DOWN_AFTER:
                        st.skipped_until = time.monotonic() + COOL_DOWN_S
            raise
        with self._lock:
            st.in_flight -= 1
            st.calls += 1
            st.consecutive_failures = 0
            st.skipped_until = 0.0
        # which server answered (on the response, for whoever wraps this backend)
        response.extra = {**response.extra, "server": st.url}
        return response

    def count_tokens(self, text: str) -> int:
        return self.backends[0].count_tokens(text)

    # -- observability ------------------------------------------------------------------
    def stats(self) -> dict[str, dict[str, Any]]:
        """Per server URL: completed ``calls``, ``failures``, ``in_flight`` now."""
        with self._lock:
            return {s.url: {"calls": s.calls, "failures": s.failures, "in_flight": s.in_flight}
                    for s in self._stats}

    def calls_per_server(self) -> dict[str, int]:
        return {url: s["calls"] for url, s in self.stats().items()}


def split_urls(arg: str) -> tuple[list[str], str]:
    """``URL1|URL2#opts`` → ([URL1, URL2], 'opts')."""
    urls, _, fragment = arg.partition("#")
    parts = [u.strip() for u in urls.split(SEPARATOR)]
    if any(not p for p in parts):
        raise ValueError(f"empty base URL in {urls!r}: expected URL1{SEPARATOR}URL2[...]")
    return parts, fragment


def from_spec(arg: str, *, max_concurrency: int | None = None, **kwargs: Any) -> MultiServerModel:
    """A :class:`MultiServerModel` from ``URL1|URL2[|...]#model=NAME&...`` (the part after
    ``openai:``); keyword arguments as :func:`agents.llm.openai_compat.from_spec`.
    ``max_concurrency`` is the total across servers."""
    urls, fragment = split_urls(arg)
    backends = [_single_from_spec(f"{u}#{fragment}", **kwargs) for u in urls]
    return MultiServerModel(backends, max_concurrency=max_concurrency)


def is_multi(arg: str) -> bool:
    """Does the part after ``openai:`` name several servers?"""
    return SEPARATOR in arg.partition("#")[0]
