"""Engine benchmarks: agent-steps per second on a fixed-latency scripted model, the
recorder's share of a step, and database bytes per agent-day.

The town for N agents is the `demo` map tiled into ceil(N / 8) blocks (the streets are
opened at the block edges so the blocks form one walkable town), 8 residents per block,
each starting in its own block: the density of a small town whatever N, so agent-steps/s
measures the cost per agent, not a crowd that grows with N. Place names repeat across
blocks ("Hobbs Cafe" is every block's cafe); an agent walks to the nearest one.

The model is `ScriptedModel` (latency 0 or 10 ms) behind the same wrapper stack as a run
(recording, accounting), answering from each prompt's JSON schema, and importance ratings
of 4, so the agents plan, react, talk and reflect as the code makes them.
"""
from __future__ import annotations

import math
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.llm.base import Request
from agents.llm.factory import compose
from agents.llm.scripted import ScriptedModel, instance_from_schema, request_rng
from agents.llm.wrappers import Accounting
from memory.embeddings import HashEmbedder
from village.config import SimConfig
from village.model import VillageModel
from village.recorder import Recorder
from village.scenario import Scenario, load_scenario, parse_scenario

PER_BLOCK = 8
_COUNT = re.compile(r"each of these (\d+) memories")


def answer(request: Request) -> Any:
    """Schema-valid answers (seeded by the request), importance ratings all 4."""
    m = _COUNT.search(request.messages[-1]["content"])
    if m:
        return {"ratings": [4] * int(m.group(1))}
    return instance_from_schema(request.schema or {}, request_rng(request))


def _demo_block() -> tuple[list[str], str]:
    """The demo grid with its street ends opened, and the text after the grid (legend,
    objects) of the demo scenario."""
    text = load_scenario("demo").source_text
    grid_txt = text.split('grid = """', 1)[1].split('"""', 1)[0]
    rows = [list(r) for r in grid_txt.strip("\n").split("\n")]
    h, w = len(rows), len(rows[0])
    street = [(x, y) for y in range(h) for x in range(w) if rows[y][x] == "."]
    ys = sorted({y for x, y in street if x == 1})  # the horizontal street's rows
    xs = sorted({x for x, y in street if y == 1})  # the vertical street's columns
    for y in ys:
        rows[y][0] = rows[y][w - 1] = "."
    for x in xs:
        rows[0][x] = rows[h - 1][x] = "."
    return ["".join(r) for r in rows], text


