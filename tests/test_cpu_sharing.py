"""The in-process model and encoder take turns on the CPU; runs made on the Q4_1 file stay on it."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np

from agents.llm.factory import build_model
from agents.llm.local import BUNDLED_NAME, ORIGINAL_NAME, LlamaCppModel, bundled_gguf_path
from memory.embeddings import HashEmbedder, MiniLMEmbedder
from village.interview import spec_for_recorded
from village.simulate import options_from_run, share_cpu


class _SlowEncoder(MiniLMEmbedder):
    """MiniLM's locking with a stand-in encode (no weights loaded): notes when it ran."""

    def __init__(self) -> None:
        super().__init__()
        self.encoded_at: list[float] = []

    def _encode(self, texts: list[str]) -> np.ndarray:
        self.encoded_at.append(time.perf_counter())
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        out[:, 0] = 1.0
        return out


def test_the_encoder_waits_for_the_call_in_progress_but_cache_hits_do_not() -> None:
    model = LlamaCppModel(bundled_gguf_path())  # not loaded: only its lock is used
    enc = _SlowEncoder()
    assert enc.threads is None
    assert share_cpu(model, enc) and enc.cpu_lock is model.cpu_lock and enc.threads == 1
    enc.embed(["cached already"])
    held, release = threading.Event(), threading.Event()

    def a_model_call() -> None:
        with model.cpu_lock:
            held.set()
            release.wait(5)

    t = threading.Thread(target=a_model_call)
    t.start()
    held.wait(5)
    t0 = time.perf_counter()
    enc.embed(["cached already"])  # a hit: answered while the call runs
    assert time.perf_counter() - t0 < 0.5 and len(enc.encoded_at) == 1
    done = threading.Event()
    threading.Thread(target=lambda: (enc.embed(["new text"]), done.set())).start()
    assert not done.wait(0.3)  # a miss waits for the call
    released_at = time.perf_counter()
    release.set()
    assert done.wait(5) and enc.encoded_at[-1] >= released_at
    t.join()


def test_only_in_process_pairs_share() -> None:
    assert not share_cpu(build_model("scripted"), _SlowEncoder())  # a double has no CPU lock
    assert not share_cpu(LlamaCppModel(bundled_gguf_path()), HashEmbedder())
    plain = _SlowEncoder()
    with plain.cpu_lock:  # unshared: a no-op context, reentrant
        plain.embed(["x"])


def test_runs_recorded_on_the_q4_1_file_continue_on_it(tmp_path: Path) -> None:
    assert build_model("local").name == BUNDLED_NAME
    assert build_model("local:q4_1").name == ORIGINAL_NAME
    assert spec_for_recorded(ORIGINAL_NAME) == "local:q4_1"
    assert spec_for_recorded(BUNDLED_NAME) == "local"
    config = json.dumps({"llm_spec": "local", "embedder_spec": "hash"})
    old = options_from_run({"llm": ORIGINAL_NAME, "config": config}, tmp_path / "r.db")
    new = options_from_run({"llm": BUNDLED_NAME, "config": config}, tmp_path / "r.db")
    assert (old.llm, new.llm) == ("local:q4_1", "local")
