"""Benchmark: a seeded re-run answered from the response cache vs the first run.

Run: .venv/bin/python benchmarks/bench_cache.py [--steps 20] [--llm local] [--threads 1]

Runs `demo` twice with the same seed against a fresh cache in a temporary directory: the
first run asks the model (cold cache), the second is answered entirely from the cache. Prints
both wall times, the model calls that reached the backend in each, and the speed-up. The
default model is the bundled SmolLM2 run in-process; the embedder is the hashing double unless
--embedder says otherwise, so the figures isolate the language model's cost.
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from village import simulate  # noqa: E402
from village.simulate import RunOptions  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="demo")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--llm", default="local")
    ap.add_argument("--embedder", default="hash")
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: all cores)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    backend_calls: list[int] = []
    real = simulate.build_model

    def counting_build_model(*a: Any, **kw: Any) -> Any:  # count calls at the bare backend
        backend = real(*a, **kw)
        backend_calls.append(0)
        inner, i = backend.complete, len(backend_calls) - 1

        def complete(request: Any) -> Any:
            backend_calls[i] += 1
            return inner(request)

        backend.complete = complete
        return backend

    simulate.build_model = counting_build_model  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        times = []
        for name in ("cold", "warm"):
            opts = RunOptions(llm=args.llm, embedder=args.embedder, seed=args.seed,
                              cache_path=Path(tmp) / "cache.db", out=Path(tmp) / f"{name}.db",
                              n_threads=args.threads)
            t0 = time.perf_counter()
            result = simulate.run(simulate.build(args.scenario, opts), args.steps)
            times.append(time.perf_counter() - t0)
            con = sqlite3.connect(opts.out)
            calls, cached = con.execute("SELECT count(*), sum(cached) FROM llm_calls").fetchone()
            con.close()
            print(f"{name} cache: {times[-1]:8.2f} s  {result.steps} steps  {calls} calls recorded, "
                  f"{cached or 0} from the cache, {backend_calls[-1]} reached the model")
    print(f"speed-up of the warm re-run: {times[0] / times[1]:.1f}x "
          f"({args.llm}, {args.scenario}, {args.steps} steps, seed {args.seed})")


if __name__ == "__main__":
    main()
