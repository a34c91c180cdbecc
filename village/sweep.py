"""Sweeps: a grid of scenarios × seeds × ablations × model backends, run in parallel.

A sweep file (TOML, see docs/sweeps.md and examples/sweep.toml)::

    [sweep]
    name = "ablations"
    scenarios = ["demo"]
    seeds = [1, 2, 3]
    ablations = ["none", "reflection", "planning"]   # "a+b" ablates both
    llms = ["scripted", "local"]
    steps = 60               # or hours = 1.0
    embedder = "local"       # default
    cache = true             # the shared response cache (WAL: safe across processes)
    llm_retries = 5          # attempts per model call
    llm_concurrency = 4      # optional; per run
    out = "replays/sweeps/ablations"   # default replays/sweeps/NAME

Each run writes its own database, ``OUT/{scenario}-seed{seed}-{ablations|full}-{llm}.db``.
Runs execute on **Ray** (``ray.init(num_cpus=N, include_dashboard=False)`` — a local
instance — unless ``address`` names an existing cluster), one CPU each; without Ray
installed, on a local process pool (``executor="pool"``); ``executor="serial"`` runs them
one after another in this process. A run that fails (its database says ``failed``, or the
worker died) is retried once from scratch, its first database kept as ``…attempt1.db``;
if it fails again it is reported, and the sweep goes on — finished runs are never lost, and
re-running the same sweep into the same folder skips runs already ``finished`` there.

At the end the finished runs are compared with :func:`village.report.compare` (one column
per run) and the table is written as ``compare.md`` and ``compare.csv`` next to ``runs.csv``
(one row per run: label, status, attempts, wall seconds, steps, calls, database, error).
"""
from __future__ import annotations

import csv
import itertools
import json
import os
import sqlite3
import time
import tomllib
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from village.config import ABLATIONS

EXECUTORS = ("ray", "pool", "serial")
SWEEP_KEYS = {"name", "scenarios", "seeds", "ablations", "llms", "steps", "hours", "embedder",
              "cache", "llm_retries", "llm_concurrency", "out", "retries"}


