"""Checkpoints and resume, in process: the state rebuilt from a run database at any step is
the state the live model had, and a run stopped anywhere and resumed records exactly what
an uninterrupted one does. (SIGKILL, Ctrl-C and a full disk: test_crash_*.py.)"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from village import checkpoint as ckpt
from village import simulate
from village.dbcheck import RunDBError, migrate, open_run_ro
from village.model import VillageModel
from village.recorder import SCHEMA_VERSION, Recorder, RunLockedError
from village.simulate import ResumeError, RunOptions

# What a run records, in an order that does not depend on timing. llm_calls leave out
# latency and the cached flag (a resumed run answers from the cache what the first asked).
TABLES = {
    "events": "SELECT id, step, agent_id, kind, description, place FROM events ORDER BY id",
    "memories": "SELECT id, agent_id, step, created, kind, description, importance, embedding,"
                " call_id FROM memories ORDER BY id",
    "memory_evidence": "SELECT * FROM memory_evidence ORDER BY memory_id, evidence_id",
    "utterances": "SELECT * FROM utterances ORDER BY conversation_id, idx",
    "conversations": "SELECT * FROM conversations ORDER BY id",
    "agent_states": "SELECT * FROM agent_states ORDER BY agent_id, step",
    "plans": "SELECT * FROM plans ORDER BY id",
    "social_edges": "SELECT * FROM social_edges ORDER BY step, a, b",
    "retrievals": "SELECT * FROM retrievals ORDER BY id",
    "retrieval_hits": "SELECT * FROM retrieval_hits ORDER BY retrieval_id, rank",
    "llm_calls": "SELECT id, step, agent_id, purpose, messages, schema, response, prompt_tokens,"
                 " completion_tokens, invalid, fallback, error FROM llm_calls ORDER BY id",
    "steps": "SELECT step, game_time, llm_calls, tokens FROM steps ORDER BY step",
    "checkpoints": "SELECT * FROM checkpoints ORDER BY agent_id, part, step",
    "agents": "SELECT * FROM agents ORDER BY id",
}


def recording(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {t: conn.execute(q).fetchall() for t, q in TABLES.items()}
    finally:
        conn.close()


def assert_same_recording(a: Path, b: Path, what: str = "") -> None:
    ra, rb = recording(a), recording(b)
    for table in TABLES:
        x, y = ra[table], rb[table]
        if x != y:
            first = next((i for i, (u, v) in enumerate(zip(x, y)) if u != v), min(len(x), len(y)))
            pytest.fail(f"{what}{table} differs ({len(x)} vs {len(y)} rows); first difference at"
                        f" row {first}: {x[first] if first < len(x) else None!r} vs "
                        f"{y[first] if first < len(y) else None!r}")


def opts(out: Path, **kw) -> RunOptions:
    return RunOptions(llm="scripted", embedder="hash", cache=False, out=out, **kw)


def crash_after(out: Path, steps: int, target: int) -> None:
    """A run that stops after `steps` committed steps without any cleanup, as after SIGKILL
    (status stays 'running', nothing pending is rated)."""
    model = simulate.build("demo", opts(out))
    model.recorder.update_run(target_steps=target)
    for _ in range(steps):
        model.step()
    model.recorder.close()
    model.close()


def test_state_rebuilt_from_the_database_equals_the_live_state(tmp_path: Path) -> None:
    """Every 97 steps across a simulated day (waking, plans, conversations, reflections,
    bedtime): the model rebuilt from the recording has exactly the live model's state."""
    model = simulate.build("demo", opts(tmp_path / "run.db"))
    ro = sqlite3.connect(f"file:{tmp_path / 'run.db'}?mode=ro", uri=True)
    checked = 0
    kinds: set[str] = set()
    for _ in range(5700):  # 07:00 → 22:50: everyone is asleep again
        model.step()
        if model.steps % 97:
            continue
        back = VillageModel(model.scenario, llm=model.llm, embedder=model.embedder, recorder=None,
                            config=model.config, checkpoint=ckpt.load(ro, model.steps))
        assert back.steps == model.steps and back.now == model.now
        live, rebuilt = model.checkpoint_state(), back.checkpoint_state()
        live["model"].pop("calls"), rebuilt["model"].pop("calls")  # the recorder's, not restored here
        assert rebuilt == live, model.steps
        assert back._last_states == model._last_states
        for a, b in zip(model.residents, back.residents):
            assert b.checkpoint_state() == a.checkpoint_state(), (model.steps, a.name)
            assert (b.pos_xy, b.path) == (a.pos_xy, a.path), (model.steps, a.name)
            assert [r.to_dict() for r in b.memory] == [r.to_dict() for r in a.memory]
            n = len(a.memory)
            for col in ("emb", "importance", "created", "accessed", "kind"):
                assert np.array_equal(getattr(b.memory._a, col)[:n], getattr(a.memory._a, col)[:n])
            if a.conversation_id is not None:
                c, d = model.conversations[a.conversation_id], back.conversations[a.conversation_id]
                assert (d.step_end, d.place, [(s.name, t) for s, t, _ in d.lines]) == \
                       (c.step_end, c.place, [(s.name, t) for s, t, _ in c.lines])
            kinds.update(r.kind for r in a.memory)
        back.close()
        checked += 1
    ro.close()
    model.recorder.close()
    assert checked == 58
    assert {"observation", "reflection", "plan", "chat", "whisper"} <= kinds
    conn = sqlite3.connect(tmp_path / "run.db")
    events = {k for (k,) in conn.execute("SELECT DISTINCT kind FROM events")}
    assert {"wake", "sleep", "conversation", "reflect", "whisper"} <= events


