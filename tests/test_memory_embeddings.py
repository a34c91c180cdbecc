"""Embedders: the hashing test double always; the bundled MiniLM under the `model` marker."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from memory.embeddings import Embedder, HashEmbedder, MiniLMEmbedder, _CachedEmbedder, load_embedder


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)  # rows are unit length


def test_hash_embedder_shape_dtype_and_norm() -> None:
    e = HashEmbedder(32)
    v = e.embed(["Isabella is walking to the cafe", "Klaus reads", ""])
    assert v.shape == (3, 32) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    assert e.name == "hash-32" and e.dim == 32
    assert isinstance(e, Embedder)


def test_hash_embedder_is_deterministic_across_instances_and_processes() -> None:
    text = "Isabella is walking to the cafe"
    a = HashEmbedder(64).embed([text])[0]
    b = HashEmbedder(64).embed([text])[0]
    np.testing.assert_array_equal(a, b)
    code = (
        "from memory.embeddings import HashEmbedder;"
        f"print(HashEmbedder(64).embed([{text!r}])[0].tobytes().hex())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=os.path.dirname(os.path.dirname(__file__)), check=True)
    assert out.stdout.strip() == a.tobytes().hex()


def test_hash_embedder_case_insensitive_and_empty_is_fixed_unit() -> None:
    e = HashEmbedder(16)
    a, b = e.embed(["The Cafe", "the cafe"])
    np.testing.assert_array_equal(a, b)
    empty = e.embed(["", "  ...  "])
    np.testing.assert_array_equal(empty[0], empty[1])
    assert np.linalg.norm(empty[0]) == pytest.approx(1.0)


def test_hash_embedder_shared_words_are_closer() -> None:
    e = HashEmbedder(256)
    base, near, far = e.embed([
        "Isabella is walking to the cafe",
        "Maria is walking to the cafe now",
        "a dog barked loudly at midnight",
    ])
    assert _cos(base, near) > _cos(base, far)
    assert _cos(base, near) > 0.5


def test_load_embedder_specs() -> None:
    assert isinstance(load_embedder("hash"), HashEmbedder)
    assert load_embedder("hash:128").dim == 128
    assert load_embedder(" Hash:16 ").name == "hash-16"
    for spec in ("local", "minilm"):
        m = load_embedder(spec)
        assert isinstance(m, MiniLMEmbedder) and m.dim == 384  # lazy: nothing loaded yet
        assert m._model is None


@pytest.mark.parametrize("spec", ["openai", "hash:", "hash:x", "hash:0", ""])
def test_load_embedder_rejects_unknown(spec: str) -> None:
    with pytest.raises(ValueError, match="valid: local, minilm, hash, hash:DIM") as exc:
        load_embedder(spec)
    assert "\n" not in str(exc.value)


# -- the real model -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.mark.model
def test_minilm_dim_norm_and_semantics(minilm: MiniLMEmbedder) -> None:
    v = minilm.embed(["the cafe is open", "the coffee shop opened", "a dog barked"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert _cos(v[0], v[1]) > _cos(v[0], v[2]) + 0.2
    assert minilm.name == "all-MiniLM-L6-v2"


@pytest.mark.model
def test_minilm_cache_hits_are_identical(minilm: MiniLMEmbedder) -> None:
    texts = ["Klaus is writing his paper", "Klaus is writing his paper", "Maria is idle"]
    misses = minilm.misses
    first = minilm.embed(texts)
    assert minilm.misses - misses == 2  # duplicates in one call are encoded once
    np.testing.assert_array_equal(first[0], first[1])
    hits = minilm.hits
    again = minilm.embed(texts[::-1])
    assert minilm.hits - hits == 3
    np.testing.assert_array_equal(again[::-1], first)
    assert minilm.embed([]).shape == (0, 384)


@pytest.mark.model
def test_minilm_cache_is_bounded() -> None:
    e = MiniLMEmbedder(cache_size=2)
    e.embed(["a", "b", "c"])
    assert len(e._cache) == 2 and "a" not in e._cache


@pytest.mark.model
def test_minilm_loads_without_network(tmp_path) -> None:
    """In a fresh process with sockets disabled and an empty HF cache, it still works."""
    code = textwrap.dedent("""
        import socket
        def refuse(*a, **k):
            raise RuntimeError("network access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from memory.embeddings import MiniLMEmbedder
        v = MiniLMEmbedder().embed(["the cafe is open"])
        print(v.shape)
    """)
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_HOME=str(tmp_path / "hf"), SENTENCE_TRANSFORMERS_HOME=str(tmp_path / "st"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(__file__)), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("(1, 384)")


@pytest.mark.model
def test_minilm_is_thread_safe(minilm: MiniLMEmbedder) -> None:
    texts = [[f"resident {i % 5} walks to the {place}" for i in range(20)]
             for place in ("park", "cafe", "bar", "library")]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(minilm.embed, texts))
    fresh = MiniLMEmbedder()
    for batch, got in zip(texts, parallel):
        np.testing.assert_allclose(got, fresh.embed(batch), atol=1e-5)


class _Counting(_CachedEmbedder):
    """The shared LRU cache over a hash embedder, counting what reaches ``_encode``."""

    name, dim = "counting", 8

    def __init__(self, cache_size: int = 10, request_size: int | None = None) -> None:
        super().__init__(cache_size, batch_size=4)
        self._request_size = request_size
        self.encoded: list[list[str]] = []
        self._hash = HashEmbedder(self.dim)

    def _encode(self, texts: list[str]) -> np.ndarray:
        self.encoded.append(list(texts))
        return self._hash.embed(texts)


def test_cached_embedder_encodes_misses_once_in_requests_of_the_size() -> None:
    e = _Counting(request_size=2)
    v = e.embed(["a", "b", "a", "c", "d", "e"])
    assert e.encoded == [["a", "b"], ["c", "d"], ["e"]] and (e.hits, e.misses) == (0, 5)
    np.testing.assert_array_equal(v, HashEmbedder(8).embed(["a", "b", "a", "c", "d", "e"]))
    np.testing.assert_array_equal(e.embed(["e", "a"]), v[[5, 0]])
    assert len(e.encoded) == 3 and (e.hits, e.misses) == (2, 5)
    assert e.embed([]).shape == (0, 8) and len(e.encoded) == 3
    with pytest.raises(TypeError):
        e.embed("a")


def test_cached_embedder_one_request_by_default_and_lru_bound() -> None:
    e = _Counting(cache_size=2)
    e.embed(["a", "b", "c"])
    assert e.encoded == [["a", "b", "c"]] and list(e._cache) == ["b", "c"]
    e.embed(["b"])  # b becomes the most recent: a new text evicts c
    e.embed(["d"])
    assert list(e._cache) == ["b", "d"] and not e._cache["b"].flags.writeable
    assert _Counting(cache_size=0).embed(["a"]).shape == (1, 8)
