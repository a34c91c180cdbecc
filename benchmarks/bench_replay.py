"""Replay benchmarks: seek latency and frames per second on a synthetic 25-agent, 2-day run.

The run (17,280 steps of 10 s) is written straight into the recorder's schema with bulk
inserts: agents walking the tile map by day and asleep at night (change-only
``agent_states``), actions, conversations with utterances, events, memories and plans.

    .venv/bin/python benchmarks/bench_replay.py                 # build (cached) + measure
    .venv/bin/python benchmarks/bench_replay.py --db /tmp/big.db --seeks 500 --frames 1200

Targets (issue 5): seek <= 50 ms; >= 60 frames per second while playing.
"""
from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from village.recorder import ID_SPACE, SCHEMA, SCHEMA_VERSION, embedding_blob  # noqa: E402

N_AGENTS = 25
SECONDS = 10
DAYS = 2
START = datetime(2023, 2, 13, 0, 0, 0)
W, H = 100, 60
ACTIONS = ("having breakfast", "working at the counter", "studying chemistry", "sketching ducks",
           "jogging in the park", "drinking coffee", "reading a book", "gardening tulips",
           "cooking dinner", "relaxing on the sofa", "decorating the cafe for the party")


def scenario_toml() -> str:
    """A 100 x 60 town: 12 two-room houses, a street, a cafe, a park, a shop; 25 residents."""
    grid = [["#"] * W for _ in range(H)]
    legend = {"#": "wall", ".": "Main Street", "C": "Cafe:seating", "K": "Cafe:counter",
              "P": "Johnson Park", "S": "Shop"}
    house_keys = "abcdefghijklmnopqrstuvwxyz"
    homes = []
    for i in range(12):
        top = i < 6
        x0 = 1 + (i % 6) * 16
        y_rows = (range(1, 12), range(13, 26)) if top else (range(45, 52), range(53, 59))
        k1, k2 = house_keys[2 * i], house_keys[2 * i + 1]
        legend[k1] = f"House {i + 1}:kitchen"
        legend[k2] = f"House {i + 1}:bedroom"
        homes.append(f"House {i + 1}")
        for k, ys in ((k1, y_rows[0]), (k2, y_rows[1])):
            for y in ys:
                for x in range(x0, x0 + 15):
                    grid[y][x] = k
        grid[12 if top else 52][x0 + 7] = k2 if top else k1  # door between rooms
        if top:
            grid[26][x0 + 7] = k2  # door to the street
    for y in range(27, 31):
        for x in range(1, W - 1):
            grid[y][x] = "."
    for y in range(31, 44):
        for x in range(1, 40):
            grid[y][x] = "C" if y < 40 else "K"
        for x in range(41, 80):
            grid[y][x] = "P"
        for x in range(81, W - 1):
            grid[y][x] = "S"
    for x in range(1, W - 1):  # a back lane behind the cafe, the park and the shop
        grid[44][x] = "."
    rows = "\n".join("".join(r) for r in grid)
    lines = ['[scenario]', 'name = "bench"', 'start = "2023-02-13T00:00:00"', f"seconds_per_step = {SECONDS}",
             "", "[map]", f'grid = """\n{rows}\n"""', "", "[map.legend]"]
    lines += [f'"{k}" = "{v}"' for k, v in legend.items()]
    for n in range(N_AGENTS):
        lines += ["", "[[residents]]", f'name = "Resident {chr(65 + n)}{n:02d} Person"', f"age = {20 + n}",
                  f'home = "{homes[n % 12]}"']
    return "\n".join(lines) + "\n"