def town(n: int, *, per_block: int = PER_BLOCK, wake: str = "07:00") -> Scenario:
    """n residents on the demo map tiled into ceil(n / per_block) blocks (see module doc)."""
    block, text = _demo_block()
    bh, bw = len(block), len(block[0])
    blocks = max(1, math.ceil(n / per_block))
    cols = max(1, math.ceil(math.sqrt(blocks)))
    nrows = math.ceil(blocks / cols)
    grid = []
    for by in range(nrows):
        for y in range(bh):
            grid.append("".join(block[y] for _ in range(cols)))
    head = text.split("[map]", 1)[0].replace('name = "demo"', f'name = "bench-town-{n}"')
    legend = text.split("[map.legend]", 1)[1].split("[[map.objects]]", 1)[0]
    homes = [("Lin house", (2, 2)), ("Moreno house", (18, 2))]
    parts = [head, '[map]\ngrid = """\n' + "\n".join(grid) + '\n"""\n\n[map.legend]' + legend]
    for i in range(n):
        b = i // per_block
        ox, oy = (b % cols) * bw, (b // cols) * bh
        home, (hx, hy) = homes[i % 2]
        parts.append(f'''
[[residents]]
name = "Resident {i:04d}"
age = {20 + i % 60}
traits = ["friendly"]
background = "Resident {i:04d} lives in the {home} of block {b}."
currently = "Resident {i:04d} is having an ordinary Monday."
routine = "Resident {i:04d} wakes at {wake}, works at Hobbs Cafe and walks in Johnson Park."
home = "{home}"
start = [{ox + hx}, {oy + hy + (i // 2) % 3}]
wake = "{wake}"
sleep = "22:00"
memories = ["Resident {i:04d} likes coffee at Hobbs Cafe"]
''')
    return parse_scenario("".join(parts), f"bench-town-{n}.toml")


@dataclass
class EngineRun:
    agents: int
    latency_ms: float
    concurrency: int
    steps: int
    wall_s: float
    cpu_s: float  # the process's CPU time (all threads): what the work cost, waits excluded
    step_ms: list[float]
    calls: int
    recorded: bool

    @property
    def agent_steps_per_s(self) -> float:
        return self.agents * self.steps / self.wall_s

    @property
    def agent_steps_per_cpu_s(self) -> float:
        return self.agents * self.steps / self.cpu_s if self.cpu_s > 0 else float("nan")


def build(sc: Scenario, *, latency_s: float, concurrency: int, db: Path | None,
          config: SimConfig | None = None) -> tuple[VillageModel, ScriptedModel]:
    """A model on the scripted double, composed like a run (recording if `db`)."""
    backend = ScriptedModel(answer, latency_s=latency_s, max_concurrency=concurrency)
    # an instant double never waits: the prompt runner calls it on the loop (no thread)
    backend.blocking = latency_s > 0  # type: ignore[attr-defined]
    recorder = None
    emb = HashEmbedder(64)
    if db is not None:
        recorder = Recorder(db)
        recorder.start_run(scenario=sc.scenario.name, scenario_toml=sc.source_text,
                           seed=sc.scenario.seed, llm=backend.name, embedder=emb.name,
                           embedder_dim=emb.dim, seconds_per_step=sc.scenario.seconds_per_step,
                           game_start=sc.scenario.start.isoformat())
    acc = Accounting()
    llm = compose(backend, accounting=acc, sink=recorder.call if recorder else None)
    model = VillageModel(sc, llm=llm, embedder=emb, recorder=recorder,
                         config=config or SimConfig(), accounting=acc)
    return model, backend


def measure(n: int, *, latency_ms: float, concurrency: int, steps: int, warmup: int = 1,
            record: bool = True, scenario: Scenario | None = None,
            tmp: Path | None = None) -> EngineRun:
    """Step a town of n agents `warmup` steps (untimed: wake-up and day plans), then time
    `steps` more; each step as `village run` does it (think, converse, act, commit)."""
    sc = scenario or town(n)
    with tempfile.TemporaryDirectory(dir=tmp) as d:
        model, backend = build(sc, latency_s=latency_ms / 1000.0, concurrency=concurrency,
                               db=Path(d) / "run.db" if record else None)
        try:
            model.runner._pool()  # start the worker threads before timing
            for _ in range(warmup):
                model.step()
            before = backend.call_count
            per_step = []
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            for _ in range(steps):
                t = time.perf_counter()
                model.step()
                per_step.append((time.perf_counter() - t) * 1000)
            wall = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            calls = backend.call_count - before
        finally:
            model.runner.close()
            if model.recorder is not None:
                model.recorder.close()
            model.close()
    return EngineRun(n, latency_ms, concurrency, steps, wall, cpu, per_step, calls, record)


def one_call_step(n: int, *, latency_ms: float, concurrency: int) -> tuple[float, int]:
    """Wall ms of a step in which each of n agents makes exactly one model call (a whisper
    to rate, planning and observation ablated): the "a step costs one latency" case."""
    sc = town(n)
    text = sc.source_text + "".join(
        f'\n[[whispers]]\nat = "2023-02-13T07:00:10"\nresident = "Resident {i:04d}"\n'
        f'text = "Resident {i:04d} remembers that today is Monday"\n' for i in range(n))
    sc = parse_scenario(text, sc.source_path or "bench.toml")
    cfg = SimConfig(ablate=frozenset({"planning", "observation"}), importance_max_age_minutes=0)
    model, backend = build(sc, latency_s=latency_ms / 1000.0, concurrency=concurrency, db=None,
                           config=cfg)
    try:
        model.runner._pool()
        before = backend.call_count
        t = time.perf_counter()
        model.step()
        return (time.perf_counter() - t) * 1000, backend.call_count - before
    finally:
        model.runner.close()
        model.close()


def db_bytes_per_agent_day(run: Path, agents: int, seconds_per_step: int) -> tuple[float, int]:
    """(bytes per agent per simulated day, steps) of a recorded run database, from its size
    after a checkpoint of the WAL (so the file holds everything)."""
    import sqlite3

    conn = sqlite3.connect(run)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        steps = conn.execute("SELECT count(*) FROM steps WHERE step > 0").fetchone()[0]
    finally:
        conn.close()
    size = run.stat().st_size
    days = max(steps, 1) * seconds_per_step / 86400.0
    return size / (agents * days), steps
