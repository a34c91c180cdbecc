"""Set up a recorded run (backend + wrappers, embedder, recorder, model) and drive it;
continue a stopped one (`resume`).

A run records the options it was started with (`runs.config`), its target step
(`runs.target_steps`) and, every step, a checkpoint; so `resume(path)` can rebuild the same
stack and the model as of the last committed step, and go on to the target. `run()` stops
cleanly between steps on Ctrl-C / SIGTERM (status `interrupted`) and on a full disk (status
`failed`, RecordingError); either way the database stays valid and resumable.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

from agents.llm.cache import ResponseCache, default_cache_path
from agents.llm.factory import build_model, compose
from agents.llm.local import spec_for as local_spec_for
from agents.llm.base import ModelError
from agents.llm.wrappers import Accounting, RetryPolicy, one_line
from memory.embeddings import MiniLMEmbedder, load_embedder
from memory.retrieval import RetrievalWeights
from village import checkpoint as ckpt
from village.config import SimConfig
from village.dbcheck import RunDBError, migrate, open_run_ro
from village.model import VillageModel
from village.recorder import Recorder, RecordingError, is_disk_full
from village.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

REPLAYS = Path("replays")


@dataclass
class RunOptions:
    llm: str = "local"
    embedder: str = "local"
    seed: int | None = None
    hours: float | None = None
    steps: int | None = None
    out: Path | None = None
    cache: bool = True
    cache_path: Path | None = None
    n_ctx: int = 4096
    n_threads: int | None = None  # in-process models: default all cores (a run owns the machine)
    llm_concurrency: int | None = None  # calls in flight at once (default per backend: factory)
    llm_model: str | None = None  # model name for openai: / llm: (overrides the spec's)
    api_key_env: str | None = None  # env var holding the API key (openai:; never the key)
    llm_timeout: float | None = None  # seconds per HTTP request (openai:)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    config: SimConfig = field(default_factory=SimConfig)


@dataclass
class RunResult:
    path: Path
    steps: int
    wall_s: float
    accounting: Accounting
    status: str
    stepping_s: float = 0.0  # wall time inside steps ...
    recording_s: float = 0.0  # ... of which recording them (states, checkpoint, commit)


def default_out(scenario: Scenario) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = REPLAYS / f"{scenario.scenario.name}-{stamp}.db"
    n = 1
    while path.exists():
        n += 1
        path = REPLAYS / f"{scenario.scenario.name}-{stamp}-{n}.db"
    return path


def build(scenario: Scenario | str, opts: RunOptions) -> VillageModel:
    """Everything a run needs, composed: backend ← retry ← cache ← accounting ← recording."""
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    out = opts.out or default_out(sc)
    if out.exists():
        raise FileExistsError(f"{out}: already exists (choose another --out)")
    seed = sc.scenario.seed if opts.seed is None else opts.seed
    backend = build_model(opts.llm, n_ctx=opts.n_ctx, seed=seed,
                          n_threads=opts.n_threads or os.cpu_count() or 1,
                          concurrency=opts.llm_concurrency, llm_model=opts.llm_model,
                          api_key_env=opts.api_key_env, timeout=opts.llm_timeout)
    embedder = load_embedder(opts.embedder)
    recorder = Recorder(out)
    recorder.start_run(
        scenario=sc.scenario.name, scenario_path=str(sc.source_path or ""),
        scenario_toml=sc.source_text, seed=seed, llm=backend.name, embedder=embedder.name,
        embedder_dim=embedder.dim, seconds_per_step=sc.scenario.seconds_per_step,
        game_start=sc.scenario.start.isoformat(), ablations=sorted(opts.config.ablate),
        config=recorded_config(opts, backend.max_concurrency),
        village_version=_version(),
    )
    return _start(sc, opts, backend, embedder, recorder, seed)


def share_cpu(backend: Any, embedder: Any) -> bool:
    """An in-process model and an in-process encoder take turns on the CPU, and the encoder
    runs on one thread: llama.cpp's threads spin-wait for each other, so any other busy
    thread on their cores — a concurrent encode, or torch's own worker threads still spinning
    after one — cut generation from ~74 to ~27 tokens/s here (BENCHMARKS.md §4). True when
    they now share the model's lock."""
    lock = getattr(backend, "cpu_lock", None)
    if lock is None or not isinstance(embedder, MiniLMEmbedder):
        return False
    embedder.cpu_lock = lock
    embedder.use_threads(1)
    return True


