"""Set up a recorded run (backend + wrappers, embedder, recorder, model) and drive it."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from agents.llm.cache import ResponseCache, default_cache_path
from agents.llm.factory import build_model, compose
from agents.llm.base import ModelError
from agents.llm.wrappers import Accounting, RetryPolicy, one_line
from memory.embeddings import load_embedder
from village.config import SimConfig
from village.model import VillageModel
from village.recorder import Recorder
from village.scenario import Scenario, load_scenario

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
        config={"n_ctx": opts.n_ctx, "cache": opts.cache,
                "llm_concurrency": backend.max_concurrency, "llm_timeout": opts.llm_timeout,
                "retry": {"attempts": opts.retry.attempts, "initial": opts.retry.initial,
                          "maximum": opts.retry.maximum},
                "reflection_threshold": opts.config.reflection_threshold},
        village_version=_version(),
    )
    accounting = Accounting()
    cache = ResponseCache(opts.cache_path or default_cache_path()) if opts.cache else None
    llm = compose(backend, cache=cache, accounting=accounting, sink=recorder.call,
                  retry=opts.retry)
    try:  # step 0 already calls the model (rating the seeded memories)
        return VillageModel(sc, llm=llm, embedder=embedder, recorder=recorder,
                            config=opts.config, accounting=accounting, seed=seed)
    except BaseException as exc:
        recorder.finish_run("failed", one_line(f"{type(exc).__name__}: {exc}", 2000))
        recorder.close()
        if isinstance(exc, ModelError):
            raise RunFailedError(f"{exc} (run recorded as failed in {out})") from exc
        raise


class RunFailedError(ModelError):
    """The model failed for good while a run was being set up (its database says so)."""


def run(model: VillageModel, n_steps: int,
        on_step: Callable[[VillageModel], None] | None = None) -> RunResult:
    """Step the model, committing each step; a failure or Ctrl-C leaves a valid database."""
    t0 = time.perf_counter()
    status, error = "finished", None
    try:
        for _ in range(n_steps):
            model.step()
            if on_step is not None:
                on_step(model)
        model.finish()
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted by the user"
        raise
    except BaseException as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        rec = model.recorder
        if rec is not None:
            rec.finish_run(status, error)
            rec.close()
        model.close()
    assert model.recorder is not None
    return RunResult(model.recorder.path, model.steps, time.perf_counter() - t0,
                     model.accounting, status)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("village")
    except Exception:  # not installed (running from a checkout)
        return "0+unknown"
