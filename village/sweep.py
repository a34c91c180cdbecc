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
    threads = 1              # optional; threads per run for in-process models
    run_timeout = 1800       # optional; seconds an attempt may take (then failed)
    out = "replays/sweeps/ablations"   # default replays/sweeps/NAME

Each run writes its own database, ``OUT/{scenario}-seed{seed}-{ablations|full}-{llm}.db``.
Runs execute on **Ray** (``ray.init(num_cpus=N, include_dashboard=False)`` — a local
instance — unless ``address`` names an existing cluster), each a task with ``num_cpus =
threads``; without Ray installed, one spawned process per run (``executor="pool"``);
``executor="serial"`` runs them one after another in this process. At most ``parallel``
runs are in flight at once, and each in-process model gets ``threads`` threads (default:
the usable cores divided by ``parallel``): llama.cpp's threads spin-wait, so two models
with all-core thread pools on the same cores slow each other down twentyfold or more.

The driver never blocks for good: it polls, so it notices a worker that died, a Ray
instance that is gone, and a run that overstays ``run_timeout`` (the run stops after its
current step, or is killed a grace period later). A run that fails (its database says
``failed``, the worker died, or it timed out) is retried once from scratch, its first
database kept as ``…attempt1.db``; if it fails again it is reported, and the sweep goes on
— finished runs are never lost, and re-running the same sweep into the same folder skips
runs already ``finished`` there.

At the end the finished runs are compared with :func:`village.report.compare` (one column
per run) and the table is written as ``compare.md`` and ``compare.csv`` next to ``runs.csv``
(one row per run: label, status, attempts, wall seconds, steps, calls, database, error).
"""
from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import sqlite3
import time
import tomllib
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from village.config import ABLATIONS

EXECUTORS = ("ray", "pool", "serial")
SWEEP_KEYS = {"name", "scenarios", "seeds", "ablations", "llms", "steps", "hours", "embedder",
              "cache", "llm_retries", "llm_concurrency", "out", "retries", "threads",
              "run_timeout"}
POLL_S = 2.0  # the driver wakes at least this often while runs are in flight
LIVENESS_S = 10.0  # and checks this often that the Ray instance is still there


class SweepError(ValueError):
    """A bad sweep file or option (one line)."""


class RunTimeout(Exception):
    """A run overstayed its sweep's ``run_timeout`` (raised between two steps)."""


def kill_grace(run_timeout: float) -> float:
    """How long after ``run_timeout`` a run stuck inside one step is killed."""
    return max(30.0, 0.1 * run_timeout)


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_parallel() -> int:
    return min(2, usable_cpus())


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
    threads: int | None = None  # in-process model threads (None: the sweep decides)
    run_timeout: float | None = None  # seconds one attempt may take (None: no limit)


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


def _number(s: dict[str, Any], key: str, path: Path, *, integer: bool, minimum: float) -> Any:
    """An optional numeric key (None when absent), checked against ``minimum``."""
    if key not in s:
        return None
    v = s[key]
    kinds = (int,) if integer else (int, float)
    if isinstance(v, bool) or not isinstance(v, kinds) or v < minimum:
        want = "an integer" if integer else "a number"
        raise SweepError(f"{path}: '{key}' must be {want} >= {minimum:g}, got {v!r}")
    return v


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
    threads = _number(s, "threads", path, integer=True, minimum=1)
    run_timeout = _number(s, "run_timeout", path, integer=False, minimum=1)
    retries = _number(s, "retries", path, integer=True, minimum=0)
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
            llm_concurrency=s.get("llm_concurrency"), out=str(out_dir / f"{label}.db"),
            threads=threads, run_timeout=None if run_timeout is None else float(run_timeout)))
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        dup = next(lbl for lbl in labels if labels.count(lbl) > 1)
        raise SweepError(f"{path}: two runs would share the database {dup}.db "
                         "(are two llms equal once made file-name safe?)")
    return Sweep(name=name, out=out_dir, runs=runs, retries=1 if retries is None else retries)


# ------------------------------------------------------------------------------ one run
def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]