def _start(sc: Scenario, opts: RunOptions, backend: Any, embedder: Any, recorder: Recorder,
           seed: int, checkpoint: "ckpt.Checkpoint | None" = None) -> VillageModel:
    """Compose the model stack around `backend` and build (or restore) the town."""
    share_cpu(backend, embedder)
    accounting = Accounting()
    llm = None
    try:
        cache = ResponseCache(opts.cache_path or default_cache_path()) if opts.cache else None
        llm = compose(backend, cache=cache, accounting=accounting, sink=recorder.call,
                      retry=opts.retry)
        # step 0 already calls the model (rating the seeded memories)
        return VillageModel(sc, llm=llm, embedder=embedder, recorder=recorder,
                            config=opts.config, accounting=accounting, seed=seed,
                            checkpoint=checkpoint)
    except BaseException as exc:
        try:
            recorder.finish_run("failed", one_line(f"{type(exc).__name__}: {exc}", 2000))
        except sqlite3.Error:
            pass
        recorder.close()
        if isinstance(exc, ModelError):
            raise RunFailedError(f"{exc} (run recorded as failed in {recorder.path})") from exc
        if isinstance(exc, RecordingError):
            raise
        if is_disk_full(exc):
            raise recorder.stopped(exc, "while starting the run") from exc
        raise


def recorded_config(opts: RunOptions, concurrency: int | None = None) -> dict[str, Any]:
    """Everything needed to rebuild the run's stack on resume (`runs.config`).
    Never a secret: an API key is named by its environment variable only."""
    return {
        "llm_spec": opts.llm, "embedder_spec": opts.embedder, "n_ctx": opts.n_ctx,
        "n_threads": opts.n_threads, "llm_model": opts.llm_model,
        "api_key_env": opts.api_key_env, "cache": opts.cache,
        "cache_path": str(opts.cache_path) if opts.cache_path else None,
        "llm_concurrency": concurrency if concurrency is not None else opts.llm_concurrency,
        "llm_concurrency_option": opts.llm_concurrency, "llm_timeout": opts.llm_timeout,
        "retry": {"attempts": opts.retry.attempts, "initial": opts.retry.initial,
                  "maximum": opts.retry.maximum, "total_s": opts.retry.total_s},
        "reflection_threshold": opts.config.reflection_threshold,
        "sim": {**asdict(opts.config), "ablate": sorted(opts.config.ablate)},
    }


class RunFailedError(ModelError):
    """The model failed for good while a run was being set up (its database says so)."""


class _Stop:
    """Ctrl-C / SIGTERM during a run: the first asks to stop after the current step (it is
    finished and committed), a second stops at once (the step in progress is dropped)."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> "_Stop":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def run(model: VillageModel, n_steps: int,
        on_step: Callable[[VillageModel], None] | None = None) -> RunResult:
    """Step the model `n_steps` times, committing each step, then rate what is pending.

    Ctrl-C (or SIGTERM) finishes the step in progress, commits it and returns with status
    `interrupted`; a full disk raises RecordingError; a model failure raises ModelError.
    In every case the database keeps each committed step and can be resumed."""
    t0 = time.perf_counter()
    status, error = "finished", None
    rec = model.recorder
    try:
        if rec is not None:
            rec.update_run(target_steps=model.steps + n_steps, status="running",
                           ended_at=None, error=None)
        with _Stop() as stop:
            for _ in range(n_steps):
                model.step()
                if on_step is not None:
                    on_step(model)
                if stop.requested:
                    status = "interrupted"
                    error = f"stopped by {stop.requested} after step {model.steps}"
                    break
            else:
                model.finish()
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted by the user (the step in progress was dropped)"
        raise
    except BaseException as exc:
        status, error = "failed", one_line(f"{type(exc).__name__}: {exc}", 2000)
        if not isinstance(exc, RecordingError) and is_disk_full(exc) and rec is not None:
            raise rec.stopped(exc, f"after step {rec.last_committed}") from exc
        raise
    finally:
        if rec is not None:
            try:
                rec.finish_run(status, error)
            except sqlite3.Error:  # e.g. still no space: the run stays 'running', resumable
                pass
            rec.close()
        model.close()
    assert rec is not None
    return RunResult(rec.path, model.steps, time.perf_counter() - t0, model.accounting, status,
                     model.stepping_s, model.recording_s)


# --------------------------------------------------------------------------- resume
class ResumeError(ValueError):
    """The database cannot be resumed or forked (one line; exit status 2)."""


@dataclass
class Overrides:
    """What `village resume` / `fork` may change about the recorded run's stack."""

    llm: str | None = None
    cache: bool | None = None
    cache_path: Path | None = None
    n_threads: int | None = None
    llm_timeout: float | None = None


