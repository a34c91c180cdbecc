"""Engine benchmark: agent-steps/s of the town on a fixed-latency scripted model, with a
profile and *prototypes* of the proposed engine fixes (monkeypatches applied in this
process only, to measure what each fix would buy; the engine files are not changed).

    .venv/bin/python benchmarks/bench_engine.py --agents 250 1000 --warmup 30 --steps 10
    .venv/bin/python benchmarks/bench_engine.py --agents 1000 --prototype all --steps 10
    .venv/bin/python benchmarks/bench_engine.py --agents 250 --profile   # pyinstrument, main thread
    .venv/bin/python benchmarks/bench_engine.py --agents 25 --check      # prototypes change nothing

The town is village.bench.engine.town(N): the demo map tiled into N/8 blocks. Prototypes:

- perceive:   index the step's events by (area, 8x8 cell) once per step, so an agent scans
              the cells its vision radius covers instead of every agent in town (O(N) → O(1)).
              A no-op since the engine got its own per-tile EventIndex (commit d9d0fc7).
- checkpoint: skip an agent's checkpoint serialisation when nothing it holds changed since
              the last one (a cheap fingerprint), instead of building and JSON-encoding every
              agent's state every step.
- schema:     cache each prompt's resolved JSON schema per enum set and its compiled
              validator, instead of a deep copy and a new validator per call.
- inline:     call an instant backend (latency 0) on the event loop instead of a thread hop.

The checkpoint, schema and inline fixes are now in the engine (BENCHMARKS.md §2a): use
`--prototype none`; the old checkpoint prototype predates fields added to the agent state.
"""
from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from village.bench import engine as eng  # noqa: E402

PROTOTYPES = ("perceive", "checkpoint", "schema", "inline")