@pytest.mark.parametrize("stop", [1, 97, 403])
def test_resumed_run_records_exactly_what_an_uninterrupted_one_does(tmp_path: Path, stop: int) -> None:
    target = 600
    simulate.run(simulate.build("demo", opts(tmp_path / "whole.db")), target)
    crash_after(tmp_path / "cut.db", stop, target)
    model, n = simulate.resume(tmp_path / "cut.db")
    assert (model.steps, n) == (stop, target - stop)
    result = simulate.run(model, n)
    assert result.status == "finished"
    assert_same_recording(tmp_path / "whole.db", tmp_path / "cut.db", f"stopped at {stop}: ")
    conn = sqlite3.connect(tmp_path / "cut.db")
    assert conn.execute("SELECT status, last_step, target_steps, resumes FROM runs").fetchone() == \
        ("finished", target, target, 1)


def test_resume_twice_and_extend_a_finished_run(tmp_path: Path) -> None:
    simulate.run(simulate.build("demo", opts(tmp_path / "whole.db")), 300)
    crash_after(tmp_path / "cut.db", 50, 200)
    model, n = simulate.resume(tmp_path / "cut.db", steps=70)  # stop again at 120
    for _ in range(n):
        model.step()
    model.recorder.close()
    model.close()
    model, n = simulate.resume(tmp_path / "cut.db")  # on to its target, 200
    assert (model.steps, n) == (120, 80)
    simulate.run(model, n)
    with pytest.raises(ResumeError, match="already finished at step 200"):
        simulate.resume(tmp_path / "cut.db")
    model, n = simulate.resume(tmp_path / "cut.db", steps=100)  # a finished run can be extended
    simulate.run(model, n)
    # extending rated the pending records at 200 (finish), so from there it is its own run
    whole, cut = recording(tmp_path / "whole.db"), recording(tmp_path / "cut.db")
    assert [r for r in cut["events"] if r[1] <= 200] == [r for r in whole["events"] if r[1] <= 200]
    assert len(cut["steps"]) == 301


def test_a_run_killed_before_step_0_committed_starts_over(tmp_path: Path) -> None:
    out = tmp_path / "early.db"
    rec = Recorder(out)  # as simulate.build leaves it just before step 0 commits
    sc_text = (Path(__file__).resolve().parent.parent / "scenarios" / "demo.toml").read_text()
    rec.start_run(scenario="demo", scenario_toml=sc_text, seed=42, llm="scripted",
                  embedder="hash-64", embedder_dim=64, seconds_per_step=10,
                  game_start="2023-02-13T07:00:00", target_steps=30,
                  config=simulate.recorded_config(opts(out)))
    rec.add_agents([{"id": 1, "name": "Tom Moreno"}])
    rec.close()
    model, n = simulate.resume(out)
    assert (model.steps, n) == (0, 30)
    simulate.run(model, n)
    simulate.run(simulate.build("demo", opts(tmp_path / "whole.db")), 30)
    assert_same_recording(tmp_path / "whole.db", out)


def test_a_live_run_cannot_be_resumed_by_another_writer(tmp_path: Path) -> None:
    model = simulate.build("demo", opts(tmp_path / "live.db"))
    model.step()
    with pytest.raises(RunLockedError, match="another process is writing"):
        simulate.resume(tmp_path / "live.db", steps=5)
    model.recorder.close()
    model.close()
    model, _ = simulate.resume(tmp_path / "live.db", steps=5)  # the lock went with the writer
    model.recorder.close()
    model.close()


