"""The demo on the real bundled model (SmolLM2 via llama.cpp) and the real MiniLM embedder.

Slow by nature (minutes); marked `model` and run in CI. They assert the machinery, not
the tiny model's wisdom: everything a plan names exists, every call is accounted, agents
walk only where one can walk, and the paper's architecture leaves its traces.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from agents.llm.local import BUNDLED_NAME

from village import simulate
from village.config import SimConfig
from village.scenario import load_scenario
from village.world import World

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def morning(tmp_path_factory) -> Path:
    """`demo` for a simulated morning (07:00-10:00) at 60 s a step, reflection threshold
    lowered so 3 hours are enough to see one (the threshold is a documented knob)."""
    text = load_scenario("demo").source_text.replace("seconds_per_step = 10", "seconds_per_step = 60")
    path = tmp_path_factory.mktemp("morning") / "demo60.toml"
    path.write_text(text)
    out = path.parent / "run.db"
    opts = simulate.RunOptions(llm="local", embedder="local", out=out, cache=False,
                               config=SimConfig(reflection_threshold=30))
    model = simulate.build(str(path), opts)
    simulate.run(model, model.steps_for(hours=3))
    return out


def q(path: Path, sql: str, *args) -> list[sqlite3.Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return conn.execute(sql, args).fetchall()


def test_memories_have_embeddings_of_the_embedders_dimension(morning):
    run = q(morning, "SELECT * FROM runs")[0]
    assert run["embedder"] == "all-MiniLM-L6-v2" and run["embedder_dim"] == 384
    rows = q(morning, "SELECT embedding, importance FROM memories")
    assert len(rows) > 10
    for r in rows:
        v = np.frombuffer(r["embedding"], dtype="<f4")
        assert v.shape == (384,) and abs(float(np.linalg.norm(v)) - 1) < 1e-3
        assert 1 <= r["importance"] <= 10


def test_plans_name_only_real_places_and_are_decomposed(morning):
    world = World.from_scenario(load_scenario("demo"))
    places = set(world.destinations())
    plans = q(morning, "SELECT * FROM plans")
    assert {p["level"] for p in plans} >= {"day", "hour", "action"}
    assert all(p["place"] in places for p in plans)
    day = q(morning, "SELECT count(*) FROM plans WHERE level = 'day'")[0][0]
    assert day >= 5 * 4 * 0 + 4  # every resident made a day plan


def test_every_model_call_has_token_counts(morning):
    calls = q(morning, "SELECT * FROM llm_calls")
    assert calls
    assert all(c["prompt_tokens"] > 0 and c["completion_tokens"] > 0 for c in calls)
    assert all(c["model"] == BUNDLED_NAME for c in calls)


def test_agents_move_along_walkable_tiles_only(morning):
    world = World.from_scenario(load_scenario("demo"))
    moved = 0
    for aid in range(1, 5):
        prev = None
        for r in q(morning, "SELECT step, x, y FROM agent_states WHERE agent_id = ? ORDER BY step", aid):
            assert world.is_walkable(r["x"], r["y"])
            if prev is not None and prev["step"] == r["step"] - 1:
                assert abs(prev["x"] - r["x"]) + abs(prev["y"] - r["y"]) <= 1
                moved += (prev["x"], prev["y"]) != (r["x"], r["y"])
            prev = r
    assert moved > 0


def test_the_architecture_leaves_its_traces(morning):
    refl = q(morning, "SELECT r.id FROM memories r JOIN memory_evidence x ON x.memory_id = r.id"
                      " JOIN memories e ON e.id = x.evidence_id WHERE r.kind = 'reflection'")
    assert refl, "at least one reflection citing records that exist"
    assert q(morning, "SELECT count(*) FROM plans h JOIN plans a ON a.parent_id = h.id"
                      " WHERE h.level = 'hour' AND a.level = 'action'")[0][0] > 0
    convs = q(morning, "SELECT * FROM conversations WHERE utterances >= 2 AND ended_by != ''")
    assert convs, "at least one finished conversation"
    c = convs[0]
    a, b = sorted((c["agent_a"], c["agent_b"]))
    edge = q(morning, "SELECT * FROM social_edges WHERE a = ? AND b = ? AND kind = 'conversation'"
                      " AND step >= ?", a, b, c["step_start"])
    assert edge and edge[0]["conversations"] >= 1
    assert q(morning, "SELECT status FROM runs")[0][0] == "finished"


def test_one_call_per_conversation_and_no_rerating(morning):
    """The model economy (issue 8): each conversation is one recorded call (all its lines
    cite it); a description an agent had rated is not rated again."""
    for c in q(morning, "SELECT * FROM conversations"):
        ids = {r[0] for r in q(morning, "SELECT call_id FROM utterances WHERE conversation_id = ?",
                                c["id"])}
        assert len(ids) == 1 and None not in ids
        call = q(morning, "SELECT * FROM llm_calls WHERE id = ?", ids.pop())[0]
        assert call["purpose"] == "converse" and call["agent_id"] == c["agent_a"]
    dup = q(morning, "SELECT agent_id, description, count(DISTINCT call_id) AS n FROM memories"
                     " WHERE call_id IS NOT NULL GROUP BY agent_id, description HAVING n > 1")
    assert not dup, [tuple(r) for r in dup]


def test_report_from_the_real_run(morning, tmp_path):
    """`village report` on this bundled-model run (issue 7): the files exist and every figure
    in the Markdown is the metric functions' own (tests/test_report.py checks the parsing)."""
    from test_report import assert_files, assert_report_matches

    from village import metrics as M
    from village.report import write_report

    files = write_report(morning, tmp_path / "rep")
    assert_files(files)
    m = M.run_metrics(morning)
    assert m.info.n_agents == 4 and m.info.embedder == "all-MiniLM-L6-v2"
    assert set(m.diffusion) == {"valentine party"}
    assert m.diffusion["valentine party"].method == "keywords+embedding"
    assert "Tom Moreno" in m.diffusion["valentine party"].knew_by(0)  # the host knows at once
    assert m.economy.totals["calls"] == q(morning, "SELECT count(*) FROM llm_calls")[0][0] > 0
    assert_report_matches(files.markdown.read_text(), m)