def options_from_run(run: dict[str, Any], path: Path, over: Overrides | None = None) -> RunOptions:
    """The RunOptions a run was started with (`runs.config`), with overrides applied."""
    over = over or Overrides()
    try:
        cfg = json.loads(run.get("config") or "{}")
    except ValueError:
        cfg = None
    if not isinstance(cfg, dict) or "llm_spec" not in cfg:
        raise ResumeError(f"{path}: recorded by a Village without resume support (no options"
                          " in runs.config)")
    sim = dict(cfg.get("sim") or {})
    try:
        weights = RetrievalWeights(**sim.pop("weights", {}))
        config = SimConfig(**{**sim, "weights": weights, "ablate": frozenset(sim.get("ablate", ()))})
        r = cfg.get("retry") or {}
        retry = RetryPolicy(attempts=r.get("attempts", 5), initial=r.get("initial", 0.5),
                            maximum=r.get("maximum", 8.0), total_s=r.get("total_s"))
    except (TypeError, ValueError) as exc:
        raise ResumeError(f"{path}: unreadable options in runs.config ({one_line(exc)})") from None
    cache_path = over.cache_path or (Path(cfg["cache_path"]) if cfg.get("cache_path") else None)
    llm = over.llm or cfg["llm_spec"]
    if llm == "local":
        llm = local_spec_for(run.get("llm") or "")
    return RunOptions(
        llm=llm, embedder=cfg.get("embedder_spec") or "local",
        seed=run.get("seed"), out=path,
        cache=cfg.get("cache", True) if over.cache is None else over.cache,
        cache_path=cache_path, n_ctx=cfg.get("n_ctx", 4096),
        n_threads=over.n_threads or cfg.get("n_threads"),
        llm_concurrency=cfg.get("llm_concurrency_option"), llm_model=cfg.get("llm_model"),
        api_key_env=cfg.get("api_key_env"),
        llm_timeout=over.llm_timeout or cfg.get("llm_timeout"), retry=retry, config=config)


def recorded_scenario(run: dict[str, Any], path: Path) -> Scenario:
    """The run's own scenario (`runs.scenario_toml`) with a fork's resident changes."""
    from village.fork import apply_changes, changes_from_json

    text = run.get("scenario_toml")
    if not text:
        raise ResumeError(f"{path}: the run does not hold its scenario (runs.scenario_toml)")
    try:
        sc = parse_scenario(text, source=f"{path}:runs.scenario_toml")
        return apply_changes(sc, changes_from_json(run.get("fork_changes")))
    except ScenarioError as exc:
        raise ResumeError(f"{path}: the recorded scenario no longer loads ({exc})") from None


