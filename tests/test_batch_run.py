"""Mesa's own batch_run drives VillageModel runs (scripted model, one process)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import mesa

from village.batch import VillageBatchModel, ablation_set


def test_batch_run_two_seeds_ten_steps_returns_rows_and_recorded_runs(tmp_path: Path) -> None:
    rows = mesa.batch_run(
        VillageBatchModel,
        parameters={"scenario": "demo", "llm": "scripted", "seed": [1, 2], "steps": 10,
                    "out_dir": str(tmp_path)},
        max_steps=10, number_processes=1, display_progress=False)
    assert len(rows) == 2
    assert sorted(r["seed"] for r in rows) == [1, 2]
    for r in rows:
        assert r["Step"] == 9 and r["calls"] > 0 and r["memories"] > 0  # Mesa's last index
        assert 0.0 <= r["density"] <= 1.0
        con = sqlite3.connect(r["db"])
        status, target = con.execute("SELECT status, target_steps FROM runs").fetchone()
        last = con.execute("SELECT max(step) FROM steps").fetchone()[0]
        con.close()
        assert (status, target, last) == ("finished", 10, 10)
    assert len(list(tmp_path.glob("*.db"))) == 2


def test_every_step_is_collected_and_ablations_parse(tmp_path: Path) -> None:
    m = VillageBatchModel(seed=3, steps=2, ablate="reflection+planning", out_dir=tmp_path)
    while m.running:
        m.step()
    df = m.datacollector.get_model_vars_dataframe()
    assert len(df) == 3 and m.steps == 2  # at start and after each step
    assert "planning+reflection" in Path(m.db_path).name  # sorted
    assert ablation_set("") == frozenset() and ablation_set("none") == frozenset()
    assert ablation_set(["planning"]) == {"planning"}
