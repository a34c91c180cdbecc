"""The replay reader on a small run recorded by the test (scripted model, hash embedder)."""
from __future__ import annotations

import random
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from village.replay import Frame, ReplayError, ReplayReader

STEPS = 240  # the demo's scripted run has conversations at steps 1, 96 and 182


def record(path: Path, steps: int, *, finish: bool = True):
    """Record ``steps`` steps of the demo with the scripted test double; returns the model."""
    from village import simulate

    opts = simulate.RunOptions(llm="scripted", embedder="hash", cache=False, out=path)
    model = simulate.build("demo", opts)
    if finish:
        simulate.run(model, steps)
        return None
    for _ in range(steps):
        model.step()
    return model


@pytest.fixture(scope="module")
def run_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "run.db"
    record(path, STEPS)
    return path


@pytest.fixture(scope="module")
def reader(run_db: Path) -> ReplayReader:
    r = ReplayReader(run_db)
    yield r
    r.close()


def test_opens_read_only_and_rebuilds_the_world(run_db: Path, reader: ReplayReader) -> None:
    before = run_db.read_bytes()
    assert reader.first_step == 0 and reader.last_step == STEPS
    assert reader.status == "finished" and not reader.running
    assert [a.name for a in reader.agents] == ["Tom Moreno", "Carmen Moreno", "Mei Lin", "Ayesha Khan"]
    assert [a.initials for a in reader.agents] == ["TM", "CM", "ML", "AK"]
    assert len({a.letter for a in reader.agents}) == 4
    assert (reader.world.width, reader.world.height) == (30, 20)
    assert reader.world.place_at(1, 16) == "Hobbs Cafe:counter:coffee machine"
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader._conn.execute("CREATE TABLE x (y)")
    reader.state(100)
    assert run_db.read_bytes() == before


def test_state_matches_the_recorded_rows(run_db: Path, reader: ReplayReader) -> None:
    conn = sqlite3.connect(run_db)
    for step in (0, 1, 57, 150, STEPS):
        frame = reader.state(step)
        assert frame.time == reader.game_start + timedelta(seconds=10 * step)
        for a in frame.agents:
            row = conn.execute("SELECT x, y, place, action, conversation_id, asleep FROM agent_states"
                               " WHERE agent_id = ? AND step <= ? ORDER BY step DESC LIMIT 1",
                               (a.id, step)).fetchone()
            assert (a.x, a.y, a.place, a.action, a.conversation_id, int(a.asleep)) == row
            assert reader.world.place_at(a.x, a.y) == a.place
    conn.close()


def test_seek_equals_stepping(run_db: Path) -> None:
    """Seeking to N (index lookups) gives the frame that stepping 0 → N (change rows) gives."""
    seq = ReplayReader(run_db)
    stepped = list(seq.frames(0, STEPS))
    seq.close()
    assert [f.step for f in stepped] == list(range(STEPS + 1))
    r = ReplayReader(run_db)
    order = list(range(STEPS + 1))
    random.Random(5).shuffle(order)
    for n in order[:80] + [0, STEPS, 96, 97, 182, 183]:
        assert r.seek(n) == stepped[n], n
        assert r.state(n) == stepped[n], n
    # state() mixing cache hits, forward steps and seeks still agrees
    for n in (10, 11, 200, 5, 6, 7, 230, 229, STEPS):
        assert r.state(n) == stepped[n]
    r.close()


def test_utterances_are_current_while_their_conversation_runs(reader: ReplayReader) -> None:
    conv = reader.conversations()[0]
    full = reader.conversation(conv["id"])
    assert full["transcript"] and full["a_name"] and full["b_name"]
    for u in full["transcript"]:
        frame = reader.state(u.step)
        assert u in frame.utterances
        assert frame.agent(u.speaker_id).utterance == u.text
        if u.step < full["step_end"]:  # the model frees both at step_end, after the last line
            assert frame.agent(u.speaker_id).conversation_id == conv["id"]
    after = reader.state(full["step_end"] + 1)
    assert all(u.conversation_id != conv["id"] for u in after.utterances)
    spoken = reader.utterances(conv["step_start"], conv["step_end"])
    assert [u.text for u in spoken if u.conversation_id == conv["id"]] == [u.text for u in full["transcript"]]