def test_refuses_another_embedder_and_runs_without_recorded_options(tmp_path: Path) -> None:
    crash_after(tmp_path / "run.db", 3, 10)
    conn = sqlite3.connect(tmp_path / "run.db")
    conn.execute("UPDATE runs SET embedder = 'hash-32', embedder_dim = 32")
    conn.commit()
    with pytest.raises(ResumeError, match="embedder"):
        simulate.resume(tmp_path / "run.db")
    conn.execute("UPDATE runs SET config = '{}'")
    conn.commit()
    with pytest.raises(ResumeError, match="without resume support"):
        simulate.resume(tmp_path / "run.db")
    conn.close()


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE runs (id INTEGER PRIMARY KEY, scenario TEXT, scenario_path TEXT, scenario_toml TEXT,
    seed INTEGER, llm TEXT, embedder TEXT, embedder_dim INTEGER, seconds_per_step INTEGER,
    game_start TEXT, started_at TEXT, ended_at TEXT, status TEXT, last_step INTEGER,
    ablations TEXT, config TEXT, village_version TEXT, error TEXT);
CREATE TABLE agents (id INTEGER PRIMARY KEY, name TEXT UNIQUE, age INTEGER, traits TEXT,
    background TEXT, currently TEXT, routine TEXT, home TEXT);
CREATE TABLE steps (step INTEGER PRIMARY KEY, game_time TEXT, wall_time REAL, duration_ms REAL,
    llm_calls INTEGER, tokens INTEGER);
CREATE TABLE agent_states (agent_id INTEGER, step INTEGER, x INTEGER, y INTEGER, place TEXT,
    action TEXT, action_place TEXT, emoji TEXT, conversation_id INTEGER, asleep INTEGER,
    PRIMARY KEY (agent_id, step));
CREATE TABLE memories (id INTEGER PRIMARY KEY, agent_id INTEGER, step INTEGER, created TEXT,
    kind TEXT, description TEXT, importance INTEGER, embedding BLOB, call_id INTEGER);
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, step INTEGER, agent_id INTEGER,
    kind TEXT, description TEXT, place TEXT);
CREATE TABLE llm_calls (id INTEGER PRIMARY KEY, step INTEGER, agent_id INTEGER, purpose TEXT);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO runs (id, scenario, status, last_step, config) VALUES (1, 'demo', 'failed', 0, '{}');
INSERT INTO steps VALUES (0, '2023-02-13T07:00:00', 0, 0, 0, 0);
"""


def test_schema_1_is_migrated_and_read_but_not_resumed(tmp_path: Path) -> None:
    old = tmp_path / "v1.db"
    conn = sqlite3.connect(old)
    conn.executescript(V1_SCHEMA)
    conn.close()
    ro = open_run_ro(old)  # readers accept older versions as they are
    assert ro.execute("SELECT value FROM meta").fetchone()[0] == "1"
    ro.close()
    with pytest.raises(ResumeError, match="schema version 1"):
        simulate.resume(old)
    assert sqlite3.connect(old).execute("SELECT value FROM meta").fetchone()[0] == "1"  # untouched
    conn = sqlite3.connect(old, isolation_level=None)
    assert migrate(conn, old) == (1, SCHEMA_VERSION)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
    assert {"target_steps", "resumes", "forked_from", "forked_at", "fork_changes"} <= cols
    assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 0
    assert migrate(conn, old) == (SCHEMA_VERSION, SCHEMA_VERSION)  # idempotent
    conn.close()


def test_newer_schema_is_refused_by_readers_and_resume(tmp_path: Path) -> None:
    crash_after(tmp_path / "run.db", 2, 10)
    conn = sqlite3.connect(tmp_path / "run.db")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    for call in (lambda: open_run_ro(tmp_path / "run.db"),
                 lambda: simulate.resume(tmp_path / "run.db")):
        with pytest.raises(RunDBError, match="newer than") as exc:
            call()
        assert "\n" not in str(exc.value)


def test_read_only_connections_cannot_write(tmp_path: Path) -> None:
    crash_after(tmp_path / "run.db", 2, 10)
    conn = open_run_ro(tmp_path / "run.db", check="full")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM events")
    assert conn.execute("SELECT count(*) FROM steps").fetchone()[0] == 3
    conn.close()


def test_resume_keeps_seed_ablations_and_knobs(tmp_path: Path) -> None:
    from village.config import SimConfig

    def o(out: Path) -> RunOptions:
        return opts(out, seed=7, config=SimConfig(ablate=frozenset({"reflection"}),
                                                   cooldown_minutes=5, k_react=3))

    simulate.run(simulate.build("demo", o(tmp_path / "whole.db")), 250)
    model = simulate.build("demo", o(tmp_path / "cut.db"))
    model.recorder.update_run(target_steps=250)
    for _ in range(111):
        model.step()
    model.recorder.close()
    model.close()
    model, n = simulate.resume(tmp_path / "cut.db")
    assert model.seed_value == 7 and model.config.ablate == {"reflection"}
    assert (model.config.cooldown_minutes, model.config.k_react) == (5, 3)
    simulate.run(model, n)
    assert_same_recording(tmp_path / "whole.db", tmp_path / "cut.db")