def build(path: Path, seed: int = 1) -> None:
    from village.scenario import parse_scenario

    text = scenario_toml()
    sc = parse_scenario(text, "bench.toml")
    world = sc.build_world()
    rng = random.Random(seed)
    steps = DAYS * 86400 // SECONDS
    if path.exists():
        path.unlink()
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    conn.execute("INSERT INTO runs (id, scenario, scenario_toml, seed, llm, embedder, embedder_dim,"
                 " seconds_per_step, game_start, status, last_step) VALUES"
                 " (1, 'bench', ?, 1, 'synthetic', 'hash-64', 64, ?, ?, 'finished', ?)",
                 (text, SECONDS, START.isoformat(), steps))
    residents = sc.residents
    for i, r in enumerate(residents, start=1):
        conn.execute("INSERT INTO agents (id, name, age, traits, home) VALUES (?, ?, ?, '[]', ?)",
                     (i, r.name, r.age, r.home))
    conn.executemany("INSERT INTO steps VALUES (?, ?, ?, 1.0, 0, 0)",
                     [(s, (START + timedelta(seconds=s * SECONDS)).isoformat(), float(s)) for s in range(steps + 1)])
    walk = [(x, y) for y in range(world.height) for x in range(world.width) if world.is_walkable(x, y)]
    dests = world.destinations()
    states, events, mems, plans, convs, utts = [], [], [], [], [], []
    pos = {i: world.start_tile(r) for i, r in enumerate(residents, start=1)}
    path_of: dict[int, list] = {i: [] for i in pos}
    action: dict[int, tuple[str, str]] = {}
    next_change = {i: 0 for i in pos}
    mem_seq = {i: 0 for i in pos}
    conv_id = 0
    talking: dict[int, tuple[int, int]] = {}  # agent -> (conversation, until step)
    blob = embedding_blob([0.1] * 64)
    last: dict[int, tuple] = {}
    for s in range(steps + 1):
        t = START + timedelta(seconds=s * SECONDS)
        hour = t.hour + t.minute / 60
        for i in pos:
            asleep = hour < 7 or hour >= 22.5
            if i in talking and talking[i][1] < s:
                del talking[i]
            if not asleep and s >= next_change[i] and i not in talking:
                place = rng.choice(dests)
                act = rng.choice(ACTIONS)
                action[i] = (act, place)
                next_change[i] = s + rng.randint(30, 120)
                path_of[i] = world.path(pos[i], place) if world.reachable(pos[i], place) else []
                events.append((s, i, "action", f"{residents[i - 1].name} starts: {act}", place))
                mem_seq[i] += 1
                mems.append((i * ID_SPACE + mem_seq[i], i, s, t.isoformat(), "observation",
                             f"{residents[i - 1].name} is {act} at {place}", rng.randint(1, 9), blob, None))
                plans.append((i * ID_SPACE + mem_seq[i], i, s, "action", None, t.isoformat(),
                              (t + timedelta(minutes=10)).isoformat(), act, place, None, None, None))
            if not asleep and i not in talking and path_of[i]:
                pos[i] = path_of[i].pop(0)
            act, aplace = action.get(i, ("sleeping", None))
            conv = talking.get(i, (None, 0))[0]
            x, y = pos[i]
            row = (x, y, world.place_at(x, y), "sleeping" if asleep else act,
                   None if asleep else aplace, None, conv, int(asleep))
            if last.get(i) != row:
                last[i] = row
                states.append((i, s, *row))
        if 8 <= hour < 21 and s % 40 == 0:  # a conversation between two free agents
            free = [i for i in pos if i not in talking]
            if len(free) >= 2:
                a, b = rng.sample(free, 2)
                conv_id += 1
                n = rng.randint(2, 8)
                convs.append((conv_id, a, b, s, s + n - 1, world.place_at(*pos[a]), n, "cap"))
                for k in range(n):
                    utts.append((conv_id, k, s + k, (a, b)[k % 2], f"line {k} about the party", None))
                talking[a] = talking[b] = (conv_id, s + n - 1)
    conn.executemany("INSERT INTO agent_states VALUES (?,?,?,?,?,?,?,?,?,?)", states)
    conn.executemany("INSERT INTO events(step, agent_id, kind, description, place) VALUES (?,?,?,?,?)", events)
    conn.executemany("INSERT INTO memories VALUES (?,?,?,?,?,?,?,?,?)", mems)
    conn.executemany("INSERT INTO plans VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", plans)
    conn.executemany("INSERT INTO conversations VALUES (?,?,?,?,?,?,?,?)", convs)
    conn.executemany("INSERT INTO utterances VALUES (?,?,?,?,?,?)", utts)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(f"built {path}: {steps} steps, {len(states)} agent_states rows, {len(convs)} conversations,"
          f" {len(utts)} utterances, {len(mems)} memories, {path.stat().st_size / 1e6:.1f} MB")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def bench_seek(path: Path, n: int) -> None:
    from village.replay import ReplayReader

    t0 = time.perf_counter()
    r = ReplayReader(path)
    open_ms = (time.perf_counter() - t0) * 1000
    rng = random.Random(7)
    targets = [rng.randint(r.first_step, r.last_step) for _ in range(n)]
    times = []
    for s in targets:
        t = time.perf_counter()
        f = r.seek(s)  # always the index path, never the cache
        times.append((time.perf_counter() - t) * 1000)
        assert f.step == s and len(f.agents) == N_AGENTS
    times_t = []
    for _ in range(n // 2):  # "day2 17:00"-style jumps, as the viewers' --at and G do
        when = f"day{rng.randint(1, 2)} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
        t = time.perf_counter()
        r.seek(r.step_at(when, clamp=True))
        times_t.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    k = 0
    for _ in r.frames(1000, 1000 + 2000):
        k += 1
    fwd = (time.perf_counter() - t) * 1000 / k
    print(f"open: {open_ms:.1f} ms ({r.last_step} steps, {len(r.agents)} agents)")
    print(f"seek (index lookups, {n} random steps): median {statistics.median(times):.2f} ms,"
          f" p95 {pct(times, 95):.2f} ms, max {max(times):.2f} ms   [target <= 50 ms]")
    print(f"seek by game time ({len(times_t)}): median {statistics.median(times_t):.2f} ms,"
          f" max {max(times_t):.2f} ms")
    print(f"step forward (change rows): {fwd:.3f} ms per step")
    r.close()


def bench_fps(path: Path, frames: int, size: tuple[int, int]) -> None:
    import pygame

    from village.replay import ReplayReader
    from village.viewer.app import Viewer

    r = ReplayReader(path)
    for label, kwargs in (("64x, 2 steps per frame at 60 fps", dict(speed=64)),
                          ("64x, agent panel open", dict(speed=64, agent=3)),
                          ("64x, zoomed in (32 px tiles, map larger than the window)",
                           dict(speed=64, tile=32)),
                          ("8x", dict(speed=8))):
        v = Viewer(r, size=size, start=8 * 360 + 1, play=True, **kwargs)  # 08:00 on day 1: all awake
        v.open()
        dt = 1 / 60  # simulate the wall clock of a 60 fps loop: the work per frame is what is timed
        times = []
        for _ in range(frames):
            t = time.perf_counter()
            for ev in pygame.event.get():
                v.handle(ev)
            v.draw(v.update(dt))
            pygame.display.flip()
            times.append(time.perf_counter() - t)
        steps = v.pb.step - (8 * 360 + 1)
        pygame.display.quit()
        fps = len(times) / sum(times)
        print(f"play {label}: {fps:.0f} frames/s uncapped (median frame {statistics.median(times) * 1000:.2f} ms,"
              f" p95 {pct(times, 95) * 1000:.2f} ms, {steps} steps played) [target >= 60]")
    r.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", type=Path, default=Path("/tmp/village-bench-replay.db"))
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--seeks", type=int, default=300)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--size", default="1280x800")
    a = ap.parse_args()
    if a.rebuild or not a.db.exists():
        t = time.perf_counter()
        build(a.db)
        print(f"(built in {time.perf_counter() - t:.1f} s)")
    bench_seek(a.db, a.seeks)
    w, h = (int(v) for v in a.size.split("x"))
    bench_fps(a.db, a.frames, (w, h))


if __name__ == "__main__":
    main()