def test_time_forms(reader: ReplayReader) -> None:
    assert reader.step_at("07:30") == 180
    assert reader.step_at("day1 07:30:05") == 180
    assert reader.step_at(reader.game_start + timedelta(seconds=125)) == 12
    assert reader.step_at("2023-02-13T07:10") == 60
    assert reader.resolve("42") == 42 and reader.resolve("-1") == STEPS
    assert reader.step_at("day2 17:00", clamp=True) == STEPS
    assert reader.clock(0) == "day 1 Mon 07:00:00"
    for bad in ("day2 17:00", "06:00", "25:00", "noon", "999999"):
        with pytest.raises(ReplayError) as e:
            reader.resolve(bad)
        assert "\n" not in str(e.value)


def test_queries(reader: ReplayReader) -> None:
    mei = reader.agent("Mei Lin").id
    mems = reader.memories(mei, 182, limit=5)
    assert 0 < len(mems) <= 5 and all(m["step"] <= 182 for m in mems)
    assert [m["step"] for m in mems] == sorted((m["step"] for m in mems), reverse=True)
    assert all(m["kind"] == "chat" for m in reader.memories(mei, kind="chat"))
    one = reader.memory(mems[0]["id"])
    assert one["embedding"].shape == (reader.run["embedder_dim"],)
    plans = reader.plans(mei, 200)
    assert plans.day and all(p["level"] == "day" for p in plans.day)
    now = reader.game_time(200).isoformat()
    assert plans.action is None or plans.action["start"] <= now < plans.action["end"]
    assert reader.plans(mei, 0).day == []
    ev = reader.events(0, 20)
    assert ev and all(0 <= e["step"] <= 20 for e in ev) and ev[0]["agent"]
    calls = reader.llm_calls(0, 1, purpose="plan")
    assert calls and all(c["purpose"] == "plan" and isinstance(c["messages"], list) for c in calls)
    edges = reader.social_edges(0)
    assert edges and all(e["kind"] == "seeded" for e in edges)
    later = {(e["a"], e["b"]): e for e in reader.social_edges(STEPS)}
    assert any(e["conversations"] > 0 for e in later.values())
    assert all(e["since"] <= e["step"] for e in later.values())
    with pytest.raises(ReplayError, match="no agent"):
        reader.agent("Nobody")
    with pytest.raises(ReplayError, match="outside the recorded run"):
        reader.state(STEPS + 1)


def test_follow_picks_up_new_steps(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    model = record(path, 5, finish=False)
    try:
        r = ReplayReader(path)
        assert r.last_step == 5 and r.running
        first = r.state(5)
        for _ in range(7):
            model.step()
        assert r.last_step == 5  # nothing changes until refresh
        assert r.refresh() == 12
        assert isinstance(r.state(12), Frame) and r.state(5) == first
        model.recorder.finish_run("finished")
        r.refresh()
        assert r.status == "finished" and not r.running
        r.close()
    finally:
        model.recorder.close()
        model.close()


# --------------------------------------------------------------------------- bad files
def _one_line_error(path: Path) -> str:
    with pytest.raises(ReplayError) as e:
        r = ReplayReader(path)
        r.state(r.last_step)  # a damaged file may only fail once its rows are read
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_bad_files(tmp_path: Path, run_db: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("hello")
    assert "not an SQLite database" in _one_line_error(text)
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert "the file is empty" in _one_line_error(empty)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as c:
        c.execute("CREATE TABLE songs (title TEXT)")
    assert "not a Village run" in _one_line_error(foreign)
    newer = tmp_path / "newer.db"
    shutil.copy(run_db, newer)
    from village.recorder import SCHEMA_VERSION

    with sqlite3.connect(newer) as c:
        c.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    assert f"schema version {SCHEMA_VERSION + 1}" in _one_line_error(newer)
    cut = tmp_path / "cut.db"
    cut.write_bytes(run_db.read_bytes()[: run_db.stat().st_size // 2])
    assert "truncated" in _one_line_error(cut)
    assert "no such file" in _one_line_error(tmp_path / "missing.db")


def test_cli_errors_are_one_line_exit_2(tmp_path: Path, run_db: Path) -> None:
    from village.cli import main

    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as c:
        c.execute("CREATE TABLE songs (title TEXT)")
    runner = CliRunner()
    for args in (["replay", str(foreign)],
                 ["replay", str(tmp_path / "missing.db"), "--terminal"],
                 ["replay", str(run_db), "--at", "day3 09:00", "--snapshot", str(tmp_path / "x.png")],
                 ["replay", str(run_db), "--snapshot", str(tmp_path / "x.png"), "--terminal"]):
        res = runner.invoke(main, args)
        assert res.exit_code == 2, (args, res.output)
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), res.output