def run_one(spec: RunSpec) -> RunOutcome:
    """Run one cell to its database (in a worker). Never raises: failures are outcomes.

    With ``spec.run_timeout`` the run stops after the step during which the limit passed
    (its database says ``failed``, ``RunTimeout: …``); the driver kills a run stuck inside
    a step a grace period later (:func:`kill_grace`)."""
    from agents.llm.wrappers import RetryPolicy
    from village.config import SimConfig
    from village.simulate import RunOptions, build, run

    t0 = time.perf_counter()
    out = Path(spec.out)
    limit = spec.run_timeout

    def check_time(model: Any) -> None:
        if limit is not None and time.perf_counter() - t0 > limit:
            raise RunTimeout(f"exceeded run_timeout ({limit:g} s) after step {model.steps} "
                             f"of {spec.steps}")

    try:
        if spec.threads:  # torch (a local embedder) and BLAS size their pools from this
            os.environ["OMP_NUM_THREADS"] = str(spec.threads)
        out.parent.mkdir(parents=True, exist_ok=True)
        opts = RunOptions(
            llm=spec.llm, embedder=spec.embedder, seed=spec.seed, out=out, cache=spec.cache,
            n_threads=spec.threads, llm_concurrency=spec.llm_concurrency,
            retry=RetryPolicy(attempts=max(1, spec.llm_retries)),
            config=SimConfig(ablate=frozenset(spec.ablate)))
        model = build(spec.scenario_path, opts)
        result = run(model, spec.steps, on_step=check_time if limit is not None else None)
        calls = int(result.accounting.totals()["calls"])
        status = "finished" if result.status == "finished" else "failed"
        return RunOutcome(spec.label, status, str(out), wall_s=time.perf_counter() - t0,
                          steps=result.steps, calls=calls,
                          error=None if status == "finished" else f"run {result.status}")
    except BaseException as exc:  # noqa: BLE001 - reported, the sweep goes on
        steps, calls = _db_progress(out)
        return RunOutcome(spec.label, "failed", str(out), wall_s=time.perf_counter() - t0,
                          steps=steps, calls=calls, error=_one_line(exc))


def _db_progress(db: str | Path) -> tuple[int, int]:
    """(steps committed, model calls recorded) of a run database; (0, 0) if unreadable."""
    p = Path(db)
    if not p.is_file():
        return 0, 0
    try:
        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5)
        try:
            steps = con.execute("SELECT COALESCE(MAX(step), 0) FROM steps").fetchone()[0]
            calls = con.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0, 0
    return int(steps or 0), int(calls or 0)


def _mark_failed(db: str | Path, error: str) -> None:
    """Record in a killed run's database why it stopped (it still says ``running``)."""
    p = Path(db)
    if not p.is_file():
        return
    try:
        con = sqlite3.connect(p, timeout=5)
        try:
            with con:
                con.execute("UPDATE runs SET status = 'failed', ended_at = ?, error = ? "
                            "WHERE status = 'running'",
                            (datetime.now().isoformat(timespec="seconds"), error))
        finally:
            con.close()
    except sqlite3.Error:
        pass


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


def _failed(spec: RunSpec, error: str, wall_s: float = 0.0) -> RunOutcome:
    steps, calls = _db_progress(spec.out)
    return RunOutcome(spec.label, "failed", spec.out, wall_s=wall_s, steps=steps, calls=calls,
                      error=error)


# ------------------------------------------------------------------------------ executors
# Each executor runs at most `slots` runs at once and gives each in-process model `threads`
# threads. The driver calls submit() while a slot is free, then poll(timeout) (never blocks
# longer), kill() for a run past its deadline and close() at the end. `_Lost` from poll()
# means nothing more can run there.
class _Lost(RuntimeError):
    """The executor itself is gone (the Ray instance died)."""