def read_run(path: Path) -> tuple[dict[str, Any], int | None, bool]:
    """Validate a run database read-only (nothing is written to a bad one): its runs row,
    its last committed step and whether it holds checkpoints. RunDBError if not a run."""
    conn = open_run_ro(path, check="full")
    try:
        run = dict(conn.execute("SELECT * FROM runs ORDER BY id LIMIT 1").fetchone())
        last = ckpt.last_step(conn)
        has = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'checkpoints'").fetchone()
        has_ck = bool(has) and conn.execute("SELECT 1 FROM checkpoints LIMIT 1").fetchone() is not None
    except sqlite3.DatabaseError as exc:
        raise RunDBError(f"{path}: truncated or corrupt database ({one_line(exc)})") from None
    finally:
        conn.close()
    return run, last, has_ck


def open_stack(path: Path, run: dict[str, Any], opts: RunOptions,
               *, fresh: bool = False, count_resume: bool = True) -> VillageModel:
    """Rebuild the run's model stack on `path` (locked, migrated) at its last committed
    step — or from step 0 when `fresh` (no step was ever committed)."""
    sc = recorded_scenario(run, path)
    try:
        embedder = load_embedder(opts.embedder)
    except ValueError as exc:
        raise ResumeError(f"{path}: {exc}") from None
    if (embedder.name, embedder.dim) != (run.get("embedder"), run.get("embedder_dim")):
        raise ResumeError(f"{path}: the run's embedder is {run.get('embedder')} "
                          f"({run.get('embedder_dim')}-d), the rebuilt one {embedder.name} "
                          f"({embedder.dim}-d); a memory store needs the embedder it was made with")
    seed = int(run.get("seed") or 0)
    backend = build_model(opts.llm, n_ctx=opts.n_ctx, seed=seed,
                          n_threads=opts.n_threads or os.cpu_count() or 1,
                          concurrency=opts.llm_concurrency, llm_model=opts.llm_model,
                          api_key_env=opts.api_key_env, timeout=opts.llm_timeout)
    recorder = Recorder(path, existing=True)  # takes the lock before anything is written
    try:
        migrate(recorder.conn, path)
        if fresh:
            with recorder._tx():
                recorder.conn.execute("DELETE FROM agents")
            recorder.agent_ids.clear()
            checkpoint = None
        else:
            last = ckpt.last_step(recorder.conn)
            assert last is not None
            checkpoint = ckpt.load(recorder.conn, last)
        recorder.conn.execute("UPDATE runs SET status = 'running', ended_at = NULL, error = NULL,"
                              " resumes = coalesce(resumes, 0) + ? WHERE id = ?",
                              (int(count_resume), recorder.run_id))
    except ckpt.CheckpointError as exc:
        recorder.close()
        raise ResumeError(f"{path}: {exc}") from None
    except BaseException as exc:
        recorder.close()
        if is_disk_full(exc):
            raise recorder.stopped(exc, "while reopening the run") from exc
        raise
    return _start(sc, opts, backend, embedder, recorder, seed, checkpoint)


def resume(path: str | Path, *, steps: int | None = None, hours: float | None = None,
           overrides: Overrides | None = None) -> tuple[VillageModel, int]:
    """The model of a stopped run at its last committed step, and how many steps remain
    (to the recorded target, or `steps` / `hours` more). ResumeError / RunDBError: one line."""
    path = Path(path)
    run, last, has_ck = read_run(path)
    if last is not None and not has_ck:
        raise ResumeError(f"{path}: recorded by a Village without checkpoints "
                          f"(schema version 1); it can be replayed but not resumed")
    opts = options_from_run(run, path, overrides)
    target = run.get("target_steps")
    sps = int(run.get("seconds_per_step") or 10)
    done = -1 if last is None else last
    if steps is not None:
        n = steps
    elif hours is not None:
        n = int(round(hours * 3600 / sps))
    elif target is None:
        raise ResumeError(f"{path}: the run did not record how far it was to go; "
                          "give --steps N or --hours H")
    else:
        n = int(target) - max(done, 0)
        if n <= 0 and run.get("status") == "finished":
            raise ResumeError(f"{path}: already finished at step {done} (its target); "
                              "give --steps N or --hours H to run it longer")
        n = max(n, 0)
    model = open_stack(path, run, opts, fresh=last is None)
    return model, n


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("village")
    except Exception:  # not installed (running from a checkout)
        return "0+unknown"
