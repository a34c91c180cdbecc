"""Benchmark: agents' model calls in a step issued concurrently vs one after another.

Run: .venv/bin/python benchmarks/bench_concurrency.py [--latency-ms 10] [--agents 10 50] [--steps 6]

A fixed-latency test double (ScriptedModel, 10 ms a call by default) stands in for a server,
so the figures measure the framework, not a model. Two measurements per town size:

1. "one call each": the first step of a town whose residents all wake at 07:00 and hear one
   whisper; with planning and observation ablated, each agent makes exactly one call in it.
   Ideal speed-up = number of agents (bounded by --llm-concurrency, 64 here).
2. "full cognition": the first --steps steps with every module on (day plans, hour plans,
   importance, reactions, conversations): agents make several sequential calls each, so the
   speed-up is bounded by the longest chain of one agent's calls.

Prints milliseconds (best of --repeat runs) for concurrency 1 and 64, and their ratio.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.llm.base import Request  # noqa: E402
from agents.llm.factory import compose  # noqa: E402
from agents.llm.scripted import ScriptedModel, instance_from_schema, request_rng  # noqa: E402
from agents.llm.wrappers import Accounting  # noqa: E402
from memory.embeddings import HashEmbedder  # noqa: E402
from village.config import SimConfig  # noqa: E402
from village.model import VillageModel  # noqa: E402
from village.scenario import Scenario, load_scenario, parse_scenario  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def town(n: int) -> Scenario:
    """The demo map with n residents who all wake at 07:00 and hear a whisper at 07:00:10."""
    demo = load_scenario(str(ROOT / "scenarios" / "demo.toml")).source_text
    head = demo.split("[[map.objects]]")[0].replace('name = "demo"', f'name = "bench{n}"')
    parts = [head]
    for i in range(n):
        home = "Lin house" if i % 2 == 0 else "Moreno house"
        parts.append(f'''
[[residents]]
name = "Resident {i:03d}"
age = {20 + i % 60}
traits = ["friendly"]
background = "Resident {i:03d} lives in the {home}."
currently = "Resident {i:03d} is having an ordinary Monday."
routine = "Resident {i:03d} wakes at 7:00, works at Hobbs Cafe and walks in Johnson Park."
home = "{home}"
wake = "07:00"
sleep = "22:00"
memories = ["Resident {i:03d} likes coffee at Hobbs Cafe"]
''')
    for i in range(n):
        parts.append(f'''
[[whispers]]
at = "2023-02-13T07:00:10"
resident = "Resident {i:03d}"
text = "Resident {i:03d} remembers that today is Monday"
''')
    return parse_scenario("".join(parts), f"bench{n}.toml")


def answer(request: Request):
    m = re.search(r"each of these (\d+) memories", request.messages[-1]["content"])
    if m:
        return {"ratings": [4] * int(m.group(1))}
    return instance_from_schema(request.schema or {}, request_rng(request))


def timed(sc: Scenario, concurrency: int, latency_s: float, config: SimConfig,
          steps: int) -> tuple[float, int]:
    backend = ScriptedModel(answer, latency_s=latency_s, max_concurrency=concurrency)
    model = VillageModel(sc, llm=compose(backend, accounting=Accounting()),
                         embedder=HashEmbedder(64), config=config)
    try:
        model.runner._pool()
        before = backend.call_count
        t0 = time.perf_counter()
        for _ in range(steps):
            model.step()
        return time.perf_counter() - t0, backend.call_count - before
    finally:
        model.runner.close()
        model.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency-ms", type=float, default=10.0)
    ap.add_argument("--agents", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--steps", type=int, default=6, help="steps of the full-cognition measurement")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    lat = args.latency_ms / 1000.0
    one_call = SimConfig(ablate=frozenset({"planning", "observation"}), importance_max_age_minutes=0)
    full = SimConfig()
    print(f"fixed-latency double: {args.latency_ms:g} ms per call; best of {args.repeat}")
    print(f"{'agents':>6} {'measurement':<22} {'calls':>6} {'sequential ms':>14} "
          f"{'concurrent ms':>14} {'speed-up':>9}")
    for n in args.agents:
        sc = town(n)
        for label, cfg, steps in (("one call each, 1 step", one_call, 1),
                                  (f"full cognition, {args.steps} st", full, args.steps)):
            seq = min(timed(sc, 1, lat, cfg, steps) for _ in range(args.repeat))
            con = min(timed(sc, 64, lat, cfg, steps) for _ in range(args.repeat))
            print(f"{n:>6} {label:<22} {seq[1]:>6} {seq[0] * 1000:>14.0f} {con[0] * 1000:>14.0f} "
                  f"{seq[0] / con[0]:>8.1f}x")


if __name__ == "__main__":
    main()