class _RayExecutor:
    def __init__(self, address: str | None, parallel: int | None, threads: int | None) -> None:
        import ray

        self.ray = ray
        self.started = False
        if address or ray.is_initialized():  # a cluster (or an instance) someone else runs
            if not ray.is_initialized():
                ray.init(address=address, log_to_driver=False)
                self.started = True
            self.threads = threads or 1
            cpus = float(ray.cluster_resources().get("CPU", 1))
            self.slots = parallel or max(1, int(cpus // self.threads))
        else:
            self.slots = parallel or default_parallel()
            self.threads = threads or max(1, usable_cpus() // self.slots)
            ray.init(num_cpus=self.slots * self.threads, include_dashboard=False,
                     log_to_driver=False)
            self.started = True
        # a fresh worker process per run: a model's memory and threads go with it
        self.remote = ray.remote(max_retries=0, max_calls=1)(run_one)
        self.refs: dict[Any, RunSpec] = {}
        self._checked = time.monotonic()

    @property
    def running(self) -> list[RunSpec]:
        return list(self.refs.values())

    def submit(self, spec: RunSpec) -> None:
        self.refs[self.remote.options(num_cpus=spec.threads or 1).remote(spec)] = spec

    def poll(self, timeout: float) -> list[tuple[RunSpec, RunOutcome]]:
        if not self.refs:
            return []
        done, _ = self.ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        if done:
            done, _ = self.ray.wait(list(self.refs), num_returns=len(self.refs), timeout=0)
        results = []
        for ref in done:
            spec = self.refs.pop(ref)
            try:
                results.append((spec, self.ray.get(ref)))
            except Exception as exc:  # the worker died (OOM, segfault, node lost)
                results.append((spec, _failed(spec, f"worker died: {_one_line(exc)}")))
        if not results and time.monotonic() - self._checked >= LIVENESS_S:
            self._checked = time.monotonic()
            self._check_alive()
        return results

    def _check_alive(self) -> None:
        # When the node's raylet dies its workers go with it, and ray.wait() then waits
        # forever without an error: ask the GCS whether any node is still alive.
        try:
            alive = any(n.get("Alive") for n in self.ray.nodes())
        except Exception as exc:
            raise _Lost(f"the Ray instance is gone ({_one_line(exc)})") from exc
        if not alive:
            raise _Lost("the Ray instance is gone (no live node: was it stopped?)")

    def kill(self, spec: RunSpec) -> None:
        for ref, s in list(self.refs.items()):
            if s.label == spec.label:
                del self.refs[ref]
                try:
                    self.ray.cancel(ref, force=True)
                    # the ref resolves once the worker is dead: then nothing writes the
                    # database any more when it is marked and set aside
                    self.ray.wait([ref], timeout=10)
                except Exception:  # already finished or gone
                    pass

    def close(self) -> None:
        for ref in list(self.refs):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:
                pass
        self.refs.clear()
        if self.started:
            self.ray.shutdown()


def _pool_entry(spec: RunSpec, conn: Any) -> None:
    try:
        conn.send(run_one(spec))
    finally:
        conn.close()


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class _PoolExecutor:
    """One spawned process per run (so a dead or overdue run is noticed and killed)."""

    def __init__(self, parallel: int | None, threads: int | None) -> None:
        import multiprocessing

        self.ctx = multiprocessing.get_context("spawn")
        self.slots = parallel or default_parallel()
        self.threads = threads or max(1, usable_cpus() // self.slots)
        self.procs: dict[str, tuple[RunSpec, Any, Any]] = {}

    @property
    def running(self) -> list[RunSpec]:
        return [spec for spec, _, _ in self.procs.values()]

    def submit(self, spec: RunSpec) -> None:
        recv, send = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(target=_pool_entry, args=(spec, send),
                                name=f"village-sweep:{spec.label}")
        proc.start()
        send.close()  # so the pipe reports EOF when the child dies
        self.procs[spec.label] = (spec, proc, recv)

    def poll(self, timeout: float) -> list[tuple[RunSpec, RunOutcome]]:
        from multiprocessing.connection import wait as mp_wait

        if not self.procs:
            return []
        ready = mp_wait([conn for _, _, conn in self.procs.values()], timeout)
        results = []
        for label, (spec, proc, conn) in list(self.procs.items()):
            if conn not in ready:
                continue
            try:
                outcome = conn.recv()
                proc.join(30)
            except (EOFError, OSError):  # it died without an answer
                proc.join(5)
                outcome = _failed(spec, f"worker died ({_exit_reason(proc.exitcode)})")
            conn.close()
            del self.procs[label]
            results.append((spec, outcome))
        return results

    def kill(self, spec: RunSpec) -> None:
        entry = self.procs.pop(spec.label, None)
        if entry is not None:
            _, proc, conn = entry
            proc.kill()
            proc.join(10)
            conn.close()

    def close(self) -> None:
        for spec in self.running:
            self.kill(spec)


class _SerialExecutor:
    """Runs in this process, one after another: ``run_timeout`` is honoured between steps
    only (nothing can kill a step stuck inside a model call here)."""

    slots = 1

    def __init__(self, threads: int | None) -> None:
        self.threads = threads  # None: the run's own default (all cores: it owns the machine)
        self.pending: list[RunSpec] = []

    @property
    def running(self) -> list[RunSpec]:
        return list(self.pending)

    def submit(self, spec: RunSpec) -> None:
        self.pending.append(spec)

    def poll(self, timeout: float) -> list[tuple[RunSpec, RunOutcome]]:  # noqa: ARG002
        if not self.pending:
            return []
        spec = self.pending.pop(0)
        return [(spec, run_one(spec))]

    def kill(self, spec: RunSpec) -> None:  # noqa: ARG002 - it already returned
        pass

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

    def report(o: RunOutcome) -> None:
        outcomes[o.label] = o
        if progress:
            progress(len(outcomes), total, o)

    queue: deque[RunSpec] = deque()
    for spec in sweep.runs:
        if _already_finished(spec):
            report(RunOutcome(spec.label, "skipped", spec.out, attempts=0, steps=spec.steps))
        else:
            queue.append(spec)
    attempts = {spec.label: 0 for spec in queue}
    started: dict[str, float] = {}
    deadlines: dict[str, float] = {}

    def settle(spec: RunSpec, o: RunOutcome) -> None:
        deadlines.pop(spec.label, None)
        o.attempts = attempts[spec.label]
        if o.status == "failed" and attempts[spec.label] <= sweep.retries:
            _set_aside(spec, attempts[spec.label])
            queue.appendleft(spec)  # retried next, from scratch
            return
        report(o)

    ex: Any = None
    try:
        if queue:
            ex = (_RayExecutor(address, parallel, _threads(sweep)) if executor == "ray" else
                  _PoolExecutor(parallel, _threads(sweep)) if executor == "pool" else
                  _SerialExecutor(_threads(sweep)))
            for spec in queue:
                if Path(spec.out).exists():  # an unfinished leftover from an earlier sweep
                    _set_aside(spec, 0)
            try:
                while queue or ex.running:
                    while queue and len(ex.running) < ex.slots:
                        spec = queue.popleft()
                        if spec.threads is None and ex.threads:
                            spec = replace(spec, threads=ex.threads)
                        attempts[spec.label] += 1
                        started[spec.label] = time.monotonic()
                        if spec.run_timeout is not None:
                            deadlines[spec.label] = (started[spec.label] + spec.run_timeout
                                                     + kill_grace(spec.run_timeout))
                        ex.submit(spec)
                    wait_s = POLL_S
                    if deadlines:
                        wait_s = max(0.0, min(wait_s, min(deadlines.values()) - time.monotonic()))
                    for spec, o in ex.poll(wait_s):
                        settle(spec, o)
                    now = time.monotonic()
                    for spec in ex.running:
                        if spec.label in deadlines and now >= deadlines[spec.label]:
                            ex.kill(spec)
                            assert spec.run_timeout is not None
                            error = (f"RunTimeout: exceeded run_timeout ({spec.run_timeout:g} s)"
                                     f" and killed {kill_grace(spec.run_timeout):g} s later, "
                                     "inside a step")
                            _mark_failed(spec.out, error)
                            settle(spec, _failed(spec, error, now - started[spec.label]))
            except _Lost as exc:  # nothing more can run: report what is left
                for spec in [*ex.running, *queue]:
                    _mark_failed(spec.out, str(exc))
                    began = started.get(spec.label)
                    o = _failed(spec, str(exc), time.monotonic() - began if began else 0.0)
                    o.attempts = attempts[spec.label]
                    report(o)
                queue.clear()
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


def _threads(sweep: Sweep) -> int | None:
    """The file's ``threads`` (one value for the whole grid), else None (the executor's)."""
    return next((r.threads for r in sweep.runs if r.threads), None)


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