# ----------------------------------------------------------------------------- prototypes
def proto_perceive() -> None:
    import agents.perceive as perceive

    if hasattr(perceive, "EventIndex"):  # the engine indexes events itself now (d9d0fc7)
        return
    cell = 8
    cache: dict[str, tuple[object, dict]] = {}

    def visible_events(agent, events):  # noqa: ANN001, ANN202 - same contract as the original
        ent = cache.get("k")
        if ent is None or ent[0] is not events:
            index: dict[tuple, list] = {}
            for i, ev in enumerate(events):
                index.setdefault((ev.area, ev.x // cell, ev.y // cell), []).append((i, ev))
            ent = cache["k"] = (events, index)
        index = ent[1]
        x, y = agent.pos_xy
        area = agent.model.world.area_of(x, y)
        r = agent.vision_radius
        seen = []
        for cx in range((x - r) // cell, (x + r) // cell + 1):
            for cy in range((y - r) // cell, (y + r) // cell + 1):
                for i, ev in index.get((area, cx, cy), ()):
                    if ev.subject == agent.name:
                        continue
                    d = math.hypot(ev.x - x, ev.y - y)
                    if d <= r:
                        seen.append((d, ev.description, i, ev))
        seen.sort(key=lambda t: (t[0], t[1], t[2]))  # the original's order (stable in i)
        nearest = [ev for _, _, _, ev in seen[: agent.attention_bandwidth]]
        return [ev for ev in nearest if ev.description not in agent.recent_observations]

    perceive.visible_events = visible_events


def proto_checkpoint() -> None:
    from village import checkpoint as ckpt
    from village.model import VillageModel

    def fingerprint(a) -> tuple:  # noqa: ANN001
        act = a.action
        return (id(act), act and (act.start, act.end, act.place, getattr(act, "plan_id", None)),
                len(a.actions), a.actions[0].start if a.actions else None, len(a.day_plan),
                id(a.day_plan), a.planned_day, a.yesterday, a.last_note,
                a.replan_after_conversation, a._mem_seq, a._plan_seq, a._retrieval_seq,
                tuple(p.record.id for p in a.pending), a.importance_since_reflection,
                tuple(a.recent_observations), tuple(sorted(a.reacted_to.items())), a.asleep,
                a.conversation_id, a.partner, a.busy_until_step,
                a._path_goal if a.path else None)

    def _checkpoint(self) -> None:  # noqa: ANN001
        fps = self.__dict__.setdefault("_bench_fps", {})
        todo = [(0, self.checkpoint_state())]
        for a in self.residents:
            fp = fingerprint(a)
            if fps.get(a.agent_id) != fp:
                fps[a.agent_id] = fp
                todo.append((a.agent_id, a.checkpoint_state()))
        for aid, parts in todo:
            for part, value in parts.items():
                text = ckpt.dumps(value)
                if self._saved.get((aid, part)) != text:
                    self._saved[(aid, part)] = text
                    self.recorder.add("checkpoints", (self.steps, aid, part, text))

    VillageModel._checkpoint = _checkpoint


def proto_schema() -> None:
    import functools

    import jsonschema

    import agents.prompting as prompting

    orig = prompting.Prompt.resolve_schema
    cache: dict[tuple, dict] = {}

    def resolve_schema(self, enums):  # noqa: ANN001, ANN202
        key = (self.name, json.dumps(enums or {}, sort_keys=True, default=str))
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = orig(self, enums)
        return hit

    @functools.lru_cache(maxsize=4096)
    def compiled(text: str) -> jsonschema.Draft202012Validator:
        return jsonschema.Draft202012Validator(json.loads(text))

    prompting.Prompt.resolve_schema = resolve_schema
    prompting._validator = lambda schema: compiled(json.dumps(schema, sort_keys=True))


def proto_inline() -> None:
    import agents.prompting as prompting
    from agents.llm.factory import backend_of

    orig = prompting.PromptRunner.arun

    async def arun(self, name, variables, **kwargs):  # noqa: ANN001, ANN202
        if getattr(backend_of(self.model), "latency_s", None) == 0:
            return self.run(name, variables, **kwargs)
        return await orig(self, name, variables, **kwargs)

    prompting.PromptRunner.arun = arun


def apply(names: list[str]) -> None:
    for n in names:
        globals()[f"proto_{n}"]()


# ----------------------------------------------------------------------------- runs
def run_once(n: int, steps: int, warmup: int, latency_ms: float, concurrency: int,
             db: Path | None) -> dict:
    sc = eng.town(n)
    model, backend = eng.build(sc, latency_s=latency_ms / 1000, concurrency=concurrency, db=db)
    try:
        model.runner._pool()
        for _ in range(warmup):
            model.step()
        c0 = backend.call_count
        t, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            model.step()
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        return {"agents": n, "steps": steps, "warmup": warmup, "wall_s": wall, "cpu_s": cpu,
                "agent_steps_per_s": n * steps / wall,
                "agent_steps_per_cpu_s": n * steps / cpu,
                "calls_per_agent_step": (backend.call_count - c0) / (n * steps)}
    finally:
        model.runner.close()
        if model.recorder is not None:
            model.recorder.close()
        model.close()


def check(n: int, steps: int, names: list[str]) -> None:
    """Run with and without the prototypes (separate processes) and compare every table."""
    import subprocess

    with tempfile.TemporaryDirectory() as d:
        dbs = []
        for label, protos in (("as is", []), ("prototypes", names)):
            db = Path(d) / f"{label.replace(' ', '_')}.db"
            cmd = [sys.executable, __file__, "--agents", str(n), "--steps", str(steps),
                   "--warmup", "0", "--db", str(db)]
            if protos:
                cmd += ["--prototype", ",".join(protos)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            dbs.append(db)
        a, b = (sqlite3.connect(p) for p in dbs)
        tables = [r[0] for r in a.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for t in tables:
            if t in ("runs", "steps"):
                continue  # wall times
            ra = a.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            rb = b.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            if t == "llm_calls":  # latency differs
                ra = [r[:10] for r in ra]
                rb = [r[:10] for r in rb]
            print(f"{t:<16} {'same' if ra == rb else 'DIFFERENT'} ({len(ra)} / {len(rb)} rows)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, nargs="+", default=[250, 1000])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=30, help="untimed steps first (30 = 5 game minutes)")
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--prototype", default="", help=f"comma list of {', '.join(PROTOTYPES)}, or all")
    ap.add_argument("--profile", action="store_true", help="pyinstrument the timed steps (main thread)")
    ap.add_argument("--check", action="store_true", help="compare the recorded runs with and without")
    ap.add_argument("--db", type=Path, default=None, help="record to this database")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    names = list(PROTOTYPES) if args.prototype == "all" else [
        p for p in args.prototype.split(",") if p and p != "none"]
    if args.check:  # --prototype none: the engine against itself (is the run deterministic?)
        check(args.agents[0], args.steps, names if args.prototype else list(PROTOTYPES))
        return
    apply(names)
    for n in args.agents:
        if args.profile:
            from pyinstrument import Profiler

            prof = Profiler(interval=0.001)
            prof.start()
        with tempfile.TemporaryDirectory() as d:
            res = run_once(n, args.steps, args.warmup, args.latency_ms, args.concurrency,
                           args.db or Path(d) / "run.db")
        if args.profile:
            prof.stop()
            print(prof.output_text(unicode=False, color=False))
        res["prototypes"] = names
        if args.json:
            print(json.dumps(res))
        else:
            print(f"{n:>5} agents  {res['agent_steps_per_s']:8.0f} agent-steps/s  "
                  f"({res['agent_steps_per_cpu_s']:.0f} per CPU-second)  "
                  f"{res['calls_per_agent_step']:.3f} calls/agent-step  ({args.steps} steps after "
                  f"{args.warmup}; prototypes: {', '.join(names) or 'none'})")


if __name__ == "__main__":
    main()