class SweepError(ValueError):
    """A bad sweep file or option (one line)."""


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid: everything a worker needs (plain data: it is pickled)."""

    label: str
    scenario: str  # as given (the label uses it)
    scenario_path: str  # absolute, so a worker in another directory finds it
    seed: int
    ablate: tuple[str, ...]
    llm: str
    steps: int
    embedder: str
    cache: bool
    llm_retries: int
    llm_concurrency: int | None
    out: str  # the database


@dataclass
class RunOutcome:
    label: str
    status: str  # finished | failed | skipped (already finished)
    db: str
    attempts: int = 1
    wall_s: float = 0.0
    steps: int = 0
    calls: int = 0
    error: str | None = None


@dataclass
class Sweep:
    name: str
    out: Path
    runs: list[RunSpec]
    retries: int = 1


@dataclass
class SweepResult:
    out: Path
    outcomes: list[RunOutcome]
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def finished(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status in ("finished", "skipped")]


# ------------------------------------------------------------------------------ the grid
def _list(value: Any, key: str, kind: type) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise SweepError(f"sweep: '{key}' is empty")
    for v in values:
        if not isinstance(v, kind) or isinstance(v, bool) and kind is int:
            raise SweepError(f"sweep: '{key}' holds {v!r}; expected {kind.__name__} values")
    return values


def load_sweep(path: str | Path, *, out: str | Path | None = None) -> Sweep:
    """Read and validate a sweep file; every scenario is loaded (so a typo fails now)."""
    from village.batch import ablation_set, run_label
    from village.scenario import load_scenario

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SweepError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{path}: not valid TOML ({exc})") from None
    s = data.get("sweep")
    if not isinstance(s, dict):
        raise SweepError(f"{path}: no [sweep] table")
    unknown = set(s) - SWEEP_KEYS
    if unknown:
        raise SweepError(f"{path}: unknown key {sorted(unknown)[0]!r} in [sweep]; "
                         f"valid: {', '.join(sorted(SWEEP_KEYS))}")
    name = str(s.get("name") or path.stem)
    scenarios = _list(s.get("scenarios", ["demo"]), "scenarios", str)
    seeds = _list(s.get("seeds", [0]), "seeds", int)
    ablations_raw = _list(s.get("ablations", ["none"]), "ablations", str)
    llms = _list(s.get("llms", ["local"]), "llms", str)
    if ("steps" in s) == ("hours" in s):
        raise SweepError(f"{path}: give exactly one of 'steps' or 'hours' in [sweep]")
    ablations = []
    for a in ablations_raw:
        abl = ablation_set(a)
        bad = abl - set(ABLATIONS)
        if bad:
            raise SweepError(f"{path}: unknown ablation {sorted(bad)[0]!r}; expected none or "
                             f"{', '.join(ABLATIONS)} (join several with '+')")
        ablations.append(tuple(sorted(abl)))
    paths: dict[str, tuple[str, int]] = {}
    for sc_name in scenarios:
        try:
            sc = load_scenario(sc_name)
        except Exception as exc:  # ScenarioError and friends: one line
            raise SweepError(f"{path}: scenario {sc_name!r}: {exc}") from None
        paths[sc_name] = (str(sc.source_path), sc.scenario.seconds_per_step)
    out_dir = Path(out or s.get("out") or Path("replays") / "sweeps" / name).resolve()
    retries = int(s.get("retries", 1))
    runs: list[RunSpec] = []
    for sc_name, seed, abl, llm in itertools.product(scenarios, seeds, ablations, llms):
        sc_path, sps = paths[sc_name]
        steps = int(s["steps"]) if "steps" in s else int(round(float(s["hours"]) * 3600 / sps))
        if steps < 1:
            raise SweepError(f"{path}: a run needs at least one step")
        label = run_label(sc_name, seed, frozenset(abl), llm)
        runs.append(RunSpec(
            label=label, scenario=sc_name, scenario_path=sc_path, seed=seed, ablate=abl,
            llm=llm, steps=steps, embedder=str(s.get("embedder", "local")),
            cache=bool(s.get("cache", True)), llm_retries=int(s.get("llm_retries", 5)),
            llm_concurrency=s.get("llm_concurrency"), out=str(out_dir / f"{label}.db")))
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        dup = next(lbl for lbl in labels if labels.count(lbl) > 1)
        raise SweepError(f"{path}: two runs would share the database {dup}.db "
                         "(are two llms equal once made file-name safe?)")
    return Sweep(name=name, out=out_dir, runs=runs, retries=retries)


# ------------------------------------------------------------------------------ one run
def run_one(spec: RunSpec) -> RunOutcome:
    """Run one cell to its database (in a worker). Never raises: failures are outcomes."""
    from agents.llm.wrappers import RetryPolicy
    from village.config import SimConfig
    from village.simulate import RunOptions, build, run

    t0 = time.perf_counter()
    out = Path(spec.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        opts = RunOptions(
            llm=spec.llm, embedder=spec.embedder, seed=spec.seed, out=out, cache=spec.cache,
            llm_concurrency=spec.llm_concurrency, retry=RetryPolicy(attempts=max(1, spec.llm_retries)),
            config=SimConfig(ablate=frozenset(spec.ablate)))
        model = build(spec.scenario_path, opts)
        result = run(model, spec.steps)
        calls = int(result.accounting.totals()["calls"])
        status = "finished" if result.status == "finished" else "failed"
        return RunOutcome(spec.label, status, str(out), wall_s=time.perf_counter() - t0,
                          steps=result.steps, calls=calls,
                          error=None if status == "finished" else f"run {result.status}")
    except BaseException as exc:  # noqa: BLE001 - reported, the sweep goes on
        msg = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
        return RunOutcome(spec.label, "failed", str(out), wall_s=time.perf_counter() - t0, error=msg)


def _already_finished(spec: RunSpec) -> bool:
    p = Path(spec.out)
    if not p.is_file():
        return False
    try:
        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            row = con.execute("SELECT status, target_steps FROM runs ORDER BY id LIMIT 1").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return False
    return bool(row) and row[0] == "finished" and row[1] == spec.steps


def _set_aside(spec: RunSpec, attempt: int) -> None:
    """Keep a failed attempt's database for post-mortem; the retry starts afresh."""
    p = Path(spec.out)
    for suffix in ("", "-wal", "-shm"):
        f = Path(str(p) + suffix)
        if f.exists():
            f.replace(Path(str(p.with_suffix("")) + f".attempt{attempt}.db" + suffix))


# ------------------------------------------------------------------------------ executors
class _RayExecutor:
    def __init__(self, address: str | None, parallel: int | None) -> None:
        import ray

        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=parallel or min(2, os.cpu_count() or 1),
                         include_dashboard=False, log_to_driver=False)
            self.started = True
        self.remote = ray.remote(num_cpus=1, max_retries=0)(run_one)
        self.pending: dict[Any, RunSpec] = {}

    def submit(self, spec: RunSpec) -> None:
        self.pending[self.remote.remote(spec)] = spec

    def next_done(self) -> tuple[RunSpec, RunOutcome]:
        done, _ = self.ray.wait(list(self.pending), num_returns=1)
        ref = done[0]
        spec = self.pending.pop(ref)
        try:
            return spec, self.ray.get(ref)
        except Exception as exc:  # the worker died (OOM, segfault, node lost)
            return spec, RunOutcome(spec.label, "failed", spec.out,
                                    error=" ".join(f"{type(exc).__name__}: {exc}".split())[:500])

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


