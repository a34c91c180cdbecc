"""A scale demonstration: N agents (default 1,000) for a simulated hour (360 steps of 10 s)
on the scripted model, recorded to a run database like any `village run` — replayable
(`village replay OUT`), inspectable, resumable. Prints wall time, peak memory and the
model economy; see docs/scaling.md for the figures measured on the project machine.

    python examples/scale_demo.py --agents 1000 --steps 360 --out /tmp/scale/town-1000.db

The town is `village.bench.engine.town(N)`: the demo map tiled into blocks of 8 residents
(small-town density whatever N). The model is the scripted double answering each prompt
from its JSON schema (importance ratings 4, as in the engine benchmark) with no latency, so
the figures measure Village itself — perception, memory, retrieval, planning, the recorder —
not a language model. (The double keeps every request for tests; here it keeps none, so
memory measures Village, not the double.)
"""
from __future__ import annotations

import argparse
import collections
import json
import resource
import sys
import time
from pathlib import Path

from agents.llm.factory import backend_of
from village.bench.engine import answer, town
from village.simulate import RunOptions, build, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=360)
    ap.add_argument("--out", type=Path, required=True, help="the run database to write")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    if args.out.exists():
        sys.exit(f"{args.out}: already exists")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sc_path = args.out.with_suffix(".toml")
    sc_path.write_text(town(args.agents).source_text)  # the run also stores it (runs.scenario_toml)

    t0 = time.perf_counter()
    model = build(str(sc_path), RunOptions(llm="scripted", embedder="hash", cache=False,
                                           out=args.out, llm_concurrency=64))
    backend = backend_of(model.llm)
    backend.responder = answer
    backend.calls = collections.deque(maxlen=1)
    setup_s = time.perf_counter() - t0
    step_s: list[float] = []
    last = [time.perf_counter()]

    def on_step(m) -> None:  # noqa: ANN001
        now = time.perf_counter()
        step_s.append(now - last[0])
        last[0] = now
        if m.steps % 30 == 0:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"step {m.steps}: {sum(step_s):.0f} s, peak RSS {rss:.0f} MB", flush=True)

    result = run(model, args.steps, on_step=on_step)
    wall = time.perf_counter() - t0
    tot = result.accounting.totals()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {
        "agents": args.agents, "steps": result.steps, "status": result.status,
        "setup_s": round(setup_s, 1), "run_s": round(result.wall_s, 1), "wall_s": round(wall, 1),
        "mean_step_s": round(sum(step_s) / max(1, len(step_s)), 2),
        "max_step_s": round(max(step_s or [0]), 2),
        "agent_steps_per_s": round(args.agents * result.steps / max(result.wall_s, 1e-9), 1),
        "peak_rss_mb": round(peak_mb), "db_mb": round(args.out.stat().st_size / 2**20, 1),
        "calls": tot["calls"], "prompt_tokens": tot["prompt_tokens"],
        "completion_tokens": tot["completion_tokens"], "db": str(args.out),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
