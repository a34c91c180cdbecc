"""Mesa's own ``batch_run`` over Village: a model whose ``__init__`` takes plain parameters.

``VillageModel`` needs a composed model stack (backend, wrappers, embedder, recorder);
:class:`VillageBatchModel` builds that stack itself from plain keyword arguments, so Mesa's
factorial runner can vary them::

    import mesa
    from village.batch import VillageBatchModel

    rows = mesa.batch_run(
        VillageBatchModel,
        parameters={"scenario": "demo", "llm": "scripted", "seed": [1, 2],
                    "ablate": ["", "reflection"], "steps": 10, "out_dir": "replays/batch"},
        max_steps=10, number_processes=1, display_progress=False)

Each run is recorded to its own database (``out_dir/{scenario}-seed{seed}-{ablate}-{llm}.db``,
or a temporary folder when ``out_dir`` is not given) exactly like ``village run`` — so it can
be replayed, inspected, resumed or put in ``village compare``. After ``steps`` steps the run
rates what is pending, marks itself finished, closes its database and sets ``running =
False``, which stops ``batch_run`` (give ``steps`` = ``max_steps``; ``batch_run`` on its own
would take ``max_steps + 1``). The model-level :class:`mesa.DataCollector` collects, after
every step: ``sim_minutes``, ``calls``, ``tokens``, ``fallbacks``, ``memories``,
``conversations``, ``edges`` and ``density`` (of the social graph), and ``db`` — the path of
the run's database. See docs/sweeps.md.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

import mesa
import networkx as nx

from agents.llm.cache import ResponseCache, default_cache_path
from agents.llm.factory import build_model, compose
from agents.llm.wrappers import Accounting
from memory.embeddings import load_embedder
from village.config import SimConfig
from village.model import VillageModel
from village.recorder import Recorder
from village.scenario import load_scenario
from village.simulate import RunOptions, _version, recorded_config, share_cpu


def ablation_set(ablate: str | Iterable[str] | None) -> frozenset[str]:
    """``""``/``None``/``"none"`` → none; ``"reflection"``, ``"reflection+planning"`` or a list."""
    if ablate is None:
        return frozenset()
    if isinstance(ablate, str):
        parts = re.split(r"[+,\s]+", ablate.strip())
        return frozenset(p for p in parts if p and p != "none")
    return frozenset(ablate)


def run_label(scenario: str, seed: int, ablate: frozenset[str], llm: str) -> str:
    """A file-name-safe label for one run of a grid."""
    llm_part = re.sub(r"[^A-Za-z0-9._-]+", "_", llm).strip("_")[:40] or "llm"
    abl = "+".join(sorted(ablate)) or "full"
    return f"{Path(scenario).stem}-seed{seed}-{abl}-{llm_part}"


class VillageBatchModel(VillageModel):
    """A recorded Village run from plain parameters (for ``mesa.batch_run``)."""

    def __init__(
        self,
        scenario: str = "demo",
        llm: str = "scripted",
        seed: int = 0,
        steps: int | None = None,
        ablate: str | Iterable[str] | None = None,
        embedder: str = "hash",
        out_dir: str | os.PathLike[str] | None = None,
        cache: bool = False,
        llm_concurrency: int | None = None,
    ) -> None:
        sc = load_scenario(scenario)
        abl = ablation_set(ablate)
        opts = RunOptions(llm=llm, embedder=embedder, seed=int(seed), cache=cache,
                          llm_concurrency=llm_concurrency, config=SimConfig(ablate=abl))
        folder = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="village-batch-"))
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / f"{run_label(scenario, int(seed), abl, llm)}.db"
        n = 1
        while out.exists():
            n += 1
            out = folder / f"{run_label(scenario, int(seed), abl, llm)}-{n}.db"
        self.db_path = out
        self.target_steps = steps
        backend = build_model(llm, n_ctx=opts.n_ctx, seed=int(seed), n_threads=os.cpu_count() or 1,
                              concurrency=llm_concurrency)
        emb = load_embedder(embedder)
        recorder = Recorder(out)
        recorder.start_run(
            scenario=sc.scenario.name, scenario_path=str(sc.source_path or ""),
            scenario_toml=sc.source_text, seed=int(seed), llm=backend.name, embedder=emb.name,
            embedder_dim=emb.dim, seconds_per_step=sc.scenario.seconds_per_step,
            game_start=sc.scenario.start.isoformat(), ablations=sorted(abl),
            config=recorded_config(opts, backend.max_concurrency), village_version=_version())
        if steps is not None:
            recorder.update_run(target_steps=int(steps), status="running")
        share_cpu(backend, emb)
        accounting = Accounting()
        rcache = ResponseCache(default_cache_path()) if cache else None
        llm_stack = compose(backend, cache=rcache, accounting=accounting, sink=recorder.call,
                            retry=opts.retry)
        self._closed = False
        try:
            super().__init__(sc, llm=llm_stack, embedder=emb, recorder=recorder,
                             config=opts.config, accounting=accounting, seed=int(seed))
        except BaseException as exc:
            self._close_run("failed", f"{type(exc).__name__}: {exc}")
            raise
        self.datacollector = mesa.DataCollector(model_reporters={
            "sim_minutes": lambda m: m.steps * m.seconds_per_step / 60,
            "calls": lambda m: m.accounting.totals()["calls"],
            "tokens": lambda m: (m.accounting.totals()["prompt_tokens"]
                                 + m.accounting.totals()["completion_tokens"]),
            "fallbacks": lambda m: m.accounting.totals()["fallbacks"],
            "memories": lambda m: sum(len(a.memory) for a in m.residents),
            "conversations": lambda m: len(m.conversations),
            "edges": lambda m: m.social.number_of_edges(),
            "density": lambda m: nx.density(m.social) if len(m.social) > 1 else 0.0,
            "db": lambda m: str(m.db_path),
        })
        self.datacollector.collect(self)

    def step(self) -> None:
        if self._closed:
            return
        try:
            super().step()
            if self.target_steps is not None and self.steps >= self.target_steps:
                self.finish()
        except BaseException as exc:
            self.datacollector.collect(self)
            self._close_run("failed", f"{type(exc).__name__}: {exc}")
            raise
        self.datacollector.collect(self)
        if self.target_steps is not None and self.steps >= self.target_steps:
            self._close_run("finished", None)

    def _close_run(self, status: str, error: str | None) -> None:
        """Mark the run, close its database and stop ``batch_run`` (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.running = False
        rec = self.recorder
        if rec is not None:
            try:
                rec.finish_run(status, error and error[:2000])
            finally:
                rec.close()
        self.close()

    def close_run(self) -> None:
        """Finish a run that was given no ``steps`` (rate what is pending, mark it finished)."""
        if not self._closed:
            self.finish()
            self._close_run("finished", None)


def rows_frame(rows: list[dict[str, Any]]) -> Any:
    """``batch_run``'s rows as a pandas DataFrame (pandas comes with Mesa)."""
    import pandas as pd

    return pd.DataFrame(rows)