class _PoolExecutor:
    def __init__(self, parallel: int | None) -> None:
        import multiprocessing

        n = parallel or min(2, os.cpu_count() or 1)
        self.pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"))
        self.pending: dict[Future, RunSpec] = {}

    def submit(self, spec: RunSpec) -> None:
        self.pending[self.pool.submit(run_one, spec)] = spec

    def next_done(self) -> tuple[RunSpec, RunOutcome]:
        done, _ = wait(list(self.pending), return_when=FIRST_COMPLETED)
        fut = next(iter(done))
        spec = self.pending.pop(fut)
        try:
            return spec, fut.result()
        except Exception as exc:  # BrokenProcessPool: a worker died
            return spec, RunOutcome(spec.label, "failed", spec.out,
                                    error=" ".join(f"{type(exc).__name__}: {exc}".split())[:500])

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _SerialExecutor:
    def __init__(self) -> None:
        self.pending: list[RunSpec] = []

    def submit(self, spec: RunSpec) -> None:
        self.pending.append(spec)

    def next_done(self) -> tuple[RunSpec, RunOutcome]:
        spec = self.pending.pop(0)
        return spec, run_one(spec)

    def close(self) -> None:
        pass


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def default_executor() -> str:
    return "ray" if ray_available() else "pool"


# ------------------------------------------------------------------------------ the sweep
Progress = Callable[[int, int, RunOutcome], None]


def run_sweep(sweep: Sweep, *, executor: str | None = None, address: str | None = None,
              parallel: int | None = None, progress: Progress | None = None,
              compare: bool = True) -> SweepResult:
    """Run every cell (retrying a failed one ``sweep.retries`` times), then compare."""
    executor = executor or default_executor()
    if executor not in EXECUTORS:
        raise SweepError(f"executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    if address and executor != "ray":
        raise SweepError("--address needs Ray (pip install 'village[ray]')")
    if executor == "ray" and not ray_available():
        raise SweepError("Ray is not installed: pip install 'village[ray]' (or use the local "
                         "process pool: --executor pool)")
    if parallel is not None and parallel < 1:
        raise SweepError(f"--parallel must be >= 1, got {parallel}")
    t0 = time.perf_counter()
    sweep.out.mkdir(parents=True, exist_ok=True)
    (sweep.out / "sweep.json").write_text(json.dumps(
        {"name": sweep.name, "runs": [asdict(r) for r in sweep.runs]}, indent=2) + "\n")
    outcomes: dict[str, RunOutcome] = {}
    total = len(sweep.runs)
    todo = []
    for spec in sweep.runs:
        if _already_finished(spec):
            o = RunOutcome(spec.label, "skipped", spec.out, attempts=0, steps=spec.steps)
            outcomes[spec.label] = o
            if progress:
                progress(len(outcomes), total, o)
        else:
            todo.append(spec)
    attempts: dict[str, int] = {}
    ex: Any = None
    try:
        if todo:
            ex = (_RayExecutor(address, parallel) if executor == "ray" else
                  _PoolExecutor(parallel) if executor == "pool" else _SerialExecutor())
            for spec in todo:
                if Path(spec.out).exists():  # an unfinished leftover from an earlier sweep
                    _set_aside(spec, 0)
                attempts[spec.label] = 1
                ex.submit(spec)
            while ex.pending:
                spec, o = ex.next_done()
                o.attempts = attempts[spec.label]
                if o.status == "failed" and attempts[spec.label] <= sweep.retries:
                    _set_aside(spec, attempts[spec.label])
                    attempts[spec.label] += 1
                    ex.submit(spec)
                    continue
                outcomes[spec.label] = o
                if progress:
                    progress(len(outcomes), total, o)
    finally:
        if ex is not None:
            ex.close()
    ordered = [outcomes[s.label] for s in sweep.runs if s.label in outcomes]
    result = SweepResult(sweep.out, ordered)
    write_runs_csv(result)
    if compare and result.finished:
        result.headers, result.rows = compare_table([o.db for o in result.finished])
        write_compare(result)
    result.wall_s = time.perf_counter() - t0
    return result


def compare_table(dbs: list[str]) -> tuple[list[str], list[list[str]]]:
    """``village compare``'s table (facts tracked by keywords: no embedder is loaded)."""
    from village.report import compare

    return compare(dbs, method="keywords")


def write_runs_csv(result: SweepResult) -> Path:
    path = result.out / "runs.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "status", "attempts", "wall_s", "steps", "calls", "db", "error"])
        for o in result.outcomes:
            w.writerow([o.label, o.status, o.attempts, f"{o.wall_s:.2f}", o.steps, o.calls,
                        o.db, o.error or ""])
    return path


def write_compare(result: SweepResult) -> tuple[Path, Path]:
    from village.report import compare_markdown

    md = result.out / "compare.md"
    md.write_text(compare_markdown(result.headers, result.rows))
    cp = result.out / "compare.csv"
    with cp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(result.headers)
        w.writerows(result.rows)
    return md, cp
